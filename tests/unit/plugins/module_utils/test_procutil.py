"""procutil against real child processes: a fake `python -m mcp_server` with a tiny MCP-over-HTTP
answer (stdlib), its state file, and signal behaviours (clean INT, ignores INT, ignores INT+TERM)."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import procutil

# A stand-in for the real server: same command line (`python -m mcp_server --transport http`), same
# state file, SIGINT removes the state file (like upstream); FAKE_BEHAVIOUR selects misbehaviour.
FAKE_MAIN = r'''
import json, os, signal, sys, tempfile
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

behaviour = os.environ.get("FAKE_BEHAVIOUR", "normal")
home = os.environ["PYTHONPATH"].split(os.pathsep)[0]
state_path = os.path.join(home, ".mcp_server_state.json")
print("INFO fake server starting (%s) pid %d" % (behaviour, os.getpid()), flush=True)
if behaviour == "crash":
    print("ERROR boom: cannot load the model", flush=True)
    sys.exit(3)
if behaviour == "lose-races":  # the first FAKE_LOSSES starts lose the port race, like upstream's uvicorn
    counter = os.path.join(home, "races")
    lost = int(open(counter).read()) if os.path.exists(counter) else 0
    if lost < int(os.environ.get("FAKE_LOSSES", "1")):
        open(counter, "w").write(str(lost + 1))
        print("ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 4242): "
              "address already in use", flush=True)
        sys.exit(1)

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        msg = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if behaviour == "unhealthy":
            self.send_response(500); self.end_headers(); return
        if "id" not in msg:
            self.send_response(202); self.end_headers(); return
        if msg["method"] == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {},
                      "serverInfo": {"name": "fake-praxis", "version": "1"}}
        else:
            result = {"tools": [{"name": "get_server_info"}, {"name": "current_date"}]}
        body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
if behaviour == "publish-other-port":  # publishes a port someone else serves and never binds it
    server.server_close()
    port = int(os.environ["FAKE_PORT"])

def on_int(signum, frame):
    if behaviour == "error-on-int":  # like uvicorn cutting a client's in-flight request at shutdown
        print("ERROR ASGI callable returned without completing response.", flush=True)
    if os.environ.get("FAKE_INT_ERROR"):  # uvicorn's line on every signalled shutdown of the real server
        print("ERROR:    Cancel 0 running task(s), timeout graceful shutdown exceeded", flush=True)
    try:
        if json.load(open(state_path)).get("pid") == os.getpid():
            os.unlink(state_path)
    except (OSError, ValueError):
        pass
    os._exit(0)

signal.signal(signal.SIGINT, signal.SIG_IGN if behaviour.startswith("ignore-int") else on_int)
if behaviour == "ignore-int-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
info = {"transport": os.environ.get("FAKE_TRANSPORT", "http"), "host": "127.0.0.1", "port": port, "path": "/mcp",
        "url": "http://127.0.0.1:%d/mcp" % port, "pid": os.getpid(),
        "started_at": datetime.now(timezone.utc).isoformat(), "project": os.getcwd()}
fd, tmp = tempfile.mkstemp(dir=home)
with os.fdopen(fd, "w") as handle:
    json.dump(info, handle)
os.replace(tmp, state_path)
print("INFO listening on %s" % info["url"], flush=True)
if behaviour == "publish-other-port":
    signal.pause()
server.serve_forever()
'''


def make_home(project: Path) -> Path:
    """A minimal installation: `.praxis-os/mcp_server` (the fake) and `venv/bin/python`."""
    home = project / ".praxis-os"
    (home / "mcp_server").mkdir(parents=True)
    (home / "mcp_server" / "__init__.py").write_text("")
    (home / "mcp_server" / "__main__.py").write_text(FAKE_MAIN)
    (home / "venv" / "bin").mkdir(parents=True)
    os.symlink(os.path.realpath(sys.executable), home / "venv" / "bin" / "python")
    return home


def read_state(home: Path) -> Optional[dict]:
    try:
        return json.loads((home / ".mcp_server_state.json").read_text())
    except (OSError, ValueError):
        return None


def wait_state_pid(home: Path, pid: int, timeout: float = 10.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        state = read_state(home)
        if state and state.get("pid") == pid:
            return state
        time.sleep(0.02)
    raise AssertionError("fake server %d wrote no state file in %s" % (pid, home))


def spawn_fake(home: Path, behaviour: str = "normal", **extra: str) -> "subprocess.Popen[bytes]":
    """Start the fake server as our child, the way an operator would (cwd = project); wait for it."""
    env = dict(os.environ, PYTHONPATH=str(home), FAKE_BEHAVIOUR=behaviour, **extra)
    proc = subprocess.Popen([str(home / "venv" / "bin" / "python"), "-m", "mcp_server", "--transport", "http"],
                            cwd=str(home.parent), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_state_pid(home, proc.pid)
    return proc


def kill_quietly(pid: int) -> None:
    """Teardown: SIGKILL a pid this test started, if it still runs the fake server."""
    if not procutil.is_stopped(pid) and any("mcp_server" in p for p in procutil.proc_cmdline(pid)):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture()
def started() -> Iterator[List[int]]:
    """Pids started during a test; whatever still runs is killed afterwards."""
    pids: List[int] = []
    yield pids
    for pid in pids:
        kill_quietly(pid)


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "project")


@pytest.fixture()
def other_home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "other")


# ---------------------------------------------------------------- state file + ownership

def test_read_server_state(home: Path) -> None:
    assert procutil.read_server_state(str(home)) is None
    (home / ".mcp_server_state.json").write_text("{not json")
    with pytest.raises(ValueError, match="server state file .* is not valid JSON.*move it aside"):
        procutil.read_server_state(str(home))
    (home / ".mcp_server_state.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        procutil.read_server_state(str(home))
    (home / ".mcp_server_state.json").write_text('{"pid": 5}')
    assert procutil.read_server_state(str(home)) == {"pid": 5}


def test_verified_pid_none_and_invalid(home: Path) -> None:
    assert procutil.verified_server_pid(str(home)) == (None, procutil.verified_server_pid(str(home))[1])
    assert "no state file" in procutil.verified_server_pid(str(home))[1]
    (home / ".mcp_server_state.json").write_text('{"pid": "12"}')
    assert procutil.verified_server_pid(str(home))[0] is None
    assert "no valid pid" in procutil.verified_server_pid(str(home))[1]


def test_verified_pid_stale(home: Path) -> None:
    done = subprocess.run(["true"], check=True)
    proc = subprocess.Popen(["true"])
    proc.wait()
    (home / ".mcp_server_state.json").write_text(json.dumps({"pid": proc.pid}))
    assert done.returncode == 0
    assert procutil.verified_server_pid(str(home)) == (None, "stale: pid %d not running" % proc.pid)


def test_verified_pid_of_this_project(home: Path, started: List[int]) -> None:
    proc = spawn_fake(home)
    started.append(proc.pid)
    pid, reason = procutil.verified_server_pid(str(home))
    assert pid == proc.pid
    assert reason.startswith("verified")
    assert procutil.resolve_mode("auto", None, str(home)) == ("process", reason)


def test_foreign_project_pid_is_refused(home: Path, other_home: Path, started: List[int]) -> None:
    foreign = spawn_fake(other_home)
    started.append(foreign.pid)
    # this project's state file (stale, or copied) names the other project's live server
    (home / ".mcp_server_state.json").write_text(json.dumps({"pid": foreign.pid}))
    pid, reason = procutil.verified_server_pid(str(home))
    assert pid is None and reason.startswith("foreign") and str(home.parent) in reason
    mode, why = procutil.resolve_mode("auto", None, str(home))
    assert mode == "none" and "foreign" in why
    assert foreign.poll() is None


def test_same_project_but_not_mcp_server_is_refused(home: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"], cwd=str(home.parent))
    try:
        (home / ".mcp_server_state.json").write_text(json.dumps({"pid": sleeper.pid}))
        pid, reason = procutil.verified_server_pid(str(home))
        assert pid is None and "not mcp_server" in reason
    finally:
        sleeper.kill()
        sleeper.wait()


def test_belongs_by_pythonpath_only(home: Path, started: List[int], tmp_path: Path) -> None:
    """A server started from another cwd still belongs to the project through PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(home))
    proc = subprocess.Popen([str(home / "venv" / "bin" / "python"), "-m", "mcp_server"], cwd=str(tmp_path),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(proc.pid)
    wait_state_pid(home, proc.pid)
    assert procutil.verified_server_pid(str(home))[0] == proc.pid


# ---------------------------------------------------------------- stop

@pytest.mark.parametrize("behaviour, signal_name, returncode", [
    ("normal", "INT", 0),
    ("ignore-int", "TERM", -signal.SIGTERM),
    ("ignore-int-term", "KILL", -signal.SIGKILL),
])
def test_stop_escalates(home: Path, started: List[int], behaviour: str, signal_name: str,
                        returncode: int) -> None:
    proc = spawn_fake(home, behaviour)
    started.append(proc.pid)
    result = procutil.stop(proc.pid, timeouts=(0.5, 0.5, 5))
    assert result["stopped_by"] == signal_name
    assert result["signals_sent"] == ["INT", "TERM", "KILL"][: result["signals_sent"].index(signal_name) + 1]
    assert procutil.proc_state(proc.pid) == "Z"  # our child: stopped means zombie until we reap it
    assert proc.wait(5) == returncode
    # SIGINT removes the state file (upstream behaviour); TERM/KILL leave it stale
    assert (read_state(home) is None) == (signal_name == "INT")
    assert result["duration_s"] < 4


def test_stop_already_gone_and_bad_timeouts() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    result = procutil.stop(proc.pid, timeouts=(1, 1, 1))
    assert result["stopped_by"] is None and result["signals_sent"] == []
    with pytest.raises(ValueError, match="three numbers"):
        procutil.stop(proc.pid, timeouts=(1, 1))


def test_zombie_counts_as_stopped() -> None:
    proc = subprocess.Popen(["true"])
    end = time.monotonic() + 5
    while procutil.proc_state(proc.pid) != "Z" and time.monotonic() < end:
        time.sleep(0.01)
    assert procutil.is_stopped(proc.pid)
    assert procutil.stop(proc.pid, (1, 1, 1))["stopped_by"] is None
    proc.wait()
    assert procutil.proc_state(proc.pid) is None and procutil.proc_start_time(proc.pid) is None


# ---------------------------------------------------------------- start + wait

def test_start_detached_and_wait(home: Path, started: List[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_MODULE_SECRET", "x")
    monkeypatch.setenv("PRAXIS_FAULT_POINT", "server.between_renames")
    log = home / ".cache" / "mcp_server.log"
    log.parent.mkdir()
    log.write_text("old line\n")
    offset = procutil.log_size(str(log))
    begin = time.time()
    pid = procutil.start_detached(str(home), str(home.parent), {"HF_HUB_OFFLINE": 1}, log_path=str(log))
    started.append(pid)
    waited = procutil.wait_for_server(str(home), pid, begin, timeout=15, log_offset=offset)
    assert waited["ok"], waited["error"]
    assert waited["pid"] == pid and waited["url"].startswith("http://127.0.0.1:")
    assert waited["tools"] == ["current_date", "get_server_info"]
    # detached: own session, not our child, cwd = project, PYTHONPATH = home, operator env in, Ansible's out
    assert os.getsid(pid) == pid
    with open("/proc/%d/stat" % pid) as handle:
        assert int(handle.read().rsplit(")", 1)[1].split()[1]) != os.getpid()
    assert os.readlink("/proc/%d/cwd" % pid) == str(home.parent)
    with open("/proc/%d/environ" % pid, "rb") as handle:
        environ = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
    assert environ[b"PYTHONPATH"] == str(home).encode() and environ[b"HF_HUB_OFFLINE"] == b"1"
    assert b"ANSIBLE_MODULE_SECRET" not in environ and b"PRAXIS_FAULT_POINT" not in environ
    assert procutil.log_tail(str(log), offset).startswith("INFO fake server starting")
    assert log.read_text().startswith("old line\n")
    assert procutil.stop(pid, (5, 5, 5))["stopped_by"] == "INT"


def test_wait_reports_a_crash_with_the_log_tail(home: Path) -> None:
    begin = time.time()
    pid = procutil.start_detached(str(home), str(home.parent), {"FAKE_BEHAVIOUR": "crash"})
    waited = procutil.wait_for_server(str(home), pid, begin, timeout=15)
    assert not waited["ok"]
    assert "exited before answering" in waited["error"] and "ERROR boom" in waited["error"]
    assert "ERROR boom" in waited["log_tail"]


def test_wait_times_out_on_an_unhealthy_server(home: Path, started: List[int]) -> None:
    begin = time.time()
    pid = procutil.start_detached(str(home), str(home.parent), {"FAKE_BEHAVIOUR": "unhealthy"})
    started.append(pid)
    waited = procutil.wait_for_server(str(home), pid, begin, timeout=2)
    assert not waited["ok"] and waited["pid"] == pid
    assert waited["error"].startswith("no healthy answer within 2 s")
    assert "mcp_server.log" in waited["error"]


def test_wait_ignores_a_stale_state_file(home: Path) -> None:
    (home / ".mcp_server_state.json").write_text(json.dumps(
        {"pid": os.getpid(), "url": "http://127.0.0.1:9/mcp", "started_at": "2020-01-01T00:00:00Z"}))
    waited = procutil.wait_for_server(str(home), None, time.time(), timeout=0.5, poll=0.05)
    assert not waited["ok"] and "was not written" in waited["error"]


def test_start_detached_errors(tmp_path: Path, home: Path) -> None:
    bare = tmp_path / "bare" / ".praxis-os"
    bare.mkdir(parents=True)
    with pytest.raises(procutil.ProcessError, match="venv is broken"):
        procutil.start_detached(str(bare), str(bare.parent))
    with pytest.raises(procutil.ProcessError, match="does not exist"):
        procutil.start_detached(str(home), str(tmp_path / "missing"))


def test_parse_utc_and_fresh() -> None:
    assert procutil.parse_utc("2026-11-24T10:15:00Z") == procutil.parse_utc("2026-11-24T10:15:00+00:00")
    assert procutil.parse_utc("2026-11-24T10:15:00") == procutil.parse_utc("2026-11-24T10:15:00Z")
    assert procutil.parse_utc("yesterday") is None and procutil.parse_utc(None) is None
    now = time.time()
    assert procutil._fresh({"pid": 7}, 7, now)
    assert not procutil._fresh({"pid": 8, "started_at": "2020-01-01T00:00:00Z"}, 7, now)
    assert procutil._fresh({"pid": 8, "started_at": "2999-01-01T00:00:00Z"}, None, now)
    assert not procutil._fresh(None, 7, now)
    assert procutil._state_url({"port": 5, "host": "127.0.0.2"}) == "http://127.0.0.2:5/mcp"
    assert procutil._state_url({}) is None


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert procutil.log_tail(str(log)).startswith("(no log at")
    log.write_text("")
    assert procutil.log_tail(str(log)) == "(log is empty)"
    log.write_text("".join("line %d\n" % i for i in range(50)))
    assert procutil.log_tail(str(log), lines=2) == "line 48\nline 49"
    assert procutil.log_size(str(tmp_path / "none")) == 0


# ---------------------------------------------------------------- systemd (fake systemctl in PATH)

FAKE_SYSTEMCTL = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_SYSTEMCTL_LOG"
case "$*" in
  *show*) printf '%s\\n' "${FAKE_MAIN_PID:-0}" ;;
esac
exit "${FAKE_SYSTEMCTL_RC:-0}"
"""


@pytest.fixture()
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "systemctl.argv"
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(log))
    return log


def test_systemctl_cmd() -> None:
    assert procutil.systemctl_cmd("system", "restart", "u") == ["systemctl", "restart", "u"]
    assert procutil.systemctl_cmd("user", "stop", "u", executable="/x/sc") == ["/x/sc", "--user", "stop", "u"]
    with pytest.raises(ValueError, match="scope"):
        procutil.systemctl_cmd("global", "stop", "u")


def test_systemd_ops_argv(systemctl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    procutil.systemd_restart("praxis.service", "user")
    procutil.systemd_stop("praxis.service")
    procutil.systemd_start("praxis.service", "system")
    assert procutil.systemd_main_pid("praxis.service", "user") is None
    monkeypatch.setenv("FAKE_MAIN_PID", "4321")
    assert procutil.systemd_main_pid("praxis.service") == 4321
    assert systemctl.read_text().splitlines() == [
        "--user restart praxis.service", "stop praxis.service", "start praxis.service",
        "--user show -p MainPID --value praxis.service", "show -p MainPID --value praxis.service"]


def test_systemd_errors(systemctl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MAIN_PID", "n/a")
    with pytest.raises(procutil.ProcessError, match="not a pid"):
        procutil.systemd_main_pid("praxis.service")
    monkeypatch.setenv("FAKE_SYSTEMCTL_RC", "5")
    with pytest.raises(procutil.ProcessError, match=r"failed \(exit 5\).*journalctl --user -u praxis.service"):
        procutil.systemd_restart("praxis.service", "user")
    with pytest.raises(procutil.ProcessError, match="no systemd"):
        procutil.systemd_stop("praxis.service", executable="/nonexistent/systemctl")


def test_resolve_mode(home: Path) -> None:
    assert procutil.resolve_mode("auto", "praxis.service", str(home))[0] == "systemd"
    mode, reason = procutil.resolve_mode("auto", None, str(home))
    assert mode == "none" and "no state file" in reason
    assert procutil.resolve_mode("process", None, str(home)) == ("process", "requested")
    with pytest.raises(ValueError, match="needs praxis_systemd_unit"):
        procutil.resolve_mode("systemd", None, str(home))
    with pytest.raises(ValueError, match="unknown"):
        procutil.resolve_mode("docker", None, str(home))


def test_launch_env_filters(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_X", "1")
    monkeypatch.setenv("VIRTUAL_ENV", "/v")
    env: Dict[str, str] = procutil.launch_env(str(home), {"ANSIBLE_KEEP": "yes", "PYTHONPATH": "/extra"})
    assert "ANSIBLE_X" not in env and "VIRTUAL_ENV" not in env
    assert env["ANSIBLE_KEEP"] == "yes"
    assert env["PYTHONPATH"] == "%s:/extra" % home


# ---------------------------------------------------------------- whose server (issue 7 item 4)

@pytest.mark.parametrize("transport", ["dual", "stdio"])
def test_ide_server_is_never_ours(home: Path, started: List[int], transport: str) -> None:
    proc = spawn_fake(home, FAKE_TRANSPORT=transport)
    started.append(proc.pid)
    found = procutil.classify_server(str(home))
    assert found["kind"] == "ide" and found["pid"] == proc.pid and found["transport"] == transport
    assert procutil.our_http_server_pid(str(home))[0] is None
    mode, reason = procutil.resolve_mode("auto", None, str(home))
    assert mode == "none" and "IDE-launched" in reason and "restart the IDE's MCP server" in reason
    assert str(proc.pid) in reason
    proc.send_signal(signal.SIGINT)
    proc.wait(10)


def test_http_server_of_this_project_is_ours(home: Path, started: List[int]) -> None:
    proc = spawn_fake(home)
    started.append(proc.pid)
    assert procutil.classify_server(str(home))["kind"] == "http"
    assert procutil.our_http_server_pid(str(home))[0] == proc.pid
    assert procutil.resolve_mode("auto", None, str(home))[0] == "process"
    proc.send_signal(signal.SIGINT)
    proc.wait(10)


# ---------------------------------------------------------------- port race (issue 8 item 12)

def test_lost_port_race_is_retried_and_the_offset_follows(home: Path, started: List[int]) -> None:
    log = home / ".cache" / "mcp_server.log"
    log.parent.mkdir()
    log.write_text("ERROR:    Cancel 0 running task(s), timeout graceful shutdown exceeded\n")
    pauses: List[float] = []
    env = {"FAKE_BEHAVIOUR": "lose-races", "FAKE_LOSSES": "2"}
    waited = procutil.start_until_healthy(str(home), str(home.parent), env,
                                          timeout=30, log_path=str(log), sleep=pauses.append,
                                          jitter=lambda low, high: high)
    started.append(waited["pid"] or 0)
    assert waited["ok"], waited["error"]
    assert waited["attempts"] == 3 and len(waited["lost_races"]) == 2 and pauses == [1.0, 2.0]
    # only the successful start's lines are the new server's: no ERROR after the returned offset
    assert "Errno 98" in log.read_text()[:waited["log_offset"]]
    assert "ERROR" not in log.read_text()[waited["log_offset"]:]


def test_a_crash_is_not_retried(home: Path) -> None:
    waited = procutil.start_until_healthy(str(home), str(home.parent), {"FAKE_BEHAVIOUR": "crash"}, timeout=15,
                                          sleep=lambda s: None)
    assert not waited["ok"] and waited["attempts"] == 1 and "ERROR boom" in waited["error"]


def test_lost_port_race_detection(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("old: address already in use\nINFO fine\n")
    assert procutil.lost_port_race(str(log), 0)
    assert not procutil.lost_port_race(str(log), len("old: address already in use\n"))
    assert not procutil.lost_port_race(str(tmp_path / "missing"), 0)


def test_a_port_answered_by_another_server_is_not_health(home: Path, other_home: Path, started: List[int]) -> None:
    """Upstream publishes its port before binding it: the answer may come from the race winner."""
    other = spawn_fake(other_home)
    started.append(other.pid)
    port = read_state(other_home)["port"]
    assert procutil.port_owned_by(other.pid, port) is True
    assert procutil.port_owned_by(os.getpid(), port) is False
    begin = time.time()
    pid = procutil.start_detached(str(home), str(home.parent), {"FAKE_BEHAVIOUR": "publish-other-port",
                                                                "FAKE_PORT": str(port)})
    started.append(pid)
    waited = procutil.wait_for_server(str(home), pid, begin, timeout=3)
    assert not waited["ok"] and "does not hold it" in waited["error"], waited["error"]


def test_a_start_that_keeps_losing_the_race_names_the_operators_timeout(home: Path, started: List[int]) -> None:
    """Retries share the timeout; the failure names the operator's value and the lost races, not the
    remainder the last attempt had (an operator who set 15 s read 'within 11.4955 s')."""
    waited = procutil.start_until_healthy(str(home), str(home.parent),
                                          {"FAKE_BEHAVIOUR": "lose-races", "FAKE_LOSSES": "9"}, timeout=20,
                                          attempts=2, sleep=lambda s: None)
    started.append(waited["pid"] or 0)
    assert not waited["ok"] and waited["attempts"] == 2 and len(waited["lost_races"]) == 2
    assert waited["error"].startswith("2 start(s) within 20 s, 2 lost the port race"), waited["error"]
