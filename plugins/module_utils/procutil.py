# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server process control on Linux: verified pids, stop INT->TERM->KILL, detached start, systemd units.

A pid is trusted (and signalled) only when the server state file names it, it is alive, it belongs to
this project and its command line runs ``mcp_server``. Nothing is ever looked up by name pattern:
other projects on the host run the very same command line (SPEC 2.3).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple
from urllib.parse import urlsplit

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import read_json
from ansible_collections.praxis.upgrade.plugins.module_utils.mcp_client import (
    STATE_FILE,
    pid_alive,
    pid_belongs_to,
    probe,
    server_env,
)

LOG_REL = os.path.join(".cache", "mcp_server.log")
DEFAULT_STOP_TIMEOUTS = (10.0, 10.0, 5.0)
SYSTEMCTL = "systemctl"
MODES = ("auto", "none", "process", "systemd")
# Variables of the Ansible run that must not leak into a long-lived server.
ENV_DROP_PREFIXES = ("ANSIBLE_", "_ANSIBLE_")
ENV_DROP = ("PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__", "PRAXIS_FAULT_POINT")

# Runs with the module's python: spawns the server in its own session and reports its pid, then exits,
# so the server is re-parented away from the module process (no zombie, survives the Ansible run).
_LAUNCHER = """
import json, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["log"], "ab") as log:
    proc = subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            close_fds=True, start_new_session=True)
sys.stdout.write(str(proc.pid))
"""


class ProcessError(RuntimeError):
    """A process operation failed; the message names what, where and the next step."""


# ---------------------------------------------------------------- /proc helpers

def project_of(praxis_home: str) -> str:
    return os.path.dirname(os.path.realpath(praxis_home))


def state_file_path(praxis_home: str) -> str:
    return os.path.join(praxis_home, STATE_FILE)


def log_path_for(praxis_home: str) -> str:
    return os.path.join(praxis_home, LOG_REL)


def proc_state(pid: int) -> Optional[str]:
    """The one-letter state of ``pid`` from /proc (``R``, ``S``, ``Z``...), or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode("ascii")
    except (OSError, IndexError):
        return None


def proc_start_time(pid: int) -> Optional[int]:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def is_stopped(pid: int) -> bool:
    """True when ``pid`` is gone or a zombie (it has exited; only its parent's wait is missing)."""
    return proc_state(pid) in (None, "Z", "X")


def proc_cmdline(pid: int) -> List[str]:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


# ---------------------------------------------------------------- state file + ownership

def read_server_state(praxis_home: str) -> Optional[dict]:
    """The server state file as a dict, None when absent; ValueError (with the next step) when corrupt."""
    path = state_file_path(praxis_home)
    if not os.path.isfile(path):
        return None
    try:
        state = read_json(path, "server state file")
    except OSError as exc:
        raise ValueError("cannot read the server state file %s (%s); run the play as the server's user"
                         % (path, exc)) from exc
    if not isinstance(state, dict):
        raise ValueError("server state file %s is not a JSON object; stop the server if one runs, remove the "
                         "file and re-run" % path)
    return state


def _state_pid(state: dict) -> Optional[int]:
    pid = state.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
        return pid
    return None


def check_server_pid(pid: int, praxis_home: str) -> Tuple[bool, str]:
    """Whether ``pid`` is a live ``mcp_server`` process of this project, with the reason."""
    project = project_of(praxis_home)
    if not pid_alive(pid):
        return False, "stale: pid %d not running" % pid
    if not pid_belongs_to(pid, project):
        return False, ("foreign: pid %d does not run in %s (another project's server or a reused pid); "
                       "it is not signalled" % (pid, project))
    cmdline = proc_cmdline(pid)
    if not any("mcp_server" in part for part in cmdline):
        return False, ("foreign: pid %d runs %r, not mcp_server (a reused pid); it is not signalled"
                       % (pid, " ".join(cmdline)[:200]))
    return True, "verified: pid %d runs mcp_server in %s" % (pid, project)


def _verified(praxis_home: str) -> Tuple[Optional[dict], Optional[int], str]:
    """(state file, pid, reason): the state file's pid only if alive, of this project and running mcp_server."""
    state = read_server_state(praxis_home)
    if state is None:
        return None, None, "no state file at %s: no server runs in http mode" % state_file_path(praxis_home)
    pid = _state_pid(state)
    if pid is None:
        return state, None, "state file %s names no valid pid" % state_file_path(praxis_home)
    ok, reason = check_server_pid(pid, praxis_home)
    return state, (pid if ok else None), reason


def verified_server_pid(praxis_home: str) -> Tuple[Optional[int], str]:
    """(pid, reason): the state file's pid only if alive, of this project and running mcp_server."""
    return _verified(praxis_home)[1:]


IDE_TRANSPORTS = ("stdio", "dual")


def classify_server(praxis_home: str) -> dict:
    """The one rule for "is this our server": what runs for this installation and who owns it.

    ``kind`` is ``http`` (a verified mcp_server pid of this project serving http only: this project
    started it detached, so an upgrade may stop and restart it), ``ide`` (a verified pid whose state
    file says ``stdio`` or ``dual``: an editor launched it and talks to it over stdin; it is never
    signalled or replaced) or ``none`` (no state file, a stale or foreign pid). Also ``pid``,
    ``transport`` and ``reason``.
    """
    state, pid, why = _verified(praxis_home)
    transport = state.get("transport") if state and isinstance(state.get("transport"), str) else None
    if pid is None:
        return {"kind": "none", "pid": None, "transport": transport, "reason": why}
    if transport in IDE_TRANSPORTS:
        return {"kind": "ide", "pid": pid, "transport": transport,
                "reason": ("IDE-launched server: pid %s runs with --transport %s (its editor talks to it over "
                           "stdin); it is never stopped or replaced — restart the IDE's MCP server after the "
                           "upgrade to load the new version" % (pid, transport))}
    return {"kind": "http", "pid": pid, "transport": transport or "http", "reason": why}


def our_http_server_pid(praxis_home: str) -> Tuple[Optional[int], str]:
    """(pid, reason): the pid this project may stop and restart (classify_server kind ``http``)."""
    found = classify_server(praxis_home)
    return (found["pid"] if found["kind"] == "http" else None), found["reason"]


# ---------------------------------------------------------------- stop / start

def _wait_stopped(pid: int, timeout: float, poll: float) -> bool:
    end = time.monotonic() + timeout
    while True:
        if is_stopped(pid):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(poll)


def stop(pid: int, timeouts: Sequence[float] = DEFAULT_STOP_TIMEOUTS, poll: float = 0.05) -> dict:
    """Stop ``pid`` with SIGINT, then SIGTERM, then SIGKILL, waiting ``timeouts[i]`` s after each.

    The pid is usually not our child, so waiting polls /proc; a zombie counts as stopped. Returns
    ``stopped_by`` (``INT``/``TERM``/``KILL``, or None when it was already gone), ``signals_sent`` and
    ``duration_s``. Before each signal the process start time is compared with the first one seen, so
    a pid reused by another process in the meantime is never signalled.
    """
    if len(timeouts) != 3:
        raise ValueError("stop timeouts must be three numbers (INT, TERM, KILL), got %r" % (list(timeouts),))
    started = time.monotonic()
    birth = proc_start_time(pid)
    sent = []  # type: List[str]
    result = {"pid": pid, "stopped_by": None, "signals_sent": sent, "duration_s": 0.0}
    for name, sig, wait in (("INT", signal.SIGINT, timeouts[0]), ("TERM", signal.SIGTERM, timeouts[1]),
                            ("KILL", signal.SIGKILL, timeouts[2])):
        if is_stopped(pid) or proc_start_time(pid) != birth:
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        except PermissionError as exc:
            raise ProcessError("cannot signal server pid %d (%s): run the play with the server's user "
                               "(become_user) or stop it by hand" % (pid, exc))
        sent.append(name)
        if _wait_stopped(pid, float(wait), poll):
            result["stopped_by"] = name
            break
    else:
        raise ProcessError("server pid %d survived SIGINT, SIGTERM and SIGKILL (state %s) — it is stuck in "
                           "the kernel (D state?); inspect /proc/%d/stack and reboot the host if needed"
                           % (pid, proc_state(pid), pid))
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def launch_env(praxis_home: str, extra_env: Optional[Dict[str, object]] = None) -> Dict[str, str]:
    """Environment for a server: this process's (minus Ansible/venv leftovers) + the operator's + PYTHONPATH."""
    env = server_env(praxis_home, extra_env)
    keep = set(str(k) for k in (extra_env or {}))
    for name in list(env):
        if name in keep:
            continue
        if name in ENV_DROP or name.startswith(ENV_DROP_PREFIXES):
            del env[name]
    return env


def server_command(praxis_home: str, transport: str = "http") -> List[str]:
    return [os.path.join(praxis_home, "venv", "bin", "python"), "-m", "mcp_server", "--transport", transport]


def start_detached(praxis_home: str, project_dir: str, env: Optional[Dict[str, object]] = None,
                   transport: str = "http", log_path: Optional[str] = None) -> int:
    """Start the installed server detached (own session, stdin /dev/null, output appended to the log).

    A short-lived launcher spawns it, so the server is never our child: nothing is left to reap and it
    survives the end of the Ansible run. Returns the server's pid.
    """
    argv = server_command(praxis_home, transport)
    if not os.access(argv[0], os.X_OK):
        raise ProcessError("cannot start the server: %s is missing or not executable — the venv is broken; "
                           "restore it (playbooks/rollback.yml) or reinstall" % argv[0])
    if not os.path.isdir(project_dir):
        raise ProcessError("cannot start the server: project directory %s does not exist" % project_dir)
    log_path = log_path or log_path_for(praxis_home)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    spec = json.dumps({"argv": argv, "log": log_path})
    try:
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, spec], cwd=project_dir,
                              env=launch_env(praxis_home, env), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessError("cannot start the server %s: %s" % (" ".join(argv), exc))
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise ProcessError("cannot start the server %s in %s: %s — check the venv and %s"
                           % (" ".join(argv), project_dir,
                              done.stderr.decode("utf-8", "replace").strip()[-1000:] or "launcher failed",
                              log_path))
    return int(done.stdout.strip())


# ---------------------------------------------------------------- waiting for health

def log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_tail(path: str, offset: int = 0, lines: int = 20) -> str:
    """The last ``lines`` lines written to ``path`` after byte ``offset``."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, offset))
            data = handle.read()
    except OSError:
        return "(no log at %s)" % path
    text = data.decode("utf-8", "replace").rstrip("\n")
    return "\n".join(text.splitlines()[-lines:]) if text else "(log is empty)"


def parse_utc(value: object) -> Optional[float]:
    """Epoch seconds of an ISO-8601 timestamp (``Z`` or offset; naive means UTC), None if unparsable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _state_url(state: dict) -> Optional[str]:
    url = state.get("url")
    if not url and state.get("port"):
        url = "http://%s:%s%s" % (state.get("host") or "127.0.0.1", state["port"], state.get("path") or "/mcp")
    return str(url) if url else None


def _listening_inodes(port: int) -> Set[str]:
    """Socket inodes listening on TCP ``port`` (any address), from /proc/net/tcp and tcp6."""
    inodes = set()  # type: Set[str]
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, "r", encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_owned_by(pid: int, port: int) -> Optional[bool]:
    """Whether ``pid`` holds the socket listening on ``port``: True, False (another process, or nothing,
    listens) or None (cannot tell: its fds are not readable for this user)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    wanted = set("socket:[%s]" % inode for inode in inodes)
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in wanted:
                return True
        except OSError:
            continue
    return False


def _url_port(url: str) -> Optional[int]:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def _fresh(state: Optional[dict], pid: Optional[int], started_after: float) -> bool:
    if not state:
        return False
    if pid is not None and _state_pid(state) == pid:
        return True
    started = parse_utc(state.get("started_at"))
    return started is not None and started >= started_after - 1.0  # 1 s slack for clock granularity


def wait_for_server(praxis_home: str, pid: Optional[int], started_after: float, timeout: float,
                    log_path: Optional[str] = None, log_offset: int = 0, poll: float = 0.25) -> dict:
    """Wait for a fresh state file naming this server, then for an MCP handshake + tools/list over http.

    ``pid`` is the process started (None when systemd started it); ``started_after`` is epoch seconds.
    Returns ``ok``, ``pid`` (from the state file, verified), ``url``, ``tools``, ``waited_s`` and on
    failure ``error`` (with the log tail) — it never raises for an unhealthy server.
    """
    log_path = log_path or log_path_for(praxis_home)
    begin = time.monotonic()
    end = begin + timeout
    result = {"ok": False, "pid": None, "url": None, "tools": [], "waited_s": 0.0, "error": None,
              "log_tail": None}
    last_problem = "the state file %s was not written" % state_file_path(praxis_home)
    while True:
        if pid is not None and is_stopped(pid):
            result["error"] = ("server pid %d exited before answering; last lines of %s:\n%s"
                               % (pid, log_path, log_tail(log_path, log_offset)))
            break
        try:
            state = read_server_state(praxis_home)
        except ValueError as exc:  # written atomically, so only a foreign writer gets here
            state, last_problem = None, str(exc)
        if state is not None and _fresh(state, pid, started_after):
            spid = _state_pid(state)
            ok, why = check_server_pid(spid, praxis_home) if spid else (False, "state file names no pid")
            url = _state_url(state)
            if not ok or not url:
                last_problem = why if not ok else "the state file has no url/port"
            else:
                result.update(pid=spid, url=url)
                answer = probe("http", url=url, timeout=max(0.5, min(10.0, end - time.monotonic())),
                               min_tools=0, log_hint=log_path)
                port = _url_port(url)
                owner = port_owned_by(spid, port) if (answer["healthy"] and port) else None
                if answer["healthy"] and owner is False:
                    # upstream publishes its port before binding it: what answered is another
                    # server on that port (this one lost the race or has not bound yet)
                    last_problem = ("port %d answers but pid %d does not hold it (another server took it)"
                                    % (port, spid))
                elif answer["healthy"]:
                    result.update(ok=True, tools=answer["tools"])
                    break
                else:
                    last_problem = "; ".join(answer["errors"])
        if time.monotonic() >= end:
            result["error"] = ("no healthy answer within %g s (%s); see %s:\n%s"
                               % (timeout, last_problem, log_path, log_tail(log_path, log_offset)))
            break
        time.sleep(poll)
    result["waited_s"] = round(time.monotonic() - begin, 3)
    if result["error"]:
        result["log_tail"] = log_tail(log_path, log_offset)
    return result


PORT_RACE_RE = re.compile(r"\[Errno 98\]|address already in use", re.IGNORECASE)
PORT_RACE_ATTEMPTS = 5


def lost_port_race(log_path: str, offset: int) -> bool:
    """Whether the log since ``offset`` says a bind failed because the port was taken."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, offset))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return False
    return bool(PORT_RACE_RE.search(text))


def start_until_healthy(praxis_home: str, project_dir: str, env: Optional[Dict[str, object]], timeout: float,
                        log_path: Optional[str] = None, attempts: int = PORT_RACE_ATTEMPTS,
                        sleep: Callable[[float], None] = time.sleep,
                        jitter: Callable[[float, float], float] = random.uniform,
                        on_start: Optional[Callable[[int], None]] = None) -> dict:
    """Start the server detached in http mode and wait for it; a start that lost the port race
    (the process exited and its log says the address was in use: another installation's server,
    started at the same moment, bound the port it had checked) is retried after a random pause.

    Returns wait_for_server's result plus ``attempts``, ``lost_races`` (pids that lost) and
    ``log_offset`` (where the successful attempt's output starts: earlier attempts' lines are not
    this server's). ``on_start(pid)`` is called as soon as each start's pid is known (to journal it:
    until the server publishes its state file nothing else names it).
    """
    log_path = log_path or log_path_for(praxis_home)
    end = time.monotonic() + timeout
    lost = []  # type: List[int]
    attempt = 0
    while True:
        attempt += 1
        offset = log_size(log_path)
        started_after = time.time()
        pid = start_detached(praxis_home, project_dir, env, "http", log_path)
        if on_start is not None:
            on_start(pid)
        budget = timeout if attempt == 1 else max(1.0, end - time.monotonic())  # retries share what is left
        waited = wait_for_server(praxis_home, pid, started_after, budget, log_path=log_path, log_offset=offset)
        waited.update(attempts=attempt, lost_races=lost, log_offset=offset, started_pid=pid)
        if waited["ok"]:
            return waited
        if is_stopped(pid) and lost_port_race(log_path, offset):
            lost.append(pid)
        if lost:  # the operator's timeout, not what the last attempt had left of it
            waited["error"] = ("%d start(s) within %g s, %d lost the port race to another server; the last: %s"
                               % (attempt, timeout, len(lost), waited["error"]))
        if attempt >= attempts or end - time.monotonic() < 1.0 or not lost or lost[-1] != pid:
            return waited
        sleep(min(jitter(0.2, 1.0) * attempt, max(0.0, end - time.monotonic() - 1.0)))


# ---------------------------------------------------------------- systemd

def systemctl_cmd(scope: str, *args: str, executable: str = SYSTEMCTL) -> List[str]:
    if scope not in ("system", "user"):
        raise ValueError("systemd scope must be 'system' or 'user', got %r" % (scope,))
    return [executable] + (["--user"] if scope == "user" else []) + list(args)


def run_systemctl(scope: str, *args: str, executable: str = SYSTEMCTL, timeout: float = 120.0) -> str:
    argv = systemctl_cmd(scope, *args, executable=executable)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise ProcessError("`%s` not found: this host has no systemd; set praxis_server_mode to process or "
                           "none" % argv[0])
    except subprocess.TimeoutExpired:
        raise ProcessError("`%s` did not finish within %g s; check `%s`"
                           % (" ".join(argv), timeout,
                              " ".join(systemctl_cmd(scope, "status", args[-1], executable=executable))))
    if done.returncode != 0:
        unit = args[-1] if args else ""
        journal = "journalctl %s-u %s" % ("--user " if scope == "user" else "", unit)
        raise ProcessError("`%s` failed (exit %d): %s — check `%s`"
                           % (" ".join(argv), done.returncode,
                              done.stderr.decode("utf-8", "replace").strip()[-1000:] or "(no output)", journal))
    return done.stdout.decode("utf-8", "replace")


def systemd_restart(unit: str, scope: str = "system", executable: str = SYSTEMCTL) -> None:
    run_systemctl(scope, "restart", unit, executable=executable)


def systemd_stop(unit: str, scope: str = "system", executable: str = SYSTEMCTL) -> None:
    run_systemctl(scope, "stop", unit, executable=executable)


def systemd_start(unit: str, scope: str = "system", executable: str = SYSTEMCTL) -> None:
    run_systemctl(scope, "start", unit, executable=executable)


def systemd_main_pid(unit: str, scope: str = "system", executable: str = SYSTEMCTL) -> Optional[int]:
    """The unit's MainPID, None when it is not running."""
    out = run_systemctl(scope, "show", "-p", "MainPID", "--value", unit, executable=executable).strip()
    try:
        pid = int(out)
    except ValueError:
        raise ProcessError("`%s` printed %r, not a pid"
                           % (" ".join(systemctl_cmd(scope, "show", "-p", "MainPID", "--value", unit,
                                                     executable=executable)), out))
    return pid if pid > 0 else None


# ---------------------------------------------------------------- mode

def resolve_mode(requested: str, systemd_unit: Optional[str], praxis_home: str) -> Tuple[str, str]:
    """(mode, reason) per SPEC 5: ``auto`` -> systemd if a unit is set, else process if this project's
    detached http server runs (classify_server ``http``), else none -- an IDE's stdio/dual server
    included: it belongs to the editor."""
    if requested not in MODES:
        raise ValueError("server mode %r is unknown; use one of %s" % (requested, ", ".join(MODES)))
    if requested == "systemd" and not systemd_unit:
        raise ValueError("server mode systemd needs praxis_systemd_unit (the unit name); set it or use "
                         "mode auto")
    if requested != "auto":
        return requested, "requested"
    if systemd_unit:
        return "systemd", "systemd unit %s is set" % systemd_unit
    found = classify_server(praxis_home)
    if found["kind"] == "http":
        return "process", found["reason"]
    if found["kind"] == "ide":
        return "none", found["reason"]
    return "none", "no live server of this project (%s): IDE-launched, nothing to restart" % found["reason"]
