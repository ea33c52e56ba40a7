"""content.py: three-way classification table, stage + apply per policy, idempotence, dry run, .gitignore."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import content
from ansible_collections.praxis.upgrade.plugins.module_utils.content import classify
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


A, B, C, L = h("a"), h("b"), h("c"), h("local edit")
P = "workflows/wf/x.md"


# ---------------------------------------------------------------- classification table

# (name, local, base, upstream, history, expected class of P)
CASES = [
    ("new upstream file", None, {}, A, [], "add"),
    ("new upstream file, base known", None, {"other": C}, A, [], "add"),
    ("locally deleted framework file comes back", None, {P: A}, A, [], "add"),
    ("same as upstream", A, {P: B}, A, [B], "unchanged"),
    ("same as upstream, no base", A, {}, A, [], "unchanged"),
    ("pristine by base", B, {P: B}, A, [], "update"),
    ("pristine by history, no base", B, {}, A, [B], "update"),
    ("pristine by history although base differs", C, {P: B}, A, [B, C], "update"),
    ("modified, upstream equals base", L, {P: A}, A, [B], "keep"),
    ("modified, no base, upstream never changed", L, {}, A, [], "keep"),
    ("modified, upstream changed since base", L, {P: B}, A, [B], "conflict"),
    ("modified, no base, upstream has older versions", L, {}, A, [B], "conflict"),
    ("user file colliding with a new upstream file", L, {"other": C}, A, [], "conflict"),
    ("pristine by base, removed upstream", B, {P: B}, None, [], "delete"),
    ("pristine by history, removed upstream, no base", B, {}, None, [B], "delete"),
    ("modified, removed upstream", L, {P: B}, None, [B], "keep_removed"),
    ("modified, removed upstream, no base", L, {}, None, [B], "keep_removed"),
    ("user file in a framework dir", L, {}, None, [], "user"),
    ("user file, base known", L, {"other": C}, None, [], "user"),
]


@pytest.mark.parametrize("name,local,base,upstream,history,expected", CASES, ids=[c[0] for c in CASES])
def test_classification_table(name: str, local: Optional[str], base: Dict[str, str], upstream: Optional[str],
                              history: List[str], expected: str) -> None:
    plan = classify({P: local} if local else {}, base, {P: upstream} if upstream else {},
                    {P: history} if history else {})
    assert plan.class_of(P) == expected
    assert sum(plan.counts().values()) == 1


@pytest.mark.parametrize("local,base,history,expected", [
    (B, {"usage/g.md": B}, {}, "keep_removed"),      # pristine, but usage/ is merge-only: never deleted
    (B, {}, {"usage/g.md": [B]}, "keep_removed"),
    (L, {}, {"usage/g.md": [B]}, "keep_removed"),
    (L, {}, {}, "user"),
])
def test_merge_only_trees_are_never_deleted(local: str, base: dict, history: dict, expected: str) -> None:
    plan = classify({"usage/g.md": local}, base, {}, history)
    assert plan.class_of("usage/g.md") == expected
    other = classify({"usage/g.md": B}, {"usage/g.md": B}, {}, {}, merge_only_prefixes=())
    assert other.class_of("usage/g.md") == "delete"


def test_updates_and_adds_still_happen_in_merge_only_trees() -> None:
    plan = classify({"usage/g.md": B}, {"usage/g.md": B}, {"usage/g.md": A, "usage/new.md": C}, {})
    assert plan["update"] == ["usage/g.md"] and plan["add"] == ["usage/new.md"]


def test_plan_shape() -> None:
    plan = classify({"b": A, "a": B}, {"a": B}, {"a": A, "b": A, "c": C}, {})
    assert plan.counts() == {"add": 1, "update": 1, "unchanged": 1, "keep": 0, "conflict": 0, "delete": 0,
                             "user": 0, "keep_removed": 0}
    assert plan["add"] == ["c"] and plan.changes
    assert plan.class_of("nowhere") is None
    assert not classify({"a": A}, {}, {"a": A}, {}).changes


def test_local_manifest_prefixes_each_tree_and_ignores_junk(tmp_path: Path) -> None:
    (tmp_path / "standards" / "universal").mkdir(parents=True)
    (tmp_path / "standards" / "universal" / "s.md").write_text("s")
    (tmp_path / "standards" / "development").mkdir()
    (tmp_path / "standards" / "development" / "mine.md").write_text("user tree")
    (tmp_path / "scripts" / "__pycache__").mkdir(parents=True)
    (tmp_path / "scripts" / "__pycache__" / "x.pyc").write_text("junk")
    (tmp_path / "scripts" / "run.py").write_text("r")
    assert content.local_manifest(str(tmp_path)) == {"standards/universal/s.md": h("s"), "scripts/run.py": h("r")}
    assert content.only_trees({"mcp_server/a.py": A, "usage/x": B, "usagex/y": C}) == {"usage/x": B}


# ---------------------------------------------------------------- apply

def write(root: Path, files: Dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def snapshot(root: Path) -> Dict[str, object]:
    """Every path below root with its content hash (files), link target (links) or 'dir'."""
    state: Dict[str, object] = {}
    for current, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(current, name)
            rel = os.path.relpath(path, str(root))
            if os.path.islink(path):
                state[rel] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                state[rel] = "dir"
            else:
                with open(path, "rb") as handle:
                    state[rel] = (hashlib.sha256(handle.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return state


BASE_FILES = {
    "workflows/wf/pristine.md": "v1 pristine\n",
    "workflows/wf/kept.md": "same in v1 and v2\n",
    "workflows/wf/conflict.md": "v1 conflict\n",
    "workflows/old/gone.md": "v1 gone\n",
    "standards/universal/edited-gone.md": "v1 edited gone\n",
    "usage/guide.md": "v1 guide\n",
}
UPSTREAM_FILES = {
    "workflows/wf/pristine.md": "v2 pristine\n",
    "workflows/wf/kept.md": "same in v1 and v2\n",
    "workflows/wf/conflict.md": "v2 conflict\n",
    "workflows/new/added.md": "v2 added\n",
    "scripts/tool.py": "print('v2')\n",
}


@pytest.fixture()
def setup(tmp_path: Path):
    """(home, staged source dir, base, upstream) for an installation of v1 with local edits."""
    home, staged = tmp_path / "project" / ".praxis-os", tmp_path / "staged"
    write(home, BASE_FILES)
    write(home, {"workflows/wf/kept.md": "locally edited\n", "workflows/wf/conflict.md": "locally edited\n",
                 "standards/universal/edited-gone.md": "locally edited\n", "workflows/mine/flow.md": "user\n"})
    (home / "usage").mkdir(exist_ok=True)
    write(staged, UPSTREAM_FILES)
    (staged / "scripts" / "tool.py").chmod(0o755)
    base = {rel: h(text) for rel, text in BASE_FILES.items()}
    upstream = build_manifest(str(staged))
    return home, staged, base, upstream


def plan_for(home: Path, base: dict, upstream: dict) -> content.Plan:
    return classify(content.local_manifest(str(home)), base, upstream, {})


def apply(plan: content.Plan, home: Path, staged: Optional[Path], policy: str,
          fault: Optional[Callable[[], None]] = None) -> Dict[str, object]:
    """Stage `plan` from `staged` (the content phase), then apply it (the server phase), as the upgrade does."""
    project = home.parent
    document = content.stage_plan(plan, str(home), str(project), str(staged) if staged else "", policy)
    result = content.apply_plan(str(home), str(project), str(staged / content.PLAN_NAME), fault=fault)
    result.update(counts=document["counts"], conflict=document["conflicts"])
    return result


def test_the_fixture_plan(setup) -> None:
    home, _staged, base, upstream = setup
    plan = plan_for(home, base, upstream)
    assert plan.classes == {
        "add": ["scripts/tool.py", "workflows/new/added.md"], "update": ["workflows/wf/pristine.md"],
        "unchanged": [], "keep": ["workflows/wf/kept.md"], "conflict": ["workflows/wf/conflict.md"],
        "delete": ["workflows/old/gone.md"],
        "user": ["workflows/mine/flow.md"],
        "keep_removed": ["standards/universal/edited-gone.md", "usage/guide.md"],
    }


def test_apply_keep_local_then_idempotent(setup) -> None:
    home, staged, base, upstream = setup
    result = apply(plan_for(home, base, upstream), home, staged, "keep_local")
    assert result["written"] == ["scripts/tool.py", "workflows/new/added.md", "workflows/wf/pristine.md"]
    assert result["upstream_written"] == ["workflows/wf/conflict.md.upstream"]
    assert result["deleted"] == ["workflows/old/gone.md"] and result["verified"] is True
    assert result["counts"]["conflict"] == 1 and result["conflict"] == ["workflows/wf/conflict.md"]
    assert (home / "workflows/wf/conflict.md").read_text() == "locally edited\n"
    assert (home / "workflows/wf/conflict.md.upstream").read_text() == "v2 conflict\n"
    assert (home / "workflows/wf/kept.md").read_text() == "locally edited\n"
    assert (home / "workflows/wf/pristine.md").read_text() == "v2 pristine\n"
    assert (home / "workflows/mine/flow.md").read_text() == "user\n"
    assert (home / "usage/guide.md").read_text() == "v1 guide\n"
    assert not (home / "workflows/old").exists()          # emptied dir pruned
    assert (home / "workflows").is_dir()                  # the tree root stays
    assert os.stat(home / "scripts/tool.py").st_mode & 0o777 == 0o755

    before = snapshot(home)
    again_plan = plan_for(home, base, upstream)
    assert again_plan["conflict"] == ["workflows/wf/conflict.md"]
    again = apply(again_plan, home, staged, "keep_local")
    assert (again["written"], again["upstream_written"], again["deleted"]) == ([], [], [])
    assert snapshot(home) == before
    assert "workflows/wf/conflict.md.upstream" in again_plan["user"]


def test_apply_take_upstream_then_idempotent(setup) -> None:
    home, staged, base, upstream = setup
    result = apply(plan_for(home, base, upstream), home, staged, "take_upstream")
    assert "workflows/wf/conflict.md" in result["written"] and result["upstream_written"] == []
    assert (home / "workflows/wf/conflict.md").read_text() == "v2 conflict\n"
    assert not (home / "workflows/wf/conflict.md.upstream").exists()
    before = snapshot(home)
    again_plan = plan_for(home, base, upstream)
    assert not again_plan.changes
    apply(again_plan, home, staged, "take_upstream")
    assert snapshot(home) == before


def test_apply_fail_policy_refuses_before_writing(setup) -> None:
    home, staged, base, upstream = setup
    before = snapshot(home)
    with pytest.raises(content.ConflictError, match=r"workflows/wf/conflict.md.*praxis_conflict_policy=keep_local") \
            as info:
        apply(plan_for(home, base, upstream), home, staged, "fail")
    assert info.value.paths == ["workflows/wf/conflict.md"]
    assert snapshot(home) == before


def test_apply_fail_policy_without_conflicts_applies(setup) -> None:
    home, staged, base, upstream = setup
    (home / "workflows/wf/conflict.md").write_text("v1 conflict\n")
    result = apply(plan_for(home, base, upstream), home, staged, "fail")
    assert "workflows/wf/conflict.md" in result["written"]


def test_check_mode_writes_nothing(setup) -> None:
    home, _staged, base, upstream = setup
    before = snapshot(home)
    result = content.preview(plan_for(home, base, upstream), str(home), "keep_local")
    assert result["written"] == ["scripts/tool.py", "workflows/new/added.md", "workflows/wf/pristine.md"]
    assert result["upstream_written"] == ["workflows/wf/conflict.md.upstream"]
    assert result["deleted"] == ["workflows/old/gone.md"]
    assert snapshot(home) == before


def test_interrupted_apply_completes_on_rerun(setup) -> None:
    home, staged, base, upstream = setup

    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash()

    with pytest.raises(Crash):
        apply(plan_for(home, base, upstream), home, staged, "keep_local", fault=crash)
    assert (home / "scripts/tool.py").exists() and not (home / "workflows/wf/pristine.md").read_text() == "v2 pristine\n"
    content.apply_plan(str(home), str(home.parent), str(staged / content.PLAN_NAME))  # the same plan, re-run
    reference = setup_reference(home.parent.parent / "ref", staged, base, upstream)
    assert content.local_manifest(str(home)) == content.local_manifest(str(reference))


def test_a_rerun_removes_the_temp_file_a_killed_copy_left(setup) -> None:
    """A run killed inside copy_file_atomic leaves `.<name>.<8 random>.tmp` beside the target; the re-run's
    apply removes it (only temp files named after one of its targets: a user's own `.notes.tmp` stays)."""
    home, staged, base, upstream = setup
    plan = plan_for(home, base, upstream)
    content.stage_plan(plan, str(home), str(home.parent), str(staged), "keep_local")
    left = home / "workflows" / "wf" / ".pristine.md.k3j_9xQ2.tmp"
    left.write_text("half a copy")
    mine = home / "workflows" / "wf" / ".notes.tmp"
    mine.write_text("the user's")
    content.apply_plan(str(home), str(home.parent), str(staged / content.PLAN_NAME))
    assert not left.exists() and mine.read_text() == "the user's"


def setup_reference(root: Path, staged: Path, base: dict, upstream: dict) -> Path:
    home = root / ".praxis-os"
    write(home, BASE_FILES)
    write(home, {"workflows/wf/kept.md": "locally edited\n", "workflows/wf/conflict.md": "locally edited\n",
                 "standards/universal/edited-gone.md": "locally edited\n", "workflows/mine/flow.md": "user\n"})
    apply(plan_for(home, base, upstream), home, staged, "keep_local")
    return home


def test_fault_hook_runs_even_without_writes(setup) -> None:
    home, staged, _base, upstream = setup
    calls: List[int] = []
    plan = classify({}, {}, {}, {})
    apply(plan, home, staged, "keep_local", fault=lambda: calls.append(1))
    assert calls == [1]


def test_corrupt_staging_is_refused(setup) -> None:
    home, staged, base, upstream = setup
    (staged / "workflows/new/added.md").write_text("tampered\n")
    with pytest.raises(content.ContentError, match="the staged source is corrupt"):
        apply(plan_for(home, base, upstream), home, staged, "keep_local")
    os.unlink(staged / "workflows/new/added.md")
    with pytest.raises(content.ContentError, match="lacks workflows/new/added.md"):
        apply(plan_for(home, base, upstream), home, staged, "keep_local")
    with pytest.raises(content.ContentError, match="no staged source"):
        apply(plan_for(home, base, upstream), home, None, "keep_local")


def test_targets_are_checked_before_any_write(setup, tmp_path: Path) -> None:
    home, staged, base, upstream = setup
    (home / "workflows/new/added.md").mkdir(parents=True)          # a directory where a file goes
    before = snapshot(home)
    with pytest.raises(content.ContentError, match="is a directory"):
        apply(plan_for(home, base, upstream), home, staged, "keep_local")
    assert snapshot(home) == before
    os.rmdir(home / "workflows/new/added.md")
    os.rmdir(home / "workflows/new")
    (home / "workflows/new").write_text("a file where a directory goes")
    with pytest.raises(content.ContentError, match="needs a directory"):
        apply(plan_for(home, base, upstream), home, staged, "keep_local")
    os.unlink(home / "workflows/new")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), home / "workflows/new")
    with pytest.raises(ValueError, match="points outside"):   # inside a tree: refused while hashing
        plan_for(home, base, upstream)
    os.unlink(home / "workflows/new")
    os.symlink(str(outside), home / "scripts")                 # a whole tree elsewhere: refused on write
    with pytest.raises(content.ContentError, match="would leave"):
        apply(plan_for(home, base, upstream), home, staged, "keep_local")
    assert list(outside.iterdir()) == []
    bad = content.Plan({"add": ["../escape"]}, {}, {"../escape": A})
    with pytest.raises(content.ContentError, match="unsafe path"):
        apply(bad, home, staged, "keep_local")


def test_unknown_policy_is_refused(setup) -> None:
    home, staged, base, upstream = setup
    with pytest.raises(ValueError, match="praxis_conflict_policy"):
        apply(plan_for(home, base, upstream), home, staged, "merge")


def test_verify_reports_what_does_not_hold(setup) -> None:
    home, staged, base, upstream = setup
    plan = plan_for(home, base, upstream)
    apply(plan, home, staged, "keep_local")
    document = content.load_plan(str(staged / content.PLAN_NAME))
    assert content.verify_plan(document, str(home), str(home.parent)) == []
    (home / "workflows/wf/pristine.md").write_text("drift\n")
    (home / "workflows/old").mkdir()
    (home / "workflows/old/gone.md").write_text("back\n")
    assert content.verify_plan(document, str(home), str(home.parent)) == ["workflows/wf/pristine.md",
                                                                          "workflows/old/gone.md"]


def test_diff_listing(setup) -> None:
    home, _staged, base, upstream = setup
    plan = plan_for(home, base, upstream)
    listing = content.diff_listing(plan, "keep_local", [".praxis-os/venv/"])
    assert "workflows/wf/pristine.md  %s\n" % h("v1 pristine\n")[:12] in listing["before"]
    assert "workflows/wf/conflict.md.upstream  %s  (conflict: upstream beside)" % h("v2 conflict\n")[:12] \
        in listing["after"]
    assert "workflows/old/gone.md" in listing["before"] and "workflows/old/gone.md" not in listing["after"]
    assert "../.gitignore  + .praxis-os/venv/\n" in listing["after"]
    taken = content.diff_listing(plan, "take_upstream")
    assert "upstream taken, local copy in the backup" in taken["after"]


# ---------------------------------------------------------------- .gitignore

def test_gitignore_created_when_missing(tmp_path: Path) -> None:
    added = content.append_gitignore(str(tmp_path))
    assert added == list(content.GITIGNORE_ENTRIES)
    assert (tmp_path / ".gitignore").read_text() == "".join(e + "\n" for e in content.GITIGNORE_ENTRIES)
    assert content.append_gitignore(str(tmp_path)) == []


def test_gitignore_appends_only_missing_lines_and_keeps_bytes(tmp_path: Path) -> None:
    original = b"node_modules/\r\n.praxis-os/venv/   \n# mine\n.praxis-os/.cache/"
    (tmp_path / ".gitignore").write_bytes(original)
    (tmp_path / ".gitignore").chmod(0o600)
    added = content.append_gitignore(str(tmp_path), [".praxis-os/venv/", ".praxis-os/.cache/", "a", "a", "b "])
    assert added == ["a", "b"]
    data = (tmp_path / ".gitignore").read_bytes()
    assert data == original + b"\na\nb\n"
    assert os.stat(tmp_path / ".gitignore").st_mode & 0o777 == 0o600


def test_gitignore_check_mode_writes_nothing(tmp_path: Path) -> None:
    assert content.append_gitignore(str(tmp_path), ["x"], check=True) == ["x"]
    assert not (tmp_path / ".gitignore").exists()


def test_gitignore_symlinks(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "gitignore").write_text("x\n")
    os.symlink("config/gitignore", project / ".gitignore")
    assert content.append_gitignore(str(project), ["y"]) == ["y"]
    assert (project / "config" / "gitignore").read_text() == "x\ny\n"
    assert os.path.islink(project / ".gitignore")
    os.unlink(project / ".gitignore")
    (tmp_path / "elsewhere").write_text("")
    os.symlink(str(tmp_path / "elsewhere"), project / ".gitignore")
    with pytest.raises(ValueError, match="outside the project"):
        content.append_gitignore(str(project), ["y"])
    assert (tmp_path / "elsewhere").read_text() == ""


# ---------------------------------------------------------------- faults seam

def test_fault_point_kills_its_process_group_only_when_armed() -> None:
    code = ("from ansible_collections.praxis.upgrade.plugins.module_utils.faults import fault_point\n"
            "fault_point('content.midway'); print('survived')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    inert = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, start_new_session=True,
                           check=False)
    assert inert.returncode == 0 and inert.stdout == b"survived\n"
    env["PRAXIS_FAULT_POINT"] = "content.midway"
    armed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, start_new_session=True,
                           check=False)
    assert armed.returncode == -9 and armed.stdout == b""
    env["PRAXIS_FAULT_POINT"] = "backup.done"
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, start_new_session=True,
                           check=False)
    assert other.returncode == 0


def test_fault_point_is_inert_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.praxis.upgrade.plugins.module_utils import faults
    monkeypatch.setenv("PRAXIS_FAULT_POINT", "server.during_pip")
    assert faults.armed("server.during_pip") and not faults.armed("content.midway")
    faults.fault_point("content.midway")
    monkeypatch.delenv("PRAXIS_FAULT_POINT")
    faults.fault_point("server.during_pip")
