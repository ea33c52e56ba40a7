"""The unit tests' MCP servers never outlive the test that started them (issue 9, bug 4).

ansible-test runs each unit test in a fork that ends with os._exit(): fixture teardown does not run
there. These tests end a process the same way, inside `http_server()`, and require its server to go.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcp_test_servers as ts  # noqa: E402


def _server_pids(port: int) -> List[int]:
    """Pids of the test servers listening on `port` (found by their command line, then signalled by pid)."""
    wanted = [ts.SCRIPT, "mcp-http", str(port)]
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
            with open("/proc/%s/stat" % name) as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if argv[1:4] == wanted:
            pids.append(int(name))
    return pids


def _wait_gone(port: int, timeout: float) -> List[int]:
    end = time.monotonic() + timeout
    pids = _server_pids(port)
    while pids and time.monotonic() < end:
        time.sleep(0.1)
        pids = _server_pids(port)
    return pids


def _run_and_vanish(body: str) -> int:
    """Run `body` in a python that leaves with os._exit(0) (no teardown); return the port it printed."""
    code = ("import os, sys\nsys.path.insert(0, %r)\nimport mcp_test_servers as ts\n%s\n"
            "    print(url.rsplit(':', 1)[1].split('/')[0], flush=True)\n    os._exit(0)\n"
            % (os.path.dirname(ts.SCRIPT), body))
    done = subprocess.run([ts.VENV_PYTHON, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def _kill(pids: List[int]) -> None:
    for pid in pids:  # only if the test failed: leave nothing behind either way
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_server_exits_when_its_starter_exits_without_teardown() -> None:
    port = _run_and_vanish("with ts.http_server('mcp-http') as url:")
    left: Optional[List[int]] = None
    try:
        left = _wait_gone(port, 10)
        assert left == [], "test server on port %d outlived the process that started it: pids %s" % (port, left)
    finally:
        _kill(left or [])


def test_stop_ends_the_server_by_pid() -> None:
    port = ts.free_port()
    proc = ts.spawn("mcp-http", str(port))
    try:
        ts.wait_port(port, proc)
        assert _server_pids(port) == [proc.pid]
        assert os.getpgid(proc.pid) == proc.pid  # its own process group
    finally:
        ts.stop(proc)
    assert proc.returncode is not None
    assert _server_pids(port) == []
