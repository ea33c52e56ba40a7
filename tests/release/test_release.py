"""The release as a user gets it (`make release-test`).

The tree is released the way a maintainer does it (antsibull-changelog release, then ansible-galaxy
collection build) in a copy, the tarball is installed with `ansible-galaxy collection install` into an
EMPTY collections path, and the FQCN playbook `praxis.upgrade.upgrade` runs from an unrelated directory
with a minimal inventory (per host only `praxis_project_dir`, plus `praxis_source`; the local connection
because the fixture installations live on this machine) against fixture prAxIs OS installations: one
good upgrade, one broken one (designed failure message, `rolled_back` row), and one run through
ansible-runner (the engine AWX uses) from a private data dir. No ansible.cfg, no ANSIBLE_* variable of
the checkout reaches these runs.

PRAXIS_ANSIBLE_BIN=<venv>/bin runs the ansible-galaxy / ansible-playbook of another ansible-core (the
version matrix, `make matrix`); the changelog is always rendered with the dev venv's antsibull-changelog.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml

from tests.fixtures import praxis_fixture as fx
from tests.harness import Fleet

REPO = Path(__file__).resolve().parents[2]
DEV_BIN = Path(sys.executable).parent
ANSIBLE_BIN = Path(os.environ.get("PRAXIS_ANSIBLE_BIN") or DEV_BIN)
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
VERSION = GALAXY["version"]

# what the tarball must hold, and what must stay out of it (developer and test files)
SHIPPED = ["README.md", "COPYING", "CHANGELOG.rst", "changelogs/changelog.yaml", "bindep.txt", "meta/runtime.yml",
           "meta/execution-environment.yml", "playbooks/upgrade.yml", "playbooks/rollback.yml", "playbooks/install.yml",
           "playbooks/status.yml", "docs/execution-environment/execution-environment.yml"]
KEPT_OUT = ["tests/", "scripts/", "extensions/", "bench/", "requirements/", ".ci/", "changelogs/fragments/",
            "Makefile", "ansible.cfg", "pytest.ini", ".ansible-lint", ".gitignore", ".venv/", ".build/", ".cache/"]


@dataclass
class Release:
    tree: Path  # the released copy of the checkout (ansible_collections/praxis/upgrade)
    tarball: Path
    changelog: str
    collections: Path  # the collections path the tarball was installed into (empty before)
    ops: Path  # an unrelated working directory, like an operator's


def run(argv: List[str], cwd: Path, env: Dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=str(cwd), env=env, text=True, capture_output=True, timeout=timeout, check=False)


def output(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout or "") + (proc.stderr or "")


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment of a user's shell: nothing of the checkout's Ansible set-up, the tools on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    # pyenv shims answer `command -v python3.13` but fail unless that version is selected: interpreter
    # discovery on the (local) targets would pick one, so they stay off this PATH
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not p.rstrip("/").endswith("/shims")]
    env["PATH"] = os.pathsep.join([str(ANSIBLE_BIN), str(DEV_BIN)] + path)
    env["ANSIBLE_NOCOLOR"] = "1"
    env.update(extra)
    return env


def user_env(release: Release, **extra: str) -> Dict[str, str]:
    # An offline fleet's pip configuration (an operator sets it in pip.conf or the environment): the fixture
    # servers' dependencies come from the test wheelhouse, not from an index.
    return clean_env(ANSIBLE_COLLECTIONS_PATH=str(release.collections), PWD=str(release.ops),
                     PIP_NO_INDEX="1", PIP_FIND_LINKS=str(fx.wheelhouse()), **extra)


def copy_checkout(dest: Path) -> None:
    """The tracked and the new (not ignored) files of the checkout, as `git status` sees them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=str(REPO),
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    work = tmp_path_factory.mktemp("release")
    tree = work / "src" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    copy_checkout(tree)
    env = clean_env()
    done = run([str(DEV_BIN / "antsibull-changelog"), "release", "--version", VERSION], tree, env)
    assert done.returncode == 0, output(done)
    dist = work / "dist"
    done = run([str(ANSIBLE_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dist)], tree, env)
    assert done.returncode == 0, output(done)
    tarball = dist / ("%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], VERSION))
    assert tarball.is_file(), output(done)

    ops = work / "ops"  # nothing of the checkout here: no ansible.cfg, no collections
    collections = work / "collections"
    ops.mkdir()
    collections.mkdir()
    assert list(collections.iterdir()) == []
    done = run([str(ANSIBLE_BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections)],
               ops, clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)))
    assert done.returncode == 0, output(done)
    return Release(tree, tarball, (tree / "CHANGELOG.rst").read_text(), collections, ops)


# ---------------------------------------------------------------- the artifact

def test_tarball_holds_what_users_run_and_no_dev_files(release: Release) -> None:
    with tarfile.open(release.tarball) as tar:
        names = [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]
    assert [n for n in SHIPPED if n not in names] == []
    leaked = sorted(n for n in names for out in KEPT_OUT if n == out or n.startswith(out))
    assert leaked == [], leaked
    assert not [n for n in names if n.endswith((".pyc", ".tar.gz"))]
    modules = sorted(p.name for p in (REPO / "plugins" / "modules").glob("*.py"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("plugins/modules/") and n.endswith(".py")) == modules
    assert release.tarball.stat().st_size < 300_000


def test_installed_into_the_empty_path_and_found_there_only(release: Release) -> None:
    installed = release.collections / "ansible_collections" / "praxis" / "upgrade"
    assert json.loads((installed / "MANIFEST.json").read_text())["collection_info"]["version"] == VERSION
    assert sorted(p.name for p in release.collections.iterdir()) == ["ansible_collections"]
    listed = run([str(ANSIBLE_BIN / "ansible-galaxy"), "collection", "list", "praxis.upgrade", "--format", "json"],
                 release.ops, user_env(release))
    assert listed.returncode == 0, output(listed)
    assert {path: list(found) for path, found in json.loads(listed.stdout).items()} == {
        str(release.collections / "ansible_collections"): ["praxis.upgrade"]}


def module_doc(path: Path) -> Dict[str, Any]:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "DOCUMENTATION":
            return yaml.safe_load(ast.literal_eval(node.value))
    raise AssertionError("%s has no DOCUMENTATION" % path)


def test_changelog_lists_every_module_and_role_as_new_with_a_release_summary(release: Release) -> None:
    text = release.changelog
    assert "\nv%s\n" % VERSION in text
    section = text.split("\nv%s\n" % VERSION, 1)[1]
    assert "Release Summary\n---------------\n\nFirst release of ``praxis.upgrade``" in section

    def listed(title: str) -> List[str]:
        match = re.search(r"\n%s\n-+\n\n((?:- .*\n)+)" % title, section)
        return sorted(re.findall(r"^- praxis\.upgrade\.(\w+) - ", match.group(1), re.M)) if match else []

    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
    roles = sorted(p.parent.parent.name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))
    assert listed("New Modules") == modules
    assert listed("New Roles") == roles
    for path in (REPO / "plugins" / "modules").glob("*.py"):
        assert str(module_doc(path)["version_added"]) == VERSION, path
    for name in roles:
        spec = yaml.safe_load((REPO / "roles" / name / "meta" / "argument_specs.yml").read_text())
        assert str(spec["argument_specs"]["main"]["version_added"]) == VERSION, name
    changes = yaml.safe_load((release.tree / "changelogs" / "changelog.yaml").read_text())
    assert list(changes["releases"]) == [VERSION]
    assert not list((release.tree / "changelogs" / "fragments").glob("*.yml"))  # consumed by the release


def test_requires_ansible_is_the_oldest_tested_core() -> None:
    makefile = (REPO / "Makefile").read_text()
    oldest = re.search(r"^MATRIX_OLDEST := (\d+)\.(\d+)\.\d+$", makefile, re.M)
    newest = re.search(r"^MATRIX_NEWEST := (\d+)\.(\d+)\.\d+$", makefile, re.M)
    assert oldest and newest, "the Makefile names the ansible-core versions `make matrix` tests"
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=%s.%s.0" % oldest.groups()
    release_summary = (REPO / "changelogs" / "fragments" / "release-1.0.0.yml").read_text()
    assert "%s.%s" % oldest.groups() in release_summary and "%s.%s" % newest.groups() in release_summary


def test_execution_environment_metadata_is_read_by_ansible_builder(release: Release, tmp_path: Path) -> None:
    builder = DEV_BIN / "ansible-builder"
    introspect = run([str(builder), "introspect", "--sanitize", str(release.collections)], release.ops, clean_env())
    assert introspect.returncode == 0, output(introspect)
    found = yaml.safe_load(introspect.stdout)
    assert found["python"] == []  # stdlib and ansible-core only
    assert [line.split("#")[0].strip() for line in found["system"]] == ["git", "python3 [target]",
                                                                        "python3-venv [platform:dpkg target]"], found
    assert all(line.endswith("# from collection praxis.upgrade") for line in found["system"]), found
    # in the image bindep selects the default profile: git, not the targets' python3
    for profile, expected in (([], ["git"]), (["target"], ["git", "python3", "python3-venv"])):
        listed = run([str(DEV_BIN / "bindep"), "-f", str(REPO / "bindep.txt"), "--list_all", "newline", *profile],
                     release.ops, clean_env())
        assert listed.returncode == 0 and sorted(listed.stdout.split()) == expected, output(listed)
    created = run([str(builder), "create", "-f",
                   str(release.tree / "docs" / "execution-environment" / "execution-environment.yml"),
                   "-c", str(tmp_path / "context"), "--output-filename", "Containerfile"], release.ops, clean_env())
    assert created.returncode == 0, output(created)
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "praxis.upgrade" in (tmp_path / "context" / "_build" / "requirements.yml").read_text()


# ---------------------------------------------------------------- using it

def write_inventory(path: Path, fleet: Fleet, source: Path) -> Path:
    """A minimal inventory: praxis_project_dir per host, praxis_source for every play (the first one runs on
    localhost, outside group praxis), the local connection because the fixture installations live here."""
    hosts = {host.name: {"praxis_project_dir": str(host.project)} for host in fleet.hosts}
    path.write_text(yaml.safe_dump({"all": {
        "vars": {"praxis_source": str(source)},
        "children": {"praxis": {"hosts": hosts, "vars": {"ansible_connection": "local"}}},
    }}))
    return path


@pytest.fixture()
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(tmp_path / "fleet")
    try:
        yield made
    finally:
        made.stop()


def playbook(release: Release, inventory: Path, name: str) -> subprocess.CompletedProcess:
    return run([str(ANSIBLE_BIN / "ansible-playbook"), "-i", str(inventory), "praxis.upgrade." + name], release.ops,
               user_env(release), timeout=900)


def run_report(directory: Path) -> Dict[str, Any]:
    reports = sorted(directory.glob("upgrade-*.json"), key=lambda p: p.stat().st_mtime)
    assert reports, "no run report in %s" % directory
    return json.loads(reports[-1].read_text())


def test_upgrade_succeeds_from_the_installed_collection(release: Release, fleet: Fleet) -> None:
    fleet.add("web-1", "v1", http=True)
    fleet.add("web-2", "v1")
    source = fleet.source("v2")
    inventory = write_inventory(release.ops / "inventory.yml", fleet, source)

    proc = playbook(release, inventory, "upgrade")

    assert proc.returncode == 0, output(proc)[-8000:]
    target = fx.head_commit(source)
    assert {h.name: h.version_commit() for h in fleet.hosts} == {"web-1": target, "web-2": target}
    report = run_report(release.ops / "praxis-reports")  # the default report dir: the operator's directory
    assert {row["host"]: row["outcome"] for row in report["hosts"]} == {"web-1": "completed", "web-2": "completed"}
    status = playbook(release, inventory, "status")
    assert status.returncode == 0, output(status)[-6000:]


def test_failed_upgrade_rolls_back_with_the_designed_message(release: Release, fleet: Fleet) -> None:
    host = fleet.add("crashy", "v1", http=True)
    source = fleet.source("v2-crash")
    inventory = write_inventory(release.ops / "inventory-crash.yml", fleet, source)

    proc = playbook(release, inventory, "upgrade")

    text = output(proc)
    assert proc.returncode != 0, text[-8000:]
    assert re.search(r"Upgrade of crashy to v2\.0\.1-crash\S* failed in phase server: .*ImportError.*"
                     r" rolled back from backup \S+; server healthy after rollback: True\.", text, re.S), text[-8000:]
    assert host.version_commit() == host.install["commit"]
    rows = run_report(release.ops / "praxis-reports")["hosts"]
    assert [(r["host"], r["outcome"], r["failed_phase"]) for r in rows] == [("crashy", "rolled_back", "server")]


def test_upgrade_through_ansible_runner_from_a_private_data_dir(release: Release, fleet: Fleet,
                                                                tmp_path: Path) -> None:
    fleet.add("runner-1", "v1")
    source = fleet.source("v2")
    private = tmp_path / "runner"
    for sub in ("inventory", "env", "project"):
        (private / sub).mkdir(parents=True)
    private.chmod(0o700)
    write_inventory(private / "inventory" / "hosts.yml", fleet, source)
    (private / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": str(release.collections),
        "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(fx.wheelhouse())}))

    proc = run([str(DEV_BIN / "ansible-runner"), "run", str(private), "-p", "praxis.upgrade.upgrade",
                "--ident", "release"], private, clean_env(PWD=str(private)), timeout=900)

    artifacts = private / "artifacts" / "release"
    assert proc.returncode == 0, output(proc)[-8000:]
    assert (artifacts / "status").read_text() == "successful" and (artifacts / "rc").read_text() == "0"
    events = [json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")]
    stats = [e for e in events if e.get("event") == "playbook_on_stats"]
    assert stats and not stats[0]["event_data"].get("failures"), stats
    assert {e["event_data"].get("resolved_action") for e in events if e.get("event") == "runner_on_ok"} >= {
        "praxis.upgrade.praxis_source", "praxis.upgrade.praxis_state", "praxis.upgrade.praxis_content"}
    assert fleet.hosts[0].version_commit() == fx.head_commit(source)
