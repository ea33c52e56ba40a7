"""module_utils/install.py: what a project holds, what install.yml does there, the journal and the undo."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import install, lock

COMMIT, OTHER = "a" * 40, "b" * 40


def tree(root: Path) -> Dict[str, str]:
    """{rel: sha256 + mode | 'dir'} of everything below `root`."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(current, name), root) + "/"] = "dir"
        for name in files:
            path = os.path.join(current, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = "%s %o" % (hashlib.sha256(handle.read()).hexdigest(),
                                                                os.stat(path).st_mode & 0o7777)
    return found


def owner(session: str = "install-1") -> dict:
    return lock.make_owner(session, COMMIT, "me@ctl", "h", "run-1")


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def fake_install(project: Path) -> None:
    """What the later steps of an install write (inside .praxis-os and the project files)."""
    home = project / ".praxis-os"
    write(home / "mcp_server" / "__main__.py", "print('server')\n")
    write(home / "venv" / "bin" / "python", "#!/bin/sh\n", 0o755)
    write(home / "VERSION.txt", "commit=%s\n" % COMMIT)
    write(home / ".cache" / "base-manifest.json", "{}")
    write(home / "standards" / "universal" / "x.md", "x\n")
    write(project / ".gitignore", "node_modules/\n.praxis-os/venv/\n")
    write(project / ".cursorrules", "rules\n")
    write(project / ".cursor" / "mcp.json", json.dumps({"mcpServers": {"praxis-os-rag": {}}}))


# --- decide: one table of what install.yml does -------------------------------------------------------

@pytest.mark.parametrize("status,mode,installed,action", [
    ("absent", "install", None, "install"),
    ("empty", "install", None, "install"),
    ("interrupted", "install", None, "install"),
    ("installed", "install", COMMIT, "check_health"),
    ("installed", "install", OTHER, "refuse"),
    ("docs", "install", COMMIT, "refuse"),
    ("docs", "adopt", COMMIT, "adopt"),
    ("installed", "adopt", OTHER, "nothing"),
    ("absent", "adopt", None, "refuse"),
    ("interrupted", "adopt", None, "refuse"),
])
def test_decide(status: str, mode: str, installed: str, action: str) -> None:
    got, refusal = install.decide(status, mode, COMMIT, installed, "/p/.praxis-os")
    assert got == action
    assert (refusal is not None) == (action == "refuse")
    if refusal:
        assert "nothing was changed" in refusal and "Next:" in refusal


def test_refusals_name_the_playbook_to_use_instead() -> None:
    assert "praxis.upgrade.upgrade" in install.decide("installed", "install", COMMIT, OTHER, "/p/h")[1]
    assert "praxis_install_mode=adopt" in install.decide("docs", "install", COMMIT, COMMIT, "/p/h")[1]
    assert "praxis.upgrade.install" in install.decide("absent", "adopt", COMMIT, None, "/p/h")[1]


def test_status_of_each_kind_of_project(tmp_path: Path) -> None:
    home = tmp_path / ".praxis-os"
    assert install.status_of(str(home)) == "absent"
    write(home / "specs" / "mine.md", "mine\n")
    assert install.status_of(str(home)) == "empty"  # user content only: nothing installed
    write(home / "mcp_server" / "__main__.py", "")
    assert install.status_of(str(home)) == "docs"
    write(home / "VERSION.txt", "commit=%s\n" % COMMIT)
    assert install.status_of(str(home)) == "installed" and install.recorded_commit(str(home)) == COMMIT
    write(home / install.JOURNAL, "{}")
    assert install.status_of(str(home)) == "interrupted"
    (tmp_path / "file").write_text("")
    with pytest.raises(install.InstallError, match="not a directory"):
        install.status_of(str(tmp_path / "file"))


def test_recorded_commit_falls_back_to_the_base_manifest(tmp_path: Path) -> None:
    write(tmp_path / ".cache" / "base-manifest.json", json.dumps({"commit": OTHER, "files": {}}))
    assert install.recorded_commit(str(tmp_path)) == OTHER
    write(tmp_path / "VERSION.txt", "commit=%s\n" % COMMIT)
    assert install.recorded_commit(str(tmp_path)) == COMMIT


# --- begin + undo: the project exactly as before ------------------------------------------------------

@pytest.mark.parametrize("existing_home", [False, True])
def test_undo_after_a_full_install_restores_the_project_exactly(tmp_path: Path, existing_home: bool) -> None:
    project = tmp_path / "p"
    write(project / ".gitignore", "node_modules/\n", 0o600)
    write(project / ".cursor" / "mcp.json", json.dumps({"mcpServers": {"github": {"command": "npx"}}}))
    write(project / "src" / "app.py", "app\n")
    if existing_home:
        write(project / ".praxis-os" / "specs" / "s.md", "spec\n")
        write(project / ".praxis-os" / ".cache" / "notes", "kept\n")
    before = tree(project)
    home = str(project / ".praxis-os")
    begun = install.begin(str(project), home, owner(), COMMIT)
    assert begun["created_home"] is not existing_home and begun["lock"] == "acquired"
    journal = install.read_journal(home)
    assert journal["project"][".gitignore"]["existed"] and not journal["project"][".cursorrules"]["existed"]
    fake_install(project)
    stopped = []
    result = install.undo(str(project), home, lambda started: stopped.append(started) or "stopped")
    assert result["undone"] and stopped == [[]] and result["removed_home"] is not existing_home
    assert tree(project) == before
    assert install.undo(str(project), home, lambda started: "again")["undone"] is False  # idempotent: journal gone


def test_undo_stops_a_server_the_install_started_before_it_published_itself(tmp_path: Path) -> None:
    """A real server publishes its state file only after its first index build (minutes): an install killed
    meanwhile leaves only the journalled pid naming it, and the undo of the next run stops it (verified as
    this project's mcp_server: a journalled pid running something else is never signalled)."""
    from ansible_collections.praxis.upgrade.plugins.modules import praxis_install

    project = tmp_path / "p"
    project.mkdir()
    home = str(project / ".praxis-os")
    assert install.record_started(home, 1) is False  # no install journal: not an install
    install.begin(str(project), home, owner(), COMMIT)
    building = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "mcp_server",
                                 "--transport", "http"], cwd=str(project))
    try:
        deadline = time.monotonic() + 10  # /proc shows the argv once exec has laid it out
        while "mcp_server" not in open("/proc/%d/cmdline" % building.pid, "rb").read().decode() \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert install.record_started(home, building.pid) and install.record_started(home, os.getpid())
        assert install.started_pids(install.read_journal(home)) == sorted([building.pid, os.getpid()])
        stopper = praxis_install._stopper(dict(server_mode="auto", systemd_unit="", systemd_scope="system"), home)
        result = install.undo(str(project), home, stopper)
        assert result["stopped"].startswith("stopped started pid %d with SIG" % building.pid), result
        assert building.wait(timeout=10) is not None and "pid %d" % os.getpid() not in result["stopped"]
        assert not os.path.exists(home)
    finally:
        if building.poll() is None:
            building.kill()
            building.wait()


def test_undo_resumes_after_a_crash_midway(tmp_path: Path) -> None:
    project = tmp_path / "p"
    write(project / ".praxis-os" / "specs" / "s.md", "spec\n")
    before = tree(project)
    home = str(project / ".praxis-os")
    install.begin(str(project), home, owner(), COMMIT)
    fake_install(project)
    journal = install.read_journal(home)
    install._remove_added(home, journal["before"])  # the first undo died after removing the trees
    install.undo(str(project), home, lambda started: None)
    assert tree(project) == before


def test_begin_check_mode_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / ".praxis-os"
    assert install.begin(str(tmp_path), str(home), owner(), COMMIT, check=True)["created_home"]
    assert not home.exists()
    assert install.create_venv(str(home), check=True)["created"] and not home.exists()


def test_a_corrupt_journal_is_refused_with_a_next_step(tmp_path: Path) -> None:
    write(tmp_path / install.JOURNAL, json.dumps({"schema": 9}))
    with pytest.raises(install.InstallError, match="Next:"):
        install.undo(str(tmp_path.parent), str(tmp_path), lambda started: None)


def test_project_files_that_are_links_are_refused_before_anything_is_created(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("x")
    (tmp_path / ".gitignore").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(install.InstallError, match="not a regular file"):
        install.begin(str(tmp_path), str(tmp_path / ".praxis-os"), owner(), COMMIT)


def test_finish_releases_the_lock_removes_staging_and_the_journal(tmp_path: Path) -> None:
    home = tmp_path / ".praxis-os"
    install.begin(str(tmp_path), str(home), owner(), COMMIT)
    write(home / ".cache" / "upgrade" / COMMIT / "x", "staged\n")
    done = install.finish(str(home), "install-1", [str(home / ".cache" / "upgrade")])
    assert done["removed_staging"] == [str(home / ".cache" / "upgrade")]
    assert sorted(os.listdir(home)) == [".cache"]
    with pytest.raises(install.InstallError, match="not under"):
        install.finish(str(home), "install-1", [str(tmp_path)])


def test_session_row_has_one_install_phase_on_the_time_axis() -> None:
    row = install.session_row("s", "r", "2026-11-30T10:00:00Z", "2026-11-30T10:00:42Z")
    assert row["phases"]["install"]["duration_s"] == 42.0 and row["completed_phases"] == ["install"]
