"""Tiny test servers for the MCP client tests, run as a script with the dev venv's python.

    python mcp_test_servers.py mcp-http PORT     real MCP server (mcp SDK), streamable HTTP
    python mcp_test_servers.py mcp-json PORT     same, answering plain JSON instead of SSE
    python mcp_test_servers.py mcp-stdio         real MCP server (mcp SDK), stdio
    python mcp_test_servers.py crash             stdio process that dies with a traceback
    python mcp_test_servers.py silent            stdio process that reads stdin and never answers

Tests start the http servers with `spawn` / `http_server`, never with a bare Popen: each server runs in
its own process group, is stopped by pid (`stop`) when the test or fixture ends, and holds a lifeline:
its stdin is a pipe whose only writer is the process that started it, and the server exits as soon as
that pipe closes. So a server outlives no test, even when the test process ends without running
teardown (ansible-test runs every unit test in a fork that leaves with os._exit(), so module-scoped
fixtures are set up in the fork and never finalized) or is SIGKILLed.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, Iterator, List

TOOLS = ("broken", "current_date", "echo", "get_server_info", "search_standards", "whoami")
SCRIPT = os.path.abspath(__file__)
REPO = os.path.abspath(os.path.join(os.path.dirname(SCRIPT), "..", "..", "..", ".."))
LIFELINE = "MCP_TEST_SERVER_LIFELINE"  # set to 1 by spawn(): exit when stdin reaches EOF
_STARTED: Dict[int, "subprocess.Popen[bytes]"] = {}


def _dev_python() -> str:
    """The dev venv's python (it has the mcp SDK). ansible-test units runs a copy of the tree below
    the checkout (.build/ansible-test/<pid>/...), so look in the enclosing directories too."""
    here = REPO
    while True:
        candidate = os.path.join(here, ".venv", "bin", "python")
        if os.path.exists(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return os.path.join(REPO, ".venv", "bin", "python")
        here = parent


VENV_PYTHON = _dev_python()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(mode: str, *args: str) -> List[str]:
    """argv running this script in ``mode`` with the dev venv (which has the mcp SDK)."""
    return [VENV_PYTHON, SCRIPT, mode, *args]


def wait_port(port: int, proc: "subprocess.Popen[bytes]", timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("test server exited with %s" % proc.returncode)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("test server did not listen on %d within %s s" % (port, timeout))


def spawn(mode: str, *args: str) -> "subprocess.Popen[bytes]":
    """Start a test server (http modes) in its own process group, tied to this process by its lifeline."""
    env = dict(os.environ)
    env[LIFELINE] = "1"
    proc = subprocess.Popen(command(mode, *args), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    _STARTED[proc.pid] = proc
    return proc


def stop(proc: "subprocess.Popen[bytes]") -> None:
    """Stop a server started by `spawn`, by its process group (= its pid): SIGTERM, SIGKILL after 5 s; reap it."""
    _STARTED.pop(proc.pid, None)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()


@atexit.register
def _stop_all() -> None:
    for proc in list(_STARTED.values()):
        stop(proc)


@contextlib.contextmanager
def http_server(mode: str = "mcp-http") -> Iterator[str]:
    """Run a real MCP server on a free loopback port; yield its url; always stop and reap it."""
    port = free_port()
    proc = spawn(mode, str(port))
    try:
        wait_port(port, proc)
        yield "http://127.0.0.1:%d/mcp" % port
    finally:
        stop(proc)


def _exit_when_lifeline_closes() -> None:
    try:
        while sys.stdin.buffer.read(1024):
            pass
    finally:
        os._exit(0)


def build_server():  # type: ignore[no-untyped-def]
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="test-praxis", version="9.8.7", log_level="WARNING")

    @server.tool()
    def get_server_info() -> dict:
        """Server facts (like prAxIs OS, which reports tools_available 0)."""
        return {"name": "test-praxis", "version": "9.8.7", "tools_available": 0}

    @server.tool()
    def current_date() -> str:
        """Today."""
        return time.strftime("%Y-%m-%d")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        return text

    @server.tool()
    def whoami() -> dict:
        """Where and with which PYTHONPATH / PRAXIS_TEST_VAR the server runs."""
        return {"cwd": os.getcwd(), "pythonpath": os.environ.get("PYTHONPATH", ""),
                "var": os.environ.get("PRAXIS_TEST_VAR", "")}

    @server.tool()
    def search_standards(query: str, n_results: int = 5) -> dict:
        """prAxIs OS's answer shape; only "workflow" is indexed (anything else: nothing, as without an index)."""
        hits = [{"content": "Workflows have phases.", "file": "universal/workflows/a.md", "section": "Phases",
                 "relevance_score": 0.3, "tokens": 3}] if "workflow" in query else []
        return {"results": hits[:n_results], "total_tokens": 3 * len(hits),
                "retrieval_method": "vector" if hits else "grep_fallback", "query_time_ms": 1.5}

    @server.tool()
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("broken on purpose")

    return server


def main(argv: list[str]) -> int:
    mode = argv[1]
    if mode in ("mcp-http", "mcp-json"):
        if os.environ.get(LIFELINE) == "1":
            threading.Thread(target=_exit_when_lifeline_closes, daemon=True).start()
        build_server().run(
            "streamable-http", host="127.0.0.1", port=int(argv[2]), json_response=(mode == "mcp-json")
        )
    elif mode == "mcp-stdio":
        build_server().run("stdio")
    elif mode == "crash":
        sys.stderr.write("starting\n")
        raise ImportError("No module named 'mcp_server.nonexistent' (test crash)")
    elif mode == "silent":
        for _line in sys.stdin:
            pass
        time.sleep(3600)
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
