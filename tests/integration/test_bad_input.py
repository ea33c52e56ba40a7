"""SPEC §7: bad input gets a message saying what is wrong and what to do next, and changes nothing.
(A held lock: test_locks.py; a backup that fails verification: test_rollback.py.)"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.harness import Host
from tests.integration.conftest import NO_CHANGE, output, snapshot, tree_diff

pytestmark = pytest.mark.slow


def git(repo: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture(scope="module")
def fleet(make_fleet: Any) -> Any:
    fleet = make_fleet("badinput")
    fleet.add("h", "v1")
    fleet.source("v2")
    return fleet


def run(fleet: Any, source: str, *args: str) -> tuple[str, int]:
    proc = fleet.playbook("upgrade.yml", *args, extra={"praxis_source": source})
    return output(proc), proc.returncode


def fresh_source(fleet: Any, name: str) -> Path:
    dest = fleet.workdir / "bad-sources" / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(fleet.source("v2"), dest, symlinks=True)
    return dest


# --- bad sources: refused on the controller before any host is touched ----------------------------

def relative_source(fleet: Any) -> str:
    return "sources/v2"


def missing_source(fleet: Any) -> str:
    return str(fleet.workdir / "no-such-checkout")


def dirty_source(fleet: Any) -> str:
    dest = fresh_source(fleet, "dirty")
    (dest / "universal" / "standards" / "scratch.md").write_text("# not committed\n")
    return str(dest)


def not_praxis_source(fleet: Any) -> str:
    dest = fleet.workdir / "bad-sources" / "empty-repo"
    dest.mkdir(parents=True, exist_ok=True)
    git(dest, "init", "-q")
    git(dest, "commit", "-q", "--allow-empty", "-m", "empty")
    return str(dest)


def escaping_symlink_source(fleet: Any) -> str:
    dest = fresh_source(fleet, "symlink")
    (dest / "universal" / "standards" / "leak.md").symlink_to("/etc/passwd")
    git(dest, "add", "universal/standards/leak.md")
    git(dest, "commit", "-q", "-m", "add a link leaving the source")
    return str(dest)


SOURCES: dict[str, tuple[Callable[[Any], str], list[str], list[str]]] = {
    # case: (make the source, words saying what is wrong, words saying what to do next)
    "relative": (relative_source, ["is relative"], ["absolute path"]),
    "nonexistent": (missing_source, ["does not exist"], ["clone prAxIs OS there"]),
    "dirty": (dirty_source, ["untracked changes", "scratch.md"], ["commit or stash them"]),
    "not_praxis": (not_praxis_source, ["is not a prAxIs OS source", "mcp_server/"], ["point praxis_source at"]),
    "escaping_symlink": (escaping_symlink_source, ["leak.md"], ["self-contained"]),
}


@pytest.mark.parametrize("case", sorted(SOURCES))
def test_bad_source_is_refused_and_nothing_changes(fleet: Any, case: str) -> None:
    make, wrong, next_step = SOURCES[case]
    host = fleet.hosts[0]
    source = make(fleet)
    before = snapshot(host.project)
    text, rc = run(fleet, source)
    assert rc != 0
    failure = text[text.index("fatal: [localhost]"):][:3000] if "fatal: [localhost]" in text else text[-4000:]
    failure = " ".join(failure.split())  # the YAML callback wraps long messages
    assert all(word in failure for word in wrong + next_step), failure
    assert "TASK [Preflight]" not in text
    assert tree_diff(before, snapshot(host.project)) == NO_CHANGE


# --- bad targets: refused in preflight, before the backup -------------------------------------------

def missing_project(fleet: Any, host: Host) -> Host:
    return Host("ghost", fleet.workdir / "projects" / "ghost", {})


def not_installed(fleet: Any, host: Host) -> Host:
    project = fleet.workdir / "projects" / "plain"
    (project / ".praxis-os" / "specs").mkdir(parents=True, exist_ok=True)
    (project / ".praxis-os" / "specs" / "notes.md").write_text("# my notes\n")
    return Host("plain", project, {})


def corrupt_facts(fleet: Any, host: Host) -> Host:
    path = host.home / ".cache" / "facts.d" / "praxis_upgrade.fact"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"schema": 1, "session_id": ')
    return host


def corrupt_lock(fleet: Any, host: Host) -> Host:
    (host.home / ".upgrade-lock").write_text("not json at all")
    return host


TARGETS: dict[str, tuple[Callable[[Any, Host], Host], list[str], list[str]]] = {
    "missing_project": (missing_project, ["does not exist"], ["check praxis_project_dir"]),
    "not_installed": (not_installed, ["is not a prAxIs OS installation"], ["install prAxIs OS there first"]),
    "corrupt_facts": (corrupt_facts, ["session state file", "praxis_upgrade.fact is corrupt"], ["move it aside"]),
    "corrupt_lock": (corrupt_lock, ["upgrade lock", "is corrupt"], ["praxis_break_lock=true"]),
}


@pytest.mark.parametrize("case", sorted(TARGETS))
def test_bad_target_is_refused_and_nothing_changes(fleet: Any, case: str) -> None:
    make, wrong, next_step = TARGETS[case]
    real = fleet.hosts[0]
    host = make(fleet, real)
    added = host is not real
    if added:
        fleet.hosts.append(host)
    try:
        root = host.project if host.project.exists() else fleet.workdir / "projects"
        before = snapshot(root)
        text, rc = run(fleet, str(fleet.source("v2")), "--limit", host.name + ",localhost")
        assert rc != 0
        failure = " ".join(text[text.index("fatal: [%s]" % host.name):][:3000].split())
        assert all(word in failure for word in wrong + next_step), failure
        assert "TASK [Backup]" not in text and "TASK [Roll back]" not in text
        assert tree_diff(before, snapshot(root)) == NO_CHANGE
    finally:
        if added:
            fleet.hosts.remove(host)
        elif case == "corrupt_facts":
            (real.home / ".cache" / "facts.d" / "praxis_upgrade.fact").unlink()
        elif case == "corrupt_lock":
            (real.home / ".upgrade-lock").unlink()
