"""praxis_preflight: facts and every refusal against real temp installations and a real python."""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.modules import praxis_preflight
from tests.unit.plugins.module_utils.test_procutil import FAKE_MAIN, kill_quietly, spawn_fake

INSTALLED = "a" * 40
TARGET = "b" * 40
REQUIREMENTS = b"mcp==2.3.0\n"


def write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def snapshot(root) -> dict:
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            found[os.path.relpath(path, root)] = open(path, "rb").read() if os.path.isfile(path) else None
    return found


@pytest.fixture
def project(tmp_path):
    """A small installation: server, standards, records, a venv whose python is the real interpreter."""
    project = tmp_path / "project"
    home = project / ".praxis-os"
    write(str(home / "mcp_server" / "__init__.py"), b"")
    write(str(home / "mcp_server" / "requirements.txt"), REQUIREMENTS)
    write(str(home / "standards" / "universal" / "a.md"), b"x" * 1000)
    write(str(home / "config.json"), b"{}")
    write(str(home / "VERSION.txt"), b"version=1.0.0\ncommit=%s\nsource=/src\n" % INSTALLED.encode())
    write(str(home / "venv" / "lib" / "big.bin"), b"v" * 50000)  # not backed up, not counted
    write(str(home / ".cache" / "index.bin"), b"c" * 50000)
    write(str(home / ".backups" / "old" / "f"), b"o" * 50000)
    write(str(project / ".gitignore"), b".praxis-os/venv/\n")
    os.makedirs(home / "venv" / "bin")
    os.symlink(sys.executable, home / "venv" / "bin" / "python")
    return project


@pytest.fixture
def preflight(run_module, project):
    def run(check_mode=False, **args):
        args.setdefault("project_dir", str(project))
        args.setdefault("target_commit", TARGET)
        args.setdefault("controller", "alice@ctl")
        return run_module(praxis_preflight, args, check_mode=check_mode)
    return run


def home_of(project) -> str:
    return str(project / ".praxis-os")


def put_state(project, **changes):
    session = states.new_session(TARGET, installed_commit=INSTALLED, controller="alice@ctl")
    session.update(changes)
    states.save(states.facts_path(home_of(project)), session)
    return session


def put_lock(project, session="FOREIGN", controller="bob@other", age=60):
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    owner = locks.make_owner(session, TARGET, controller, "web1", "run-0", states.iso(started))
    write(locks.lock_path(home_of(project)), json.dumps(owner).encode())
    return owner


def test_healthy_installation_facts(preflight, project):
    before = snapshot(project)
    result, failed = preflight()
    assert not failed and result["changed"] is False and result["problems"] == []
    assert result["praxis_home"] == home_of(project) and result["installed"] is True
    assert result["installed_commit"] == INSTALLED
    assert result["installed_requirements_sha256"] == hashlib.sha256(REQUIREMENTS).hexdigest()
    assert result["venv_python"].endswith("venv/bin/python")
    assert result["venv_python_version"] == sys.version
    assert result["disk_free_bytes"] > 0
    assert result["lock"] is None and result["lock_status"] == "free"
    assert result["last_session"] is None and result["resume"] is False and result["resume_session_id"] is None
    assert result["up_to_date"] is False and result["server_state"] is None
    assert result["server_pid"] is None and result["ide_server_pid"] is None and result["server_mode"] == "none"
    assert result["ansible_facts"] == {"ansible_local": {"praxis_upgrade": {}}}
    assert snapshot(project) == before  # read-only


def test_disk_estimate_counts_allocated_blocks_of_the_backup_set_only(preflight, project):
    result, failed = preflight(bytes_to_write=1000, files_to_write=3)
    assert not failed, result
    home = home_of(project)
    block = os.statvfs(home).f_frsize
    files = [os.path.join(home, rel) for rel in ("mcp_server/__init__.py", "mcp_server/requirements.txt",
                                                 "standards/universal/a.md", "config.json", "VERSION.txt")]
    files.append(str(project / ".gitignore"))
    # a copy allocates whole blocks per file (an empty file none), plus a block per copied directory
    counted = sum(-(-os.path.getsize(p) // block) * block for p in files) + 2 * block
    assert result["backup_bytes"] == counted  # venv, .cache and .backups are left out
    estimate = result["disk_estimate"]
    assert estimate["staging_bytes"] == 3 * (1000 + 3 * block)
    assert result["disk_needed_bytes"] == 2 * (counted + estimate["venv_snapshot_bytes"] + estimate["staging_bytes"]
                                               + estimate["index_bytes"] + estimate["records_bytes"])
    # the old estimate, 2 x (apparent bytes written + backed up), ignored blocks and staging
    assert result["disk_needed_bytes"] > 2 * (1000 + sum(os.path.getsize(p) for p in files)) * 4


def test_not_enough_disk_fails_with_next_step(preflight):
    result, failed = preflight(bytes_to_write=2 ** 60)
    assert failed and "not enough free disk" in result["msg"] and ".backups" in result["msg"]
    assert result["disk_needed_bytes"] > result["disk_free_bytes"]


def test_up_to_date_when_installed_is_target(preflight):
    result, failed = preflight(target_commit=INSTALLED)
    assert not failed and result["up_to_date"] is True


def test_commit_falls_back_to_base_manifest(preflight, project):
    home = home_of(project)
    os.unlink(os.path.join(home, "VERSION.txt"))
    result, failed = preflight()
    assert not failed, result
    assert result["installed_commit"] is None
    write(os.path.join(home, ".cache", "base-manifest.json"), json.dumps({"commit": "d" * 40, "files": {}}).encode())
    result, failed = preflight()
    assert not failed and result["installed_commit"] == "d" * 40


def test_last_commit_line_wins(preflight, project):
    with open(os.path.join(home_of(project), "VERSION.txt"), "a") as handle:
        handle.write("commit = %s\n" % TARGET)
    assert preflight()[0]["installed_commit"] == TARGET


def test_relative_project_dir_is_refused(preflight):
    result, failed = preflight(project_dir="relative/project")
    assert failed and "not absolute" in result["msg"] and "praxis_project_dir" in result["msg"]


def test_missing_project_dir_is_refused(preflight, tmp_path):
    result, failed = preflight(project_dir=str(tmp_path / "absent"))
    assert failed and "does not exist" in result["msg"] and result["problems"] == [result["msg"]]


def test_project_without_installation_is_refused(preflight, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result, failed = preflight(project_dir=str(empty))
    assert failed and "not installed" in result["msg"]


@pytest.mark.parametrize("remove", [["mcp_server"], ["VERSION.txt", "venv"]])
def test_incomplete_installation_is_refused(preflight, project, remove):
    import shutil

    for rel in remove:
        path = os.path.join(home_of(project), rel)
        shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    result, failed = preflight()
    assert failed and "not a prAxIs OS installation" in result["msg"]


def test_custom_home_name(preflight, project):
    os.rename(home_of(project), project / ".praxis-other")
    result, failed = preflight(praxis_home_name=".praxis-other")
    assert not failed and result["praxis_home"].endswith(".praxis-other")


def test_broken_venv_python_is_a_problem(preflight, project):
    python = os.path.join(home_of(project), "venv", "bin", "python")
    os.unlink(python)
    result, failed = preflight()
    assert failed and "venv python" in result["msg"] and "does not exist" in result["msg"]
    assert "python3 -m venv" in result["msg"]
    write(python, b"#!/bin/sh\necho broken >&2\nexit 3\n")
    os.chmod(python, 0o755)
    result, failed = preflight()
    assert failed and "exited with 3" in result["msg"] and "broken" in result["msg"]
    assert result["venv_python_version"] is None


def test_hanging_venv_python_times_out(preflight, project):
    python = os.path.join(home_of(project), "venv", "bin", "python")
    os.unlink(python)
    write(python, b"#!/bin/sh\nexec sleep 5\n")
    os.chmod(python, 0o755)
    result, failed = preflight(python_timeout=1)
    assert failed and "did not answer within 1 s" in result["msg"]


def test_unrunnable_venv_python(preflight, project):
    python = os.path.join(home_of(project), "venv", "bin", "python")
    os.unlink(python)
    write(python, b"not executable")
    result, failed = preflight()
    assert failed and "cannot be run" in result["msg"]


def test_foreign_live_lock_fails_unless_break_lock(preflight, project):
    owner = put_lock(project)
    result, failed = preflight()
    assert failed and result["lock_status"] == "foreign" and result["lock"] == owner
    for fact in ("FOREIGN", "bob@other", owner["started_at"], "praxis_break_lock=true"):
        assert fact in result["msg"]
    result, failed = preflight(break_lock=True)
    assert not failed and result["lock_status"] == "foreign"
    assert "break_lock" in json.dumps(result["warnings"])


def test_stale_lock_is_reported_not_fatal(preflight, project):
    put_lock(project, age=3 * 86400)
    result, failed = preflight()
    assert not failed and result["lock_status"] == "stale" and result["warnings_found"]


def test_corrupt_lock_fails_unless_break_lock(preflight, project):
    write(locks.lock_path(home_of(project)), b"{")
    result, failed = preflight()
    assert failed and result["lock_status"] == "broken" and "corrupt" in result["msg"]
    result, failed = preflight(break_lock=True)
    assert not failed and result["lock_status"] == "broken"


def test_interrupted_session_for_this_target_resumes(preflight, project):
    session = put_state(project, completed_phases=["preflight", "backup"])
    put_lock(project, session=session["session_id"], controller="alice@ctl")
    result, failed = preflight()
    assert not failed and result["resume"] is True and result["resume_session_id"] == session["session_id"]
    assert result["completed_phases"] == ["preflight", "backup"] and result["lock_status"] == "ours"
    assert result["last_session"]["session_id"] == session["session_id"]
    assert result["up_to_date"] is False
    # the same fact setup: fact_path=.../facts.d would set
    assert result["ansible_facts"]["ansible_local"]["praxis_upgrade"] == result["last_session"]


def test_interrupted_session_is_not_ours_from_another_controller(preflight, project):
    session = put_state(project)
    put_lock(project, session=session["session_id"], controller="alice@ctl")
    result, failed = preflight(controller="bob@other")
    assert failed and result["lock_status"] == "foreign"


def test_interrupted_session_for_other_target_names_rollback(preflight, project):
    put_state(project, target_commit="e" * 40)
    result, failed = preflight()
    assert failed and "playbooks/rollback.yml" in result["msg"] and "e" * 40 in result["msg"]


def test_finished_session_lock_is_stale(preflight, project):
    session = put_state(project, status="completed", finished_at=states.iso())
    put_lock(project, session=session["session_id"])
    result, failed = preflight()
    assert not failed and result["lock_status"] == "stale" and result["resume"] is False


def test_corrupt_state_file_fails_with_next_step(preflight, project):
    path = states.facts_path(home_of(project))
    write(path, b"{nope")
    result, failed = preflight()
    assert failed and path in result["msg"] and "move it aside" in result["msg"]


def test_several_problems_are_reported_together(preflight, project):
    os.unlink(os.path.join(home_of(project), "venv", "bin", "python"))
    put_lock(project)
    result, failed = preflight(bytes_to_write=2 ** 60)
    assert failed and len(result["problems"]) == 3 and "3 problem(s)" in result["msg"]


def test_server_state_is_returned_and_corrupt_one_is_a_warning(preflight, project):
    path = os.path.join(home_of(project), ".mcp_server_state.json")
    document = {"transport": "http", "url": "http://127.0.0.1:4242/mcp", "pid": 1}
    write(path, json.dumps(document).encode())
    assert preflight()[0]["server_state"] == document
    write(path, b"[1]")
    result, failed = preflight()
    assert not failed and result["server_state"] is None and result["warnings_found"]
    write(path, b"{")
    result, failed = preflight()
    assert not failed and result["server_state"] is None and "not valid JSON" in result["warnings_found"][0]


@pytest.mark.parametrize("transport, ide", [("dual", True), ("http", False)])
def test_an_ide_server_is_told_apart_from_one_the_upgrade_restarts(preflight, project, transport, ide):
    """The preflight role tells the operator about an IDE's server from ide_server_pid, not from prose."""
    home = Path(home_of(project))
    (home / "mcp_server" / "__main__.py").write_text(FAKE_MAIN)
    server = spawn_fake(home, FAKE_TRANSPORT=transport)
    try:
        result, failed = preflight()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        finally:
            kill_quietly(server.pid)
    assert not failed, result.get("msg")
    assert result["server_pid"] == server.pid
    assert result["ide_server_pid"] == (server.pid if ide else None)
    assert result["server_mode"] == ("none" if ide else "process")


def test_check_mode_runs_for_real_and_writes_nothing(preflight, project):
    before = snapshot(project)
    result, failed = preflight(check_mode=True)
    assert not failed and result["installed_commit"] == INSTALLED and result["venv_python_version"]
    assert snapshot(project) == before


def test_probe_reports_the_servers_health_as_praxis_health_would(preflight, project):
    """probe: the tools before come from this task (no separate praxis_health task): a fresh stdio server of the
    installation, spawned in the project with PYTHONPATH=<home> and the operator's server env."""
    from tests.unit.plugins.module_utils import mcp_test_servers as ts
    home = Path(home_of(project))
    (home / "mcp_server" / "__main__.py").write_text(
        "import runpy, sys\nassert sys.argv[1:] == ['--transport', 'stdio'], sys.argv\n"
        "sys.argv = [%r, 'mcp-stdio']\nrunpy.run_path(%r, run_name='__main__')\n" % (ts.SCRIPT, ts.SCRIPT))
    python = home / "venv" / "bin" / "python"
    python.unlink()
    python.write_text('#!/bin/sh\nexec %s "$@"\n' % ts.VENV_PYTHON)  # the dev venv (it has mcp) stands in
    python.chmod(0o755)
    result, failed = preflight(probe=True, server_env={"PRAXIS_TEST_VAR": "x"}, health_timeout=20)
    assert not failed, result.get("msg")
    health = result["health"]
    assert health["healthy"] is True and health["transport"] == "stdio" and health["url"] is None, health["errors"]
    assert "whoami" in health["tools"] and health["errors"] == []
    without, failed = preflight()
    assert not failed and without["health"] is None


def test_an_unhealthy_server_is_reported_not_failed(preflight, project):
    """The upgrade repairs an unhealthy installation, so preflight reports it (health.healthy false) and goes on."""
    result, failed = preflight(probe=True, health_timeout=10)
    assert not failed, result.get("msg")
    assert result["health"]["healthy"] is False and result["health"]["errors"]


def test_no_probe_when_a_check_failed(preflight, project):
    """A refused installation is not probed (nothing is spawned for it)."""
    os.unlink(os.path.join(home_of(project), "venv", "bin", "python"))
    result, failed = preflight(probe=True)
    assert failed and result["health"] is None
