"""praxis_server in-process: swap/recover/deps, and stop/start/restart of real (fake) server processes
per mode - never touching another project's server with the same command line."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import procutil, state
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest
from ansible_collections.praxis.upgrade.plugins.module_utils.mcp_client import probe
from ansible_collections.praxis.upgrade.plugins.modules import praxis_server
from tests.unit.plugins.module_utils.test_procutil import kill_quietly, make_home, read_state, spawn_fake, wait_state_pid


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "project")


@pytest.fixture()
def started() -> Iterator[List[int]]:
    pids: List[int] = []
    yield pids
    for pid in pids:
        kill_quietly(pid)


def args(home: Path, action: str, **extra: Any) -> Dict[str, Any]:
    return dict(praxis_home=str(home), project_dir=str(home.parent), action=action, stop_timeouts=[3, 3, 3],
                timeout=20, **extra)


def test_swap_check_then_apply(run_module: Any, home: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "mcp_server").mkdir(parents=True)
    (source / "mcp_server" / "__main__.py").write_text("print('v2')\n")
    state.save(str(home / ".cache" / "facts.d" / "praxis_upgrade.fact"), state.new_session("abc", session_id="S9"))
    manifest = build_manifest(str(source / "mcp_server"), prefix="mcp_server/")
    opts = args(home, "swap", source_dir=str(source), manifest=manifest, session_id="S9")
    result, failed = run_module(praxis_server, opts, check_mode=True)
    assert not failed and result["changed"] and not result["swapped"]
    assert result["plan"] == ["would swap mcp_server/ (1 files: 0 added, 1 updated, 1 removed)"]
    assert "diff" not in result
    shown, failed = run_module(praxis_server, opts, check_mode=True, diff=True)
    assert not failed and shown["diff"]["prepared"].endswith(
        ":\n  would swap mcp_server/ (1 files: 0 added, 1 updated, 1 removed)\n")
    assert (home / "mcp_server" / "__init__.py").exists()
    result, failed = run_module(praxis_server, opts)
    assert not failed and result["swapped"] and result["swap"]["removed"] == ["mcp_server/__init__.py"]
    assert sorted(os.listdir(home / "mcp_server")) == ["__main__.py"]
    result, failed = run_module(praxis_server, opts)
    assert not failed and not result["changed"] and "already matches" in result["plan"][0]
    result, failed = run_module(praxis_server, args(home, "recover"))
    assert not failed and not result["changed"] and result["recovery"]["action"] == "none"


def test_swap_requires_its_options(run_module: Any, home: Path) -> None:
    result, failed = run_module(praxis_server, args(home, "swap"))
    assert failed and "source_dir" in result["msg"]


def test_deps_paths(run_module: Any, home: Path) -> None:
    result, failed = run_module(praxis_server, args(home, "deps"))
    assert not failed and not result["pip_ran"] and "nothing to install" in result["plan"][0]
    (home / "mcp_server" / "requirements.txt").write_text("humanize\n")
    (home / "venv" / "bin" / "python").unlink()
    result, failed = run_module(praxis_server, args(home, "deps"))
    assert failed and result["msg"].startswith("praxis_server deps failed for %s" % home.parent)
    assert "venv is broken" in result["msg"]


def test_bad_input(run_module: Any, home: Path, tmp_path: Path) -> None:
    result, failed = run_module(praxis_server, dict(args(home, "stop"), project_dir=str(tmp_path)))
    assert failed and "not directly inside project_dir" in result["msg"]
    result, failed = run_module(praxis_server, dict(args(home, "stop"), stop_timeouts=[1]))
    assert failed and "three numbers" in result["msg"]
    result, failed = run_module(praxis_server, args(home, "restart", mode="systemd"))
    assert failed and "systemd_unit" in result["msg"]
    result, failed = run_module(praxis_server, dict(args(home, "stop"), praxis_home=str(tmp_path / "x" / ".p")))
    assert failed and "does not exist" in result["msg"]
    result, failed = run_module(praxis_server, args(home, "post", post_install_commands=[]))
    assert failed
    result, failed = run_module(praxis_server, args(home, "deps", post_install_commands=["echo hi"]))
    assert failed and "not a non-empty argv list" in result["msg"]


def test_mode_none_does_nothing(run_module: Any, home: Path) -> None:
    for action in ("restart", "stop", "start"):
        result, failed = run_module(praxis_server, args(home, action))
        assert not failed and not result["changed"] and result["mode"] == "none"
        assert "no state file" in result["mode_reason"]
    assert read_state(home) is None


def test_restart_process_mode_spares_the_other_project(run_module: Any, home: Path, tmp_path: Path,
                                                       started: List[int]) -> None:
    ours = spawn_fake(home)
    other_home = make_home(tmp_path / "other")
    theirs = spawn_fake(other_home)
    started.extend([ours.pid, theirs.pid])
    theirs_state = (other_home / ".mcp_server_state.json").read_text()

    result, failed = run_module(praxis_server, args(home, "restart"), check_mode=True)
    assert not failed and result["changed"] and result["mode"] == "process"
    assert result["plan"][0] == "would stop pid %d (INT, then TERM, then KILL)" % ours.pid
    assert ours.poll() is None and read_state(home)["pid"] == ours.pid

    result, failed = run_module(praxis_server, args(home, "restart"))
    assert not failed, result.get("msg")
    started.append(result["pid_after"])
    assert result["mode"] == "process" and result["pid_before"] == ours.pid and result["stopped_by"] == "INT"
    assert result["pid_after"] not in (None, ours.pid) and ours.wait(5) == 0
    assert result["log_offset"] == 0 and result["url"] == read_state(home)["url"]
    assert probe("http", url=result["url"], timeout=10)["healthy"]
    # the other project's server, same command line, was never signalled
    assert theirs.poll() is None and (other_home / ".mcp_server_state.json").read_text() == theirs_state

    stopped, failed = run_module(praxis_server, args(home, "stop"))
    assert not failed and stopped["changed"] and stopped["stopped_by"] == "INT"
    assert stopped["pid_before"] == result["pid_after"] and read_state(home) is None
    again, failed = run_module(praxis_server, args(home, "stop", mode="process"))
    assert not failed and not again["changed"] and again["stopped_by"] is None

    begun, failed = run_module(praxis_server, args(home, "start", mode=stopped["mode"]))
    assert not failed and begun["changed"] and begun["pid_after"]
    started.append(begun["pid_after"])
    assert begun["log_offset"] > 0  # the log of the previous start is kept; only new lines count
    running, failed = run_module(praxis_server, args(home, "start", mode="process"))
    assert not failed and not running["changed"] and running["pid_after"] == begun["pid_after"]
    assert theirs.poll() is None


def test_restart_ignores_what_the_old_server_logs_while_stopping(run_module: Any, home: Path,
                                                                 started: List[int]) -> None:
    # a client's request in flight at the stop makes the old server log an ERROR line (uvicorn); that
    # line is not the new server's health and must not fail the restart (found by bench's downtime probe)
    log = Path(procutil.log_path_for(str(home)))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        old = subprocess.Popen([str(home / "venv" / "bin" / "python"), "-m", "mcp_server", "--transport", "http"],
                               cwd=str(home.parent), env=dict(os.environ, PYTHONPATH=str(home),
                                                              FAKE_BEHAVIOUR="error-on-int"),
                               stdout=handle, stderr=handle)
    started.append(old.pid)
    wait_state_pid(home, old.pid)
    result, failed = run_module(praxis_server, args(home, "restart"))
    assert not failed, result.get("msg")
    started.append(result["pid_after"])
    assert old.wait(5) == 0 and "ERROR ASGI" in log.read_text()
    assert result["log_offset"] == log.read_text().index("INFO fake server starting (normal)")


def test_start_failure_reports_the_log(run_module: Any, home: Path) -> None:
    result, failed = run_module(praxis_server, args(home, "start", mode="process",
                                                    server_env={"FAKE_BEHAVIOUR": "crash"}))
    assert failed and "did not come up healthy" in result["msg"] and "ERROR boom" in result["msg"]
    assert result["pid_after"] is None


FAKE_SYSTEMCTL = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_SYSTEMCTL_LOG"
case "$*" in
  *show*) echo 0 ;;
  *restart*|*start*)
    cd "$FAKE_PROJECT" && PYTHONPATH="$FAKE_HOME" setsid "$FAKE_HOME/venv/bin/python" -m mcp_server \
      --transport http >/dev/null 2>&1 < /dev/null &
    ;;
esac
exit 0
"""


def test_systemd_mode(run_module: Any, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      started: List[int]) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text(FAKE_SYSTEMCTL)
    (bindir / "systemctl").chmod(0o755)
    log = tmp_path / "argv"
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    for name, value in (("FAKE_SYSTEMCTL_LOG", log), ("FAKE_PROJECT", home.parent), ("FAKE_HOME", home)):
        monkeypatch.setenv(name, str(value))
    opts = args(home, "restart", systemd_unit="praxis.service", systemd_scope="user")
    result, failed = run_module(praxis_server, opts, check_mode=True)
    assert not failed and result["mode"] == "systemd" and result["plan"] == [
        "would restart unit praxis.service (MainPID None)"]
    assert read_state(home) is None
    result, failed = run_module(praxis_server, opts)
    if result.get("pid_after"):
        started.append(result["pid_after"])
    assert not failed, result.get("msg")
    # systemd started it: the module learnt the pid from the fresh state file and checked it is ours
    assert result["pid_after"] == read_state(home)["pid"]
    assert procutil.verified_server_pid(str(home))[0] == result["pid_after"]
    assert probe("http", url=result["url"], timeout=10)["healthy"]
    stopped, failed = run_module(praxis_server, dict(opts, action="stop"))
    assert not failed and not stopped["changed"] and stopped["plan"] == ["unit praxis.service is not running"]
    assert log.read_text().splitlines() == ["--user show -p MainPID --value praxis.service",
                                            "--user show -p MainPID --value praxis.service",
                                            "--user restart praxis.service",
                                            "--user show -p MainPID --value praxis.service"]


def _upgrade_source(home: Path, tmp_path: Path) -> Dict[str, Any]:
    source = tmp_path / "source" / "abc123"
    (source / "mcp_server").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py"):
        (source / "mcp_server" / name).write_text((home / "mcp_server" / name).read_text())
    (source / "mcp_server" / "version.py").write_text("VERSION = 2\n")
    state.save(str(home / ".cache" / "facts.d" / "praxis_upgrade.fact"), state.new_session("abc", session_id="S9"))
    return dict(source_dir=str(source), manifest=build_manifest(str(source / "mcp_server"), prefix="mcp_server/"),
                session_id="S9")


def test_upgrade_judges_only_the_new_servers_log(run_module: Any, home: Path, tmp_path: Path,
                                                 started: List[int]) -> None:
    """Issue 7 item 1: the old server's shutdown ERROR line lies before the recorded log offset."""
    env = {"FAKE_INT_ERROR": "1"}
    log = home / ".cache" / "mcp_server.log"
    old = procutil.start_detached(str(home), str(home.parent), env, log_path=str(log))
    started.append(old)
    assert procutil.wait_for_server(str(home), old, 0, timeout=15)["ok"]
    size_before_stop = log.stat().st_size
    opts = args(home, "upgrade", server_env=env, **_upgrade_source(home, tmp_path))
    result, failed = run_module(praxis_server, opts)
    assert not failed, result.get("msg")
    started.append(result["pid_after"])
    text = log.read_text()
    shutdown = text.index("timeout graceful shutdown exceeded")
    assert size_before_stop <= shutdown < result["log_offset"], "the offset must follow the old server's exit"
    assert "ERROR" not in text[result["log_offset"]:]
    assert result["stopped_by"] == "INT" and result["swapped"] and result["mode"] == "process"
    # downtime order: deps while the old server runs, then stop, swap, rebuild flag, start
    steps = [p.split(" ")[0] for p in result["plan"]]
    assert steps.index("pip") < steps.index("stopped") < steps.index("swapped") < steps.index("created") \
        < steps.index("started"), result["plan"]
    assert result["index_rebuild"]["reasons"] == ["mcp_server changed (its index schema or table name may differ)"]
    assert (home / "standards" / ".rebuild_index").exists()  # the fake server does not rebuild: still there
    assert result["index_rebuild"]["done"] is False


INDEX_BUILDER = """
import argparse, sys
from pathlib import Path
p = argparse.ArgumentParser()
p.add_argument("--force", action="store_true")
p.add_argument("--index-path", type=Path)
p.add_argument("--standards-path", type=Path)
a = p.parse_args()
(a.index_path / "t.lance").mkdir(parents=True)
(a.index_path / "t.lance" / "docs").write_text("\\n".join(sorted(f.name for f in a.standards_path.rglob("*.md"))))
"""


@pytest.mark.parametrize("prebuild", [True, False])
def test_upgrade_builds_the_new_index_before_the_stop(run_module: Any, home: Path, tmp_path: Path,
                                                      started: List[int], prebuild: bool) -> None:
    """Issue 10: the index is built while the old server serves and is in place before the new one starts:
    no rebuild flag, the new server finds its index; the old index left the live tree (the backup has it).
    Without it (praxis_index_prebuild false): upstream's own trigger, as before."""
    (home / "scripts").mkdir()
    (home / "scripts" / "build_rag_index.py").write_text(INDEX_BUILDER)
    (home / "standards" / "universal").mkdir(parents=True)
    (home / "standards" / "universal" / "a.md").write_text("# A\n")
    (home / ".cache" / "vector_index" / "old.lance").mkdir(parents=True)
    old = procutil.start_detached(str(home), str(home.parent), {}, log_path=str(home / ".cache" / "mcp_server.log"))
    started.append(old)
    assert procutil.wait_for_server(str(home), old, 0, timeout=15)["ok"]
    opts = args(home, "upgrade", index_prebuild=prebuild, **_upgrade_source(home, tmp_path))
    result, failed = run_module(praxis_server, opts)
    assert not failed, result.get("msg")
    started.append(result["pid_after"])
    steps = [p.split(" ")[0] for p in result["plan"]]
    rebuild = result["index_rebuild"]
    if not prebuild:
        assert rebuild["method"] == "flag" and (home / "standards" / ".rebuild_index").exists()
        assert "praxis_index_prebuild" in rebuild["prebuild"]["reason"] and "built" not in steps
        assert (home / ".cache" / "vector_index" / "old.lance").exists()
        return
    assert steps.index("pip") < steps.index("built") < steps.index("stopped") < steps.index("swapped") \
        < steps.index("put") < steps.index("started"), result["plan"]
    assert rebuild["method"] == "prebuilt" and rebuild["done"] and rebuild["prebuild"]["built"], rebuild
    assert rebuild["flag"] is None and not (home / "standards" / ".rebuild_index").exists()
    assert (home / ".cache" / "vector_index" / "t.lance" / "docs").read_text() == "a.md"
    assert not (home / ".cache" / "vector_index" / "old.lance").exists()


def test_upgrade_leaves_an_ide_server_alone(run_module: Any, home: Path, tmp_path: Path, started: List[int]) -> None:
    """Issue 7 item 4: a dual (IDE) server is never stopped; auto -> none, and the run says so."""
    ide = spawn_fake(home, FAKE_TRANSPORT="dual")
    started.append(ide.pid)
    opts = args(home, "upgrade", **_upgrade_source(home, tmp_path))
    result, failed = run_module(praxis_server, opts)
    assert not failed, result.get("msg")
    assert result["mode"] == "none" and result["ide_restart_required"] and result["ide_server_pid"] == ide.pid
    assert "restart the IDE's MCP server" in result["mode_reason"]
    assert "restart the IDE's MCP server" in str(result.get("warnings")), result.get("warnings")
    assert ide.poll() is None and read_state(home)["pid"] == ide.pid and result["pid_after"] is None
    refused, failed = run_module(praxis_server, args(home, "restart", mode="process"))
    assert failed and "IDE-launched" in refused["msg"] and str(ide.pid) in refused["msg"]
    assert ide.poll() is None
