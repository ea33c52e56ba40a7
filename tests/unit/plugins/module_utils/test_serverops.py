"""serverops: journalled mcp_server swap (with recovery from every step, and a real SIGKILL between the
renames) and dependency installs in a real venv from the offline wheelhouse."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import serverops, state
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest
from ansible_collections.praxis.upgrade.plugins.module_utils.requirements import requirements_key

REPO = Path(__file__).resolve().parents[4]
WHEELHOUSE = REPO / ".cache" / "wheelhouse"
V1 = {"__init__.py": "", "__main__.py": "print('v1')\n", "old_only.py": "x = 1\n", "tools/a.py": "A = 1\n"}
V2 = {"__init__.py": "", "__main__.py": "print('v2')\n", "new_only.py": "y = 2\n", "tools/a.py": "A = 2\n",
      "requirements.txt": "humanize==4.17.0\n"}


def write_tree(root: Path, files: Dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def tree(root: Path) -> Dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def setup(tmp_path: Path) -> Dict[str, object]:
    home = tmp_path / "project" / ".praxis-os"
    write_tree(home / "mcp_server", V1)
    source = tmp_path / "source"
    write_tree(source / "mcp_server", V2)
    (source / "mcp_server" / "__pycache__").mkdir()
    (source / "mcp_server" / "__pycache__" / "x.pyc").write_bytes(b"junk")  # not in the manifest: not copied
    facts = home / ".cache" / "facts.d" / "praxis_upgrade.fact"
    state.save(str(facts), state.new_session("c0ffee", session_id="S1"))
    manifest = build_manifest(str(source / "mcp_server"), prefix="mcp_server/")
    manifest["universal/standards/x.md"] = "0" * 64  # other trees of the manifest are ignored
    return {"home": home, "source": source, "facts": facts, "manifest": manifest}


def swap(s: Dict[str, object], check: bool = False) -> dict:
    return serverops.swap_server(str(s["home"]), str(s["source"]), s["manifest"], str(s["facts"]), "S1",
                                 check=check)


def journal(s: Dict[str, object]) -> list:
    return state.load(str(s["facts"]))["journal"]


def leftovers(home: Path) -> list:
    return sorted(p.name for p in home.iterdir() if p.name.startswith("mcp_server."))


def test_swap_then_idempotent(setup: Dict[str, object]) -> None:
    home = setup["home"]
    result = swap(setup)
    assert result["changed"] and result["swapped"] and result["files"] == 5
    assert result["added"] == ["mcp_server/new_only.py", "mcp_server/requirements.txt"]
    assert result["updated"] == ["mcp_server/__main__.py", "mcp_server/tools/a.py"]
    assert result["removed"] == ["mcp_server/old_only.py"]
    assert tree(home / "mcp_server") == V2
    assert leftovers(home) == [] and journal(setup) == []
    again = swap(setup)
    assert not again["changed"] and not again["swapped"] and again["recovery"]["action"] == "none"


def test_swap_check_mode_changes_nothing(setup: Dict[str, object]) -> None:
    before = Path(setup["facts"]).read_text()
    result = swap(setup, check=True)
    assert result["changed"] and not result["swapped"] and len(result["updated"]) == 2
    assert tree(setup["home"] / "mcp_server") == V1
    assert leftovers(setup["home"]) == [] and Path(setup["facts"]).read_text() == before


def test_swap_refuses_a_source_that_differs_from_the_manifest(setup: Dict[str, object]) -> None:
    (setup["source"] / "mcp_server" / "tools" / "a.py").write_text("A = 'tampered'\n")
    with pytest.raises(serverops.SwapError, match="tools/a.py has sha256 .* the manifest says"):
        swap(setup)
    assert tree(setup["home"] / "mcp_server") == V1 and leftovers(setup["home"]) == []
    assert journal(setup) == []
    os.unlink(setup["source"] / "mcp_server" / "tools" / "a.py")
    with pytest.raises(serverops.SwapError, match="missing; the shipped source is incomplete"):
        swap(setup)


def test_swap_refuses_empty_or_unsafe_manifests(setup: Dict[str, object]) -> None:
    setup["manifest"] = {"universal/x.md": "0" * 64}
    with pytest.raises(serverops.SwapError, match="no mcp_server/ entries"):
        swap(setup)
    setup["manifest"] = {"mcp_server/../../etc/passwd": "0" * 64}
    with pytest.raises(ValueError, match="unsafe path"):
        swap(setup)


def test_swap_needs_a_session(setup: Dict[str, object]) -> None:
    os.unlink(setup["facts"])
    with pytest.raises(serverops.SwapError, match="no upgrade session recorded"):
        swap(setup)
    assert tree(setup["home"] / "mcp_server") == V1 and leftovers(setup["home"]) == []


def test_swap_needs_the_source_tree(setup: Dict[str, object], tmp_path: Path) -> None:
    setup["source"] = tmp_path / "nowhere"
    with pytest.raises(serverops.SwapError, match="does not exist"):
        swap(setup)


def stage_interruption(s: Dict[str, object], step: str, live: str, new: bool, old: bool) -> Dict[str, str]:
    """Lay out the trees as a crash at `step` would leave them; `live` is 'v1', 'v2' or ''."""
    home: Path = s["home"]
    paths = serverops.swap_paths(str(home), "S1")
    (home / "mcp_server").rename(home / "v1-tree")
    if new:
        write_tree(Path(paths["new"]), V2)
    if old:
        write_tree(Path(paths["old"]), V1)
    if live == "v1":
        write_tree(Path(paths["live"]), V1)
    elif live == "v2":
        write_tree(Path(paths["live"]), V2)
    state.journal_set(str(s["facts"]), dict(op="swap", step=step, **paths))
    return paths


@pytest.mark.parametrize("step, live, new, old, action, expected", [
    ("staged", "v1", True, False, "completed", V2),     # crash right after staging
    ("staged", "", True, True, "completed", V2),        # crash after live -> old, before the journal said so
    ("staged", "v1", False, False, "undone", V1),       # staged copy lost
    ("old_moved", "", True, True, "completed", V2),     # the fault point server.between_renames
    ("old_moved", "", False, True, "undone", V1),       # new lost: put the old tree back
    ("old_moved", "v2", False, True, "completed", V2),  # crash after new -> live, before the journal said so
    ("swapped", "v2", False, True, "completed", V2),    # crash before the old tree was removed
])
def test_recover_from_every_step(setup: Dict[str, object], step: str, live: str, new: bool, old: bool,
                                 action: str, expected: Dict[str, str]) -> None:
    assert not serverops.journal_in_flight(str(setup["facts"]))
    stage_interruption(setup, step, live, new, old)
    assert serverops.journal_in_flight(str(setup["facts"]))
    check = serverops.recover_swap(str(setup["home"]), str(setup["facts"]), check=True)
    assert check == {"recovered": True, "action": action, "step": step}
    assert len(journal(setup)) == 1
    result = serverops.recover_swap(str(setup["home"]), str(setup["facts"]))
    assert result == check
    assert tree(setup["home"] / "mcp_server") == expected
    assert leftovers(setup["home"]) == [] and journal(setup) == []
    assert not serverops.journal_in_flight(str(setup["facts"]))
    assert serverops.recover_swap(str(setup["home"]), str(setup["facts"]))["action"] == "none"


def test_swap_after_an_undone_recovery_swaps(setup: Dict[str, object]) -> None:
    stage_interruption(setup, "old_moved", "", False, True)
    result = swap(setup)
    assert result["journal_recovered"] and result["recovery"]["action"] == "undone" and result["swapped"]
    assert tree(setup["home"] / "mcp_server") == V2


def test_recover_with_nothing_left_refuses(setup: Dict[str, object]) -> None:
    stage_interruption(setup, "old_moved", "", False, False)
    with pytest.raises(serverops.SwapError, match="left no server tree.*rollback.yml"):
        serverops.recover_swap(str(setup["home"]), str(setup["facts"]))


def test_recover_refuses_a_journal_naming_other_paths(setup: Dict[str, object], tmp_path: Path) -> None:
    paths = serverops.swap_paths(str(setup["home"]), "S1")
    paths["old"] = str(tmp_path / "precious")
    state.journal_set(str(setup["facts"]), dict(op="swap", step="swapped", **paths))
    with pytest.raises(serverops.SwapError, match="does not name"):
        serverops.recover_swap(str(setup["home"]), str(setup["facts"]))


SWAP_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.praxis.upgrade.plugins.module_utils import serverops
a = json.loads(sys.argv[2])
serverops.swap_server(a["home"], a["source"], a["manifest"], a["facts"], "S1")
"""


def test_real_kill_between_renames_is_recovered(setup: Dict[str, object]) -> None:
    args = json.dumps({k: (v if isinstance(v, dict) else str(v)) for k, v in setup.items()})
    env = dict(os.environ, PRAXIS_FAULT_POINT="server.between_renames")
    proc = subprocess.run([sys.executable, "-c", SWAP_CHILD, str(REPO / ".build" / "collections"), args],
                          env=env, start_new_session=True, capture_output=True, timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr.decode()
    home: Path = setup["home"]
    assert not (home / "mcp_server").exists() and leftovers(home) == ["mcp_server.new-S1", "mcp_server.old-S1"]
    assert journal(setup)[0]["step"] == "old_moved"
    result = swap(setup)  # the re-run recovers first, then finds nothing left to do
    assert result["journal_recovered"] and result["recovery"]["action"] == "completed" and not result["swapped"]
    assert tree(home / "mcp_server") == V2 and leftovers(home) == []


# ---------------------------------------------------------------- dependencies

@pytest.fixture(scope="module")
def venv_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (WHEELHOUSE / "humanize-4.17.0-py3-none-any.whl").is_file():
        pytest.skip("no fixture wheelhouse at %s: run `make setup`" % WHEELHOUSE)
    home = tmp_path_factory.mktemp("deps") / "project" / ".praxis-os"
    (home / "mcp_server").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    return home


def requirements(home: Path, text: str) -> str:
    (home / "mcp_server" / "requirements.txt").write_text(text)
    return serverops.sha256_file(str(home / "mcp_server" / "requirements.txt"))


OFFLINE = ["--no-index", "--find-links", str(WHEELHOUSE)]


def test_deps_install_then_fast_path(venv_home: Path) -> None:
    sha = requirements(venv_home, "# runtime\nhumanize==4.17.0  # formatting\nnever; python_version < '3'\n")
    check = serverops.ensure_dependencies(str(venv_home), sha, OFFLINE, check=True)
    assert check["would_run_pip"] and not check["pip_ran"] and check["changed"]
    assert check["unsatisfied"] == ["humanize==4.17.0"]
    ran = serverops.ensure_dependencies(str(venv_home), sha, OFFLINE,
                                        post_install_commands=[["true"], ["false"], ["/nonexistent/x"]])
    assert ran["pip_ran"] and "1 requirement(s) not installed" in ran["reason"]
    assert "humanize" in ran["pip_output_tail"]
    assert len(ran["warnings"]) == 2 and "failed with exit 1" in ran["warnings"][0]
    fast = serverops.ensure_dependencies(str(venv_home), sha, OFFLINE)
    assert not fast["pip_ran"] and not fast["changed"] and fast["unsatisfied"] == []
    assert fast["reason"] == "requirements.txt unchanged and every requirement installed"
    changed = serverops.ensure_dependencies(str(venv_home), "f" * 64, OFFLINE, check=True)
    assert changed["would_run_pip"] and "requirements.txt changed (ffffffffffff..." in changed["reason"]
    unknown = serverops.ensure_dependencies(str(venv_home), None, OFFLINE, check=True)
    assert unknown["reason"] == "no previous requirements hash recorded"
    requirements(venv_home, "humanize>=5\n")
    assert serverops.unsatisfied_requirements(str(venv_home / "venv" / "bin" / "python"),
                                              str(venv_home / "mcp_server" / "requirements.txt")) == [
        "humanize>=5 (installed 4.17.0)"]


def test_dry_run_judges_the_planned_set_by_the_same_rule(venv_home: Path) -> None:
    """Check mode before the new version is staged: only its requirement-set key is known."""
    home = str(venv_home)
    sha = requirements(venv_home, "# nothing yet\n")
    key = requirements_key("# nothing yet\n")
    same = serverops.ensure_dependencies(home, sha, OFFLINE, check=True, previous_requirements_key=key, planned_key=key)
    assert not same["would_run_pip"] and not same["changed"]
    other = serverops.ensure_dependencies(home, sha, OFFLINE, check=True, previous_requirements_key=key,
                                          planned_key=requirements_key("humanize==4.17.0\n"))
    assert other["would_run_pip"] and other["changed"] and "requirement set differs" in other["reason"]
    # the same set, but not installed: the real run would run pip, so the dry run says so too
    sha = requirements(venv_home, "praxis-no-such-package==1.0\n")
    key = requirements_key("praxis-no-such-package==1.0\n")
    missing = serverops.ensure_dependencies(home, sha, OFFLINE, check=True, previous_requirements_key=key,
                                            planned_key=key)
    assert missing["would_run_pip"] and missing["unsatisfied"] == ["praxis-no-such-package==1.0"]
    with pytest.raises(ValueError, match="dry run"):
        serverops.ensure_dependencies(home, sha, OFFLINE, previous_requirements_key=key, planned_key=key)


def test_deps_pip_failure_names_the_next_step(venv_home: Path) -> None:
    sha = requirements(venv_home, "praxis-no-such-package==1.0\n")
    with pytest.raises(serverops.DependencyError, match="(?s)failed with exit 1.*praxis_pip_args") as failed:
        serverops.ensure_dependencies(str(venv_home), sha, OFFLINE)
    assert "praxis-no-such-package" in failed.value.output_tail


def test_deps_pip_timeout(venv_home: Path) -> None:
    requirements(venv_home, "praxis-no-such-package==1.0\n")
    with pytest.raises(serverops.DependencyError, match="did not finish within 0.05 s"):
        serverops.ensure_dependencies(str(venv_home), None, OFFLINE, timeout=0.05)


def test_deps_without_requirements_or_venv(tmp_path: Path) -> None:
    home = tmp_path / ".praxis-os"
    (home / "mcp_server").mkdir(parents=True)
    result = serverops.ensure_dependencies(str(home), None)
    assert not result["pip_ran"] and "nothing to install" in result["reason"]
    (home / "mcp_server" / "requirements.txt").write_text("humanize\n")
    with pytest.raises(serverops.DependencyError, match="does not run.*venv is broken"):
        serverops.ensure_dependencies(str(home), None)
    (home / "venv" / "bin").mkdir(parents=True)
    (home / "venv" / "bin" / "python").write_text("#!/bin/sh\necho broken >&2\nexit 2\n")
    (home / "venv" / "bin" / "python").chmod(0o755)
    with pytest.raises(serverops.DependencyError, match="failed to inspect its packages") as failed:
        serverops.ensure_dependencies(str(home), None)
    assert "broken" in failed.value.output_tail


DEPS_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.praxis.upgrade.plugins.module_utils import serverops
serverops.ensure_dependencies(sys.argv[2], None, ["--no-index", "--find-links", sys.argv[3]])
"""


def test_real_kill_during_pip_takes_pip_down_too(venv_home: Path) -> None:
    python = str(venv_home / "venv" / "bin" / "python")
    subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", "humanize"], check=True, capture_output=True)
    requirements(venv_home, "humanize==4.17.0\n")
    env = dict(os.environ, PRAXIS_FAULT_POINT="server.during_pip")
    proc = subprocess.run([sys.executable, "-c", DEPS_CHILD, str(REPO / ".build" / "collections"),
                           str(venv_home), str(WHEELHOUSE)], env=env, start_new_session=True,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == -9
    # pip was in the killed process group: given time it would have installed humanize; it did not
    time.sleep(3)
    req_file = str(venv_home / "mcp_server" / "requirements.txt")
    assert serverops.unsatisfied_requirements(python, req_file) == ["humanize==4.17.0"]
