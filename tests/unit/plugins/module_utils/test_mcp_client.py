"""Tests of the stdlib MCP client against real servers on loopback (mcp SDK, stdlib HTTP, raw sockets)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import mcp_client as mc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcp_test_servers as ts  # noqa: E402


# ---------------------------------------------------------------- pure functions

def test_parse_sse_events_comments_multiline_and_unterminated() -> None:
    stream = (": keep-alive\n"
              "event: message\ndata: {\"a\":\ndata: 1}\n\n"
              "data:{\"b\":2}\r\n\r\n"
              "id: 7\nretry: 100\n\n"
              "event: ping\ndata: x")
    assert mc.parse_sse(stream) == [
        {"event": "message", "data": "{\"a\":\n1}"},
        {"event": "message", "data": "{\"b\":2}"},
        {"event": "ping", "data": "x"},
    ]


def test_parse_sse_empty() -> None:
    assert mc.parse_sse("") == []


def test_pick_response_matches_id_and_skips_notifications_and_server_requests() -> None:
    messages = [
        {"jsonrpc": "2.0", "method": "notifications/message", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"},  # a server request reusing our id
        {"jsonrpc": "2.0", "id": 1, "result": {"old": True}},
        [{"jsonrpc": "2.0", "id": 2, "result": {"ok": True}}],
        "junk",
    ]
    assert mc.pick_response(messages, 2) == {"jsonrpc": "2.0", "id": 2, "result": {"ok": True}}
    assert mc.pick_response(messages, 3) is None
    assert mc.pick_response([{"id": 3}], 3) is None  # neither result nor error
    assert mc.pick_response([{"id": 3, "error": {"code": 1}}], 3) == {"id": 3, "error": {"code": 1}}


def test_rpc_result_unwraps_and_raises_on_error() -> None:
    assert mc.rpc_result({"id": 1, "result": {"x": 1}}, "m") == {"x": 1}
    assert mc.rpc_result({"id": 1, "result": None}, "m") == {}
    with pytest.raises(mc.RpcError, match=r"tools/call failed: server error -32602: bad params"):
        mc.rpc_result({"id": 1, "error": {"code": -32602, "message": "bad params"}}, "tools/call")
    with pytest.raises(mc.RpcError, match="server error None: boom"):
        mc.rpc_result({"id": 1, "error": "boom"}, "x")


def test_content_text_joins_text_items_and_truncates() -> None:
    result = {"content": [{"type": "text", "text": "a"}, {"type": "image", "data": "..."},
                          {"type": "text", "text": "b"}, "junk"]}
    assert mc.content_text(result) == "a\nb"
    assert mc.content_text({"content": [{"type": "text", "text": "x" * 20}]}, limit=5) == "xxxxx..."
    assert mc.content_text({}) == ""


def test_deadline() -> None:
    assert not mc.Deadline(10).expired()
    assert mc.Deadline(0).expired()


# ---------------------------------------------------------------- real MCP server (mcp SDK)

@pytest.fixture(scope="module")
def sdk_url() -> Iterator[str]:
    with ts.http_server("mcp-http") as url:
        yield url


def test_http_probe_of_real_server_is_healthy(sdk_url: str) -> None:
    result = mc.probe("http", url=sdk_url, timeout=10, expected_tools=["echo", "get_server_info"], min_tools=3,
                      smoke_calls=["get_server_info", {"name": "echo", "arguments": {"text": "hello"}}])
    assert result["errors"] == []
    assert result["healthy"] is True
    assert result["transport"] == "http"
    assert (result["server_name"], result["server_version"]) == ("test-praxis", "9.8.7")
    assert result["protocol_version"] == mc.PROTOCOL_VERSION
    assert result["tools"] == sorted(ts.TOOLS)
    assert result["tool_count"] == len(ts.TOOLS)
    assert result["missing_tools"] == []
    assert 0 <= result["response_time_ms"] < 10000
    assert result["smoke_results"]["echo"] == {"ok": True, "is_error": False, "text": "hello"}
    assert json.loads(result["smoke_results"]["get_server_info"]["text"])["tools_available"] == 0


def test_search_smoke_needs_at_least_one_result(sdk_url: str) -> None:
    """Issue 7 item 2: a server whose search finds nothing (no index table) is not healthy."""
    found = mc.probe("http", url=sdk_url, timeout=10, search_query="workflow standards")
    assert found["healthy"] and found["errors"] == [], found["errors"]
    assert found["search"] == {"query": "workflow standards", "results": 1, "retrieval_method": "vector",
                               "error": None}
    empty = mc.probe("http", url=sdk_url, timeout=10, search_query="nothing indexed")
    assert not empty["healthy"] and empty["search"]["results"] == 0
    assert "returned no results (retrieval grep_fallback)" in empty["errors"][0]
    assert "praxis_search_query" in empty["errors"][0]
    assert mc.probe("http", url=sdk_url, timeout=10)["search"] is None  # no query: no search call


@pytest.mark.parametrize("answer, count, method, error", [
    ({"structuredContent": {"results": [{}, {}], "retrieval_method": "vector"}}, 2, "vector", None),
    ({"structuredContent": {"result": {"results": [{}], "retrieval_method": "vector"}}}, 1, "vector", None),
    ({"content": [{"type": "text", "text": json.dumps({"results": [], "retrieval_method": "grep_fallback"})}]},
     0, "grep_fallback", None),
    ({"content": [{"type": "text", "text": json.dumps({"error": "boom", "results": [], "total_tokens": 0})}]},
     0, None, "boom"),
    ({"structuredContent": {"result": [{"path": "a.md"}]}}, 1, None, None),  # an older bare-list answer
    ({"content": [{"type": "text", "text": "no json"}]}, 0, None, "the answer is not a search result: no json"),
])
def test_search_outcome_understands_every_answer_shape(answer: Any, count: int, method: Any, error: Any) -> None:
    assert mc.search_outcome(answer) == {"results": count, "retrieval_method": method, "error": error}


def test_http_probe_reports_missing_tools_min_tools_and_tool_errors(sdk_url: str) -> None:
    result = mc.probe("http", url=sdk_url, timeout=10, expected_tools=["pos_workflow", "echo", "pos_browser"],
                      min_tools=50, smoke_calls=["broken"])
    assert result["healthy"] is False
    assert result["missing_tools"] == ["pos_browser", "pos_workflow"]
    assert result["errors"][0].startswith("missing tools: pos_browser, pos_workflow")
    assert "only 6 tools registered, at least 50 expected" in result["errors"]
    assert result["smoke_results"]["broken"]["is_error"] is True
    assert result["errors"][-1].startswith("call broken returned an error: Error executing tool broken")


def test_http_close_deletes_the_session(sdk_url: str) -> None:
    transport = mc.HttpTransport(sdk_url, mc.Deadline(10))
    session = mc.McpSession(transport)
    session.initialize()
    old_session = transport.session_id
    assert old_session
    transport.close()
    assert transport.session_id is None
    transport.session_id = old_session  # reuse the deleted session: the server must refuse it
    with pytest.raises(mc.McpError, match="HTTP 404"):
        session.list_tools()


def test_http_probe_of_real_server_answering_plain_json() -> None:
    with ts.http_server("mcp-json") as url:
        result = mc.probe("http", url=url, timeout=10, smoke_calls=["current_date"])
    assert result["healthy"] is True, result["errors"]
    assert result["smoke_results"]["current_date"]["text"] == time.strftime("%Y-%m-%d")


def test_http_connection_refused_names_url_and_log() -> None:
    port = ts.free_port()
    result = mc.probe("http", url="http://127.0.0.1:%d/mcp" % port, timeout=3,
                      log_hint=".praxis-os/.cache/mcp_server.log")
    assert result["healthy"] is False
    assert result["errors"][0].startswith("cannot reach http://127.0.0.1:%d/mcp" % port)
    assert result["errors"][0].endswith("is the server running? check .praxis-os/.cache/mcp_server.log")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/mcp", "http:///mcp", "127.0.0.1:4242"])
def test_http_invalid_url(url: str) -> None:
    assert mc.probe("http", url=url, timeout=1)["errors"][0].startswith("invalid MCP url")


def test_probe_argument_errors() -> None:
    assert "no MCP url" in mc.probe("http", timeout=1)["errors"][0]
    assert "no server command" in mc.probe("stdio", timeout=1)["errors"][0]
    assert "unknown transport 'sse'" in mc.probe("sse", timeout=1)["errors"][0]


# ---------------------------------------------------------------- hanging socket

def test_http_hang_is_bounded_by_the_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: List[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d/mcp" % listener.getsockname()[1]
    try:
        started = time.monotonic()
        result = mc.probe("http", url=url, timeout=1.5, log_hint=".praxis-os/.cache/mcp_server.log")
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
    assert elapsed < 1.5 + 2
    assert result["healthy"] is False
    assert result["errors"] == ["no answer from %s within 1.5 s — is the server running? "
                                "check .praxis-os/.cache/mcp_server.log" % url]


def test_http_trickling_answer_is_bounded_by_the_timeout() -> None:
    """A server that keeps sending bytes (never a full event) must not outlive the deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn = listener.accept()[0]
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ")
        with contextlib.suppress(OSError):
            while not stop.is_set():
                conn.sendall(b"x")
                time.sleep(0.1)
        conn.close()

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d/mcp" % listener.getsockname()[1]
    try:
        started = time.monotonic()
        result = mc.probe("http", url=url, timeout=1.5)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert elapsed < 1.5 + 2
    assert result["errors"] == ["no answer from %s within 1.5 s — is the server running? check the server log" % url]


# ---------------------------------------------------------------- scripted stdlib servers

class Scripted(BaseHTTPRequestHandler):
    """A hand-written streamable HTTP endpoint; ``server.mode`` picks a behaviour, requests are logged."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, ctype: str, body: str, session: bool = True) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if session:
            self.send_header("Mcp-Session-Id", "sess-1")
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, *messages: Dict[str, Any]) -> None:
        events = ["event: message\ndata: " + json.dumps(m, indent=1).replace("\n", "\ndata: ") + "\n\n"
                  for m in messages]
        self._send(200, "text/event-stream", ": hello\n\n" + "".join(events))

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.log.append(("DELETE", dict(self.headers)))  # type: ignore[attr-defined]
        self._send(200, "application/json", "")

    def do_POST(self) -> None:  # noqa: N802
        mode = self.server.mode  # type: ignore[attr-defined]
        msg = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.log.append((msg["method"], dict(self.headers)))  # type: ignore[attr-defined]
        method, rid = msg["method"], msg.get("id")
        note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info"}}
        if method == "initialize":
            if mode == "html":
                return self._send(200, "text/html", "<html><body>Welcome</body></html>", session=False)
            if mode == "not-rpc":
                return self._send(200, "application/json", '{"status": "ok"}', session=False)
            if mode == "error-500":
                return self._send(500, "text/plain", "Internal Server Error", session=False)
            if mode == "no-server-info":
                return self._send(200, "application/json", json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}))
            return self._sse(note, {"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": "2025-03-26", "capabilities": {"tools": {}},
                "serverInfo": {"name": "scripted", "version": "0.1"}}})
        if method == "notifications/initialized":
            return self._send(400 if mode == "reject-notify" else 202, "application/json", "")
        if (self.headers.get("Mcp-Session-Id") != "sess-1"
                or self.headers.get("MCP-Protocol-Version") != "2025-03-26"):
            return self._send(400, "application/json", json.dumps(
                {"jsonrpc": "2.0", "id": rid, "error": {"code": -32600, "message": "missing session headers"}}))
        if method == "tools/list":
            cursor = (msg.get("params") or {}).get("cursor")
            page = ({"tools": [{"name": "c"}]} if cursor == "p2"
                    else {"tools": [{"name": "b"}, {"name": "a"}], "nextCursor": "p2"})
            return self._send(200, "application/json; charset=utf-8",
                              json.dumps({"jsonrpc": "2.0", "id": rid, "result": page}))
        name = msg["params"]["name"]
        if name == "rpcfail":
            return self._sse({"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": "bad arguments"}})
        if name == "streamend":
            return self._sse(note)
        if name == "garbage":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"data: not json\n\n")
            return None
        return self._sse({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": "args=%s" % json.dumps(msg["params"]["arguments"])}]}})


@pytest.fixture()
def scripted() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.mode = "ok"  # type: ignore[attr-defined]
    server.log = []  # type: ignore[attr-defined]
    server.url = "http://127.0.0.1:%d/mcp" % server.server_address[1]  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_scripted_sse_pagination_headers_and_delete(scripted: Any) -> None:
    result = mc.probe("http", url=scripted.url, timeout=5, expected_tools=["a", "c"],
                      smoke_calls=[{"name": "x", "arguments": {"k": 1}}])
    assert result["errors"] == []
    assert result["protocol_version"] == "2025-03-26"  # whatever the server answers is accepted
    assert result["tools"] == ["a", "b", "c"]
    assert result["smoke_results"]["x"]["text"] == 'args={"k": 1}'
    methods = [entry[0] for entry in scripted.log]
    assert methods == ["initialize", "notifications/initialized", "tools/list", "tools/list", "tools/call",
                       "DELETE"]
    init_headers = scripted.log[0][1]
    assert init_headers["Accept"] == "application/json, text/event-stream"
    assert "Mcp-Session-Id" not in init_headers and "MCP-Protocol-Version" not in init_headers
    assert scripted.log[-1][1]["Mcp-Session-Id"] == "sess-1"


def test_scripted_rpc_error_stream_end_and_garbage_are_reported_per_call(scripted: Any) -> None:
    result = mc.probe("http", url=scripted.url, timeout=5, smoke_calls=["rpcfail", "ok"])
    assert result["smoke_results"]["rpcfail"]["ok"] is False
    assert result["errors"] == ["call rpcfail returned an error: tools/call failed: server error -32602: "
                                "bad arguments"]
    assert result["smoke_results"]["ok"]["ok"] is True
    result = mc.probe("http", url=scripted.url, timeout=5, smoke_calls=["streamend", "never-called"])
    assert result["errors"] == ["tools/call to %s: the event stream ended without an answer — check the "
                                "server log" % scripted.url]
    assert "never-called" not in result["smoke_results"]
    result = mc.probe("http", url=scripted.url, timeout=5, smoke_calls=["garbage"])
    assert "event stream ended without an answer" in result["errors"][0]


@pytest.mark.parametrize("mode, expected", [
    ("html", "not an MCP server: initialize to {url} returned HTTP 200 text/html, not a JSON-RPC answer: "
             "'<html><body>Welcome</body></html>'"),
    ("not-rpc", "not an MCP server: initialize to {url} returned HTTP 200 application/json, not a JSON-RPC "
                "answer: '{{\"status\": \"ok\"}}'"),
    ("error-500", "not an MCP server: initialize to {url} returned HTTP 500 text/plain, not a JSON-RPC answer: "
                  "'Internal Server Error'"),
    ("no-server-info", "not an MCP server: the initialize answer has no protocolVersion/serverInfo"),
    ("reject-notify", "notifications/initialized to {url} returned HTTP 400 — the server rejected the session; "
                      "check the server log"),
])
def test_scripted_not_mcp_answers(scripted: Any, mode: str, expected: str) -> None:
    scripted.mode = mode
    result = mc.probe("http", url=scripted.url, timeout=5)
    assert result["healthy"] is False
    assert result["errors"] == [expected.format(url=scripted.url)]


def test_plain_http_server_404_is_not_mcp() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # answers 501 to POST
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d/mcp" % server.server_address[1]
    try:
        result = mc.probe("http", url=url, timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result["errors"][0].startswith("not an MCP server: initialize to %s returned HTTP 501" % url)


def test_real_server_wrong_path_is_404(sdk_url: str) -> None:
    url = sdk_url.replace("/mcp", "/")
    result = mc.probe("http", url=url, timeout=5)
    assert result["errors"] == ["not an MCP server: POST %s returned HTTP 404 — check the url (the MCP "
                                "endpoint is usually /mcp)" % url]


# ---------------------------------------------------------------- stdio

def test_stdio_probe_of_real_server_passes_cwd_and_env(tmp_path: Any) -> None:
    home = tmp_path / ".praxis-os"
    home.mkdir()
    env = mc.server_env(str(home), {"PRAXIS_TEST_VAR": 42, "PYTHONPATH": "/opt/extra"})
    result = mc.probe("stdio", command=ts.command("mcp-stdio"), cwd=str(tmp_path), env=env, timeout=20,
                      expected_tools=["whoami"], smoke_calls=["whoami"])
    assert result["errors"] == []
    assert result["tools"] == sorted(ts.TOOLS)
    seen = json.loads(result["smoke_results"]["whoami"]["text"])
    assert seen == {"cwd": str(tmp_path), "pythonpath": "%s:/opt/extra" % home, "var": "42"}


def test_stdio_tolerates_log_noise_on_stdout() -> None:
    cmd = ["sh", "-c", 'echo "loading model..."; exec "$0" "$@"'] + ts.command("mcp-stdio")
    result = mc.probe("stdio", command=cmd, timeout=20)
    assert result["healthy"] is True, result["errors"]


def test_stdio_crash_reports_exit_code_and_traceback() -> None:
    result = mc.probe("stdio", command=ts.command("crash"), timeout=10)
    assert result["healthy"] is False
    error = result["errors"][0]
    assert error.startswith("server process exited with code 1 before answering: starting\nTraceback")
    assert error.endswith("ImportError: No module named 'mcp_server.nonexistent' (test crash)")


def test_stdio_exit_without_output() -> None:
    result = mc.probe("stdio", command=["true"], timeout=5)
    assert result["errors"] == ["server process exited with code 0 before answering: (no stderr output)"]


def test_stdio_missing_command() -> None:
    result = mc.probe("stdio", command=["/nonexistent/venv/bin/python", "-m", "mcp_server"], timeout=5)
    assert result["errors"][0].startswith("cannot start the server command /nonexistent/venv/bin/python -m "
                                          "mcp_server: ")


def test_stdio_silent_server_is_bounded_and_reaped() -> None:
    transport = mc.StdioTransport(ts.command("silent"), mc.Deadline(1.5))
    started = time.monotonic()
    with pytest.raises(mc.McpError, match=r"no answer from the server command .* within 1.5 s \(initialize\)"):
        try:
            mc.McpSession(transport).initialize()
        finally:
            transport.close()
    assert time.monotonic() - started < 1.5 + 2
    assert transport.proc.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(transport.proc.pid, 0)


def test_stdio_server_that_ignores_term_is_killed() -> None:
    code = "import signal,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', file=sys.stderr, flush=True); time.sleep(60)"
    transport = mc.StdioTransport([sys.executable, "-c", code], mc.Deadline(0.5))
    with pytest.raises(mc.McpError, match="within 0.5 s"):
        try:
            mc.McpSession(transport).initialize()
        finally:
            transport.close()
    assert transport.proc.returncode == -9


# ---------------------------------------------------------------- discovery and pid ownership

@pytest.fixture()
def project(tmp_path: Any) -> Any:
    (tmp_path / "proj" / ".praxis-os").mkdir(parents=True)
    return tmp_path / "proj"


def _state(project: Any, **state: Any) -> str:
    home = project / ".praxis-os"
    (home / mc.STATE_FILE).write_text(json.dumps(state))
    return str(home)


@pytest.fixture()
def sleeper() -> Iterator[Any]:
    procs: List[subprocess.Popen] = []

    def spawn(cwd: str, env: Any = None) -> int:
        procs.append(subprocess.Popen(["sleep", "60"], cwd=cwd, env=env))
        return procs[-1].pid

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


def test_pid_alive() -> None:
    assert mc.pid_alive(os.getpid())
    assert not mc.pid_alive(0) and not mc.pid_alive(-5) and not mc.pid_alive(True)
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and mc.pid_alive(proc.pid):  # exited but not reaped: a zombie
        time.sleep(0.02)
    assert not mc.pid_alive(proc.pid)
    proc.wait()
    assert not mc.pid_alive(proc.pid)


def test_discover_live_server_of_this_project_by_cwd(project: Any, sleeper: Any) -> None:
    pid = sleeper(str(project))
    home = _state(project, pid=pid, url="http://127.0.0.1:4242/mcp")
    assert mc.discover_http_url(home) == ("http://127.0.0.1:4242/mcp", pid, None)


def test_discover_by_pythonpath_and_url_from_port(project: Any, tmp_path: Any, sleeper: Any) -> None:
    pid = sleeper(str(tmp_path), env={"PYTHONPATH": "/opt/x:%s" % (project / ".praxis-os")})
    home = _state(project, pid=pid, host="127.0.0.1", port=4343, path="/mcp")
    assert mc.discover_http_url(home) == ("http://127.0.0.1:4343/mcp", pid, None)


def test_discover_pid_of_another_project(project: Any, tmp_path: Any, sleeper: Any) -> None:
    other = tmp_path / "other"
    other.mkdir()
    pid = sleeper(str(other), env={"PYTHONPATH": str(other / ".praxis-os")})
    home = _state(project, pid=pid, url="http://127.0.0.1:4242/mcp")
    url, got_pid, problem = mc.discover_http_url(home)
    assert (url, got_pid) == (None, pid)
    assert problem.startswith("pid %d named in %s belongs to another project" % (pid, home + "/" + mc.STATE_FILE))


def test_discover_stale_pid(project: Any) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    home = _state(project, pid=proc.pid, url="http://127.0.0.1:4242/mcp")
    url, pid, problem = mc.discover_http_url(home)
    assert (url, pid) == (None, proc.pid)
    assert "names pid %d which is not running (stale after a crash)" % proc.pid in problem


@pytest.mark.parametrize("content, expected", [
    (None, "no server state file at"),
    ("{not json", "cannot read the server state file"),
    ("[1, 2]", "is not a JSON object"),
    ('{"url": "http://x/mcp"}', "has no valid pid"),
    ('{"pid": "12"}', "has no valid pid"),
])
def test_discover_bad_state_files(project: Any, content: Any, expected: str) -> None:
    home = project / ".praxis-os"
    if content is not None:
        (home / mc.STATE_FILE).write_text(content)
    url, pid, problem = mc.discover_http_url(str(home))
    assert url is None and pid is None
    assert expected in problem


def test_discover_state_without_url(project: Any, sleeper: Any) -> None:
    pid = sleeper(str(project))
    url, got, problem = mc.discover_http_url(_state(project, pid=pid))
    assert (url, got) == (None, pid)
    assert "has no url/port" in problem


def test_log_errors_after_offset_rotation_and_missing(tmp_path: Any) -> None:
    log = tmp_path / "mcp_server.log"
    old = "2026-01-01 ERROR old failure before the restart\n"
    log.write_text(old + "INFO started\n2026-01-02 ERROR  mcp_server: index broken\nan ERRORS word is not a level\n"
                   "CRITICAL out of memory\n")
    assert mc.log_errors(str(log), len(old)) == (
        ["2026-01-02 ERROR  mcp_server: index broken", "CRITICAL out of memory"], 2)
    assert mc.log_errors(str(log), len(old), limit=1) == (["2026-01-02 ERROR  mcp_server: index broken"], 2)
    assert mc.log_errors(str(log), 10 ** 9)[1] == 3  # shorter than the offset: rotated, read from the start
    assert mc.log_errors(str(tmp_path / "missing.log"), 0) == ([], 0)


def test_stdio_command_and_server_env(monkeypatch: Any) -> None:
    assert mc.stdio_command_for("/p/.praxis-os") == [
        "/p/.praxis-os/venv/bin/python", "-m", "mcp_server", "--transport", "stdio"]
    monkeypatch.setenv("PYTHONPATH", "/from/controller")
    monkeypatch.setenv("HOME_MARKER", "kept")
    monkeypatch.setenv("PYTHONHOME", "/ansible/venv")
    monkeypatch.setenv("VIRTUAL_ENV", "/ansible/venv")
    env = mc.server_env("/p/.praxis-os", {"HF_HUB_OFFLINE": 1})
    assert env["PYTHONPATH"] == "/p/.praxis-os"
    assert env["HF_HUB_OFFLINE"] == "1" and env["HOME_MARKER"] == "kept"
    assert "PYTHONHOME" not in env and "VIRTUAL_ENV" not in env
    assert mc.server_env("/p/.praxis-os", {"VIRTUAL_ENV": "/p/.praxis-os/venv"})["VIRTUAL_ENV"] == "/p/.praxis-os/venv"
    assert mc.server_env("/p/.praxis-os")["PYTHONPATH"] == "/p/.praxis-os"
