# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Minimal MCP client (stdlib only) for health probes over streamable HTTP and stdio.

Health is the MCP protocol itself: ``initialize`` -> ``notifications/initialized`` ->
``tools/list`` (+ optional smoke ``tools/call``). Every call is bounded by one deadline.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time
from typing import IO, Any, Dict, Iterable, List, Optional, Sequence, Tuple, cast
from urllib.parse import urlsplit

PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "praxis.upgrade", "version": "1.0.0"}
STATE_FILE = ".mcp_server_state.json"
TEXT_LIMIT = 500
STDERR_LIMIT = 2000
MAX_PAGES = 100
LOG_ERROR_RE = re.compile(r"\b(ERROR|CRITICAL)\b")
LOG_SCAN_LIMIT = 8 * 1024 * 1024


class McpError(Exception):
    """A failure talking to the server; the message is a sentence for an operator."""


class RpcError(McpError):
    """The server answered with a JSON-RPC error object (the connection itself is fine)."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


# ---------------------------------------------------------------- pure helpers

def parse_sse(text: str) -> List[Dict[str, str]]:
    """Split an SSE stream into events ``{"event": ..., "data": ...}`` (multi-line data joined by \\n)."""
    events: List[Dict[str, str]] = []
    event, data = "message", []  # type: str, List[str]
    for line in text.splitlines() + [""]:
        if line == "":
            if data:
                events.append({"event": event, "data": "\n".join(data)})
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _colon, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
    return events


def pick_response(messages: Iterable[Any], request_id: Any) -> Optional[Dict[str, Any]]:
    """The JSON-RPC response (result or error) answering ``request_id``; notifications are skipped."""
    for msg in messages:
        batch = msg if isinstance(msg, list) else [msg]
        for item in batch:
            if (isinstance(item, dict) and "method" not in item and item.get("id") == request_id
                    and ("result" in item or "error" in item)):
                return item
    return None


def rpc_result(response: Dict[str, Any], method: str) -> Dict[str, Any]:
    """Unwrap a JSON-RPC response, raising RpcError on an error object."""
    if "error" in response:
        err = response["error"] if isinstance(response["error"], dict) else {"message": response["error"]}
        raise RpcError("%s failed: server error %s: %s" % (method, err.get("code"), err.get("message")))
    result = response.get("result")
    return result if isinstance(result, dict) else {}


def content_text(result: Dict[str, Any], limit: int = TEXT_LIMIT) -> str:
    """The text items of a tools/call result, joined and truncated."""
    parts = [str(c.get("text", "")) for c in result.get("content") or [] if isinstance(c, dict)]
    text = "\n".join(p for p in parts if p)
    return text if len(text) <= limit else text[:limit] + "..."


def _shutdown(sock: socket.socket) -> None:
    """Unblock any read on ``sock`` (called by the deadline watchdog)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _tail(data: bytes, limit: int = STDERR_LIMIT) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text[-limit:]


# ---------------------------------------------------------------- transports

class HttpTransport:
    """Streamable HTTP: one POST per message, session id kept, JSON or SSE answers."""

    def __init__(self, url: str, deadline: Deadline, log_hint: str = "the server log") -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise McpError("invalid MCP url %r: expected http(s)://host:port/path" % url)
        self.url, self.deadline, self.log_hint = url, deadline, log_hint
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self.session_id = None  # type: Optional[str]
        self.protocol_version = None  # type: Optional[str]

    def _timeout_error(self) -> McpError:
        return McpError("no answer from %s within %g s — is the server running? check %s"
                        % (self.url, self.deadline.seconds, self.log_hint))

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=max(timeout, 0.05))

    def _headers(self) -> Dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def send(self, message: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """POST one message; return the matching response (None for a notification)."""
        if self.deadline.expired():
            raise self._timeout_error()
        conn = self._connect(self.deadline.remaining())
        watchdog = None  # type: Optional[threading.Timer]
        try:
            conn.connect()
            # Socket timeouts bound each read; the watchdog bounds the whole exchange (a server trickling bytes).
            watchdog = threading.Timer(max(0.0, self.deadline.remaining()), _shutdown, (conn.sock,))
            watchdog.daemon = True
            watchdog.start()
            conn.request("POST", self.path, body=json.dumps(message).encode(), headers=self._headers())
            return self._read(conn.getresponse(), message)
        except (socket.timeout, TimeoutError):
            raise self._timeout_error()
        except McpError:
            if self.deadline.expired():
                raise self._timeout_error()
            raise
        except (OSError, http.client.HTTPException) as exc:
            if self.deadline.expired():
                raise self._timeout_error()
            raise McpError("cannot reach %s: %s — is the server running? check %s"
                           % (self.url, exc, self.log_hint))
        finally:
            if watchdog is not None:
                watchdog.cancel()
            conn.close()

    def _read(self, resp: http.client.HTTPResponse, message: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        method = message["method"]
        session = resp.getheader("Mcp-Session-Id")
        if session:
            self.session_id = session
        ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if "id" not in message:
            if resp.status in (200, 202, 204):
                return None
            raise McpError("%s to %s returned HTTP %s — the server rejected the session; check %s"
                           % (method, self.url, resp.status, self.log_hint))
        if resp.status == 404 and method == "initialize":
            raise McpError("not an MCP server: POST %s returned HTTP 404 — check the url (the MCP endpoint "
                           "is usually /mcp)" % self.url)
        if ctype == "text/event-stream" and resp.status == 200:
            return self._read_sse(resp, message)
        body = self._read_body(resp)
        try:
            decoded = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            decoded = None
        found = pick_response([decoded], message["id"]) if decoded is not None else None
        if found is not None:
            return found
        snippet = body[:120].decode("utf-8", "replace").replace("\n", " ")
        raise McpError("not an MCP server: %s to %s returned HTTP %s %s, not a JSON-RPC answer: %r"
                       % (method, self.url, resp.status, ctype or "(no content-type)", snippet))

    def _read_body(self, resp: http.client.HTTPResponse) -> bytes:
        chunks = []  # type: List[bytes]
        while True:
            self._arm(resp)
            chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _read_sse(self, resp: http.client.HTTPResponse, message: Dict[str, Any]) -> Dict[str, Any]:
        lines = []  # type: List[str]
        while True:
            self._arm(resp)
            raw = resp.readline()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if raw and line:
                lines.append(line)
                continue
            for event in parse_sse("\n".join(lines)):
                try:
                    found = pick_response([json.loads(event["data"])], message["id"])
                except ValueError:
                    found = None
                if found is not None:
                    return found
            lines = []
            if not raw:
                raise McpError("%s to %s: the event stream ended without an answer — check %s"
                               % (message["method"], self.url, self.log_hint))

    def _arm(self, resp: http.client.HTTPResponse) -> None:
        """Bound the next socket read by the overall deadline."""
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise self._timeout_error()
        sock = getattr(getattr(resp, "fp", None), "raw", None)
        sock = getattr(sock, "_sock", None)
        if sock is not None:
            sock.settimeout(remaining)

    def close(self) -> None:
        """Best effort DELETE of the session."""
        if not self.session_id:
            return
        conn = self._connect(max(0.5, min(2.0, self.deadline.remaining())))
        try:
            conn.request("DELETE", self.path, headers=self._headers())
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
            self.session_id = None


class StdioTransport:
    """Newline-delimited JSON-RPC with a spawned server process."""

    def __init__(self, command: Sequence[str], deadline: Deadline, cwd: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None) -> None:
        self.command, self.deadline = list(command), deadline
        self.stdout_buf, self.stderr_buf = b"", b""
        try:
            self.proc = subprocess.Popen(self.command, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
        except OSError as exc:
            raise McpError("cannot start the server command %s: %s — check the path (is the venv "
                           "installed?)" % (" ".join(self.command), exc))
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ, "out")  # type: ignore[arg-type]
        self.selector.register(self.proc.stderr, selectors.EVENT_READ, "err")  # type: ignore[arg-type]

    def _died(self) -> McpError:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=max(0.1, min(2.0, self.deadline.remaining())))
            except subprocess.TimeoutExpired:
                code = None
        self._drain_stderr()
        return McpError("server process exited with code %s before answering: %s"
                        % (code, _tail(self.stderr_buf) or "(no stderr output)"))

    def _drain_stderr(self, wait: float = 0.5) -> None:
        """Read what stderr has (up to EOF, at most ``wait`` seconds)."""
        stream = self.proc.stderr
        if stream is None or stream.closed:
            return
        end = time.monotonic() + wait
        with selectors.DefaultSelector() as sel:
            sel.register(stream, selectors.EVENT_READ)
            while sel.select(max(0.0, end - time.monotonic())):
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    return
                self.stderr_buf = (self.stderr_buf + chunk)[-STDERR_LIMIT * 2:]

    def send(self, message: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        stdin = cast(IO[bytes], self.proc.stdin)
        try:
            stdin.write(json.dumps(message).encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died()
        if "id" not in message:
            return None
        while True:
            while b"\n" in self.stdout_buf:
                line, self.stdout_buf = self.stdout_buf.split(b"\n", 1)
                try:
                    found = pick_response([json.loads(line.decode("utf-8"))], message["id"])
                except ValueError:
                    continue  # tolerate log noise on stdout
                if found is not None:
                    return found
            remaining = self.deadline.remaining()
            if remaining <= 0:
                self._drain_stderr(0.0)
                raise McpError("no answer from the server command %s within %g s (%s): %s"
                               % (" ".join(self.command), self.deadline.seconds, message["method"],
                                  _tail(self.stderr_buf) or "(no stderr output)"))
            for key, _events in self.selector.select(min(remaining, 0.5)):
                chunk = os.read(key.fd, 65536)
                if key.data == "err":
                    self.stderr_buf = (self.stderr_buf + chunk)[-STDERR_LIMIT * 2:]
                    if not chunk:
                        self.selector.unregister(key.fileobj)
                elif chunk:
                    self.stdout_buf += chunk
                else:
                    raise self._died()

    def close(self) -> None:
        """Close stdin, then TERM and KILL the process group; always reap."""
        proc = self.proc
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        for sig, wait in ((None, 0.5), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            if sig is not None:
                try:
                    os.killpg(proc.pid, sig)
                except OSError:
                    pass
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        self.selector.close()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


# ---------------------------------------------------------------- protocol

class McpSession:
    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.next_id = 0

    def request(self, method: str, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}  # type: Dict[str, Any]
        if params is not None:
            message["params"] = params
        return rpc_result(self.transport.send(message), method)

    def notify(self, method: str) -> None:
        self.transport.send({"jsonrpc": "2.0", "method": method})

    def initialize(self) -> Dict[str, Any]:
        result = self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                             "clientInfo": dict(CLIENT_INFO)})
        version = result.get("protocolVersion")
        if not isinstance(version, str) or "serverInfo" not in result:
            raise McpError("not an MCP server: the initialize answer has no protocolVersion/serverInfo")
        self.transport.protocol_version = version
        self.notify("notifications/initialized")
        return result

    def list_tools(self) -> List[str]:
        names, cursor = [], None  # type: List[str], Optional[str]
        for _page in range(MAX_PAGES):
            result = self.request("tools/list", {"cursor": cursor} if cursor else None)
            names.extend(str(t.get("name")) for t in result.get("tools") or [] if isinstance(t, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return sorted(set(names))

    def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments or {}})


def _smoke_items(smoke_calls: Iterable[Any]) -> List[Tuple[str, Dict[str, Any]]]:
    items = []
    for call in smoke_calls:
        if isinstance(call, dict):
            items.append((str(call["name"]), dict(call.get("arguments") or {})))
        else:
            items.append((str(call), {}))
    return items


SEARCH_TOOL = "search_standards"


def _search_payload(value: Any) -> Optional[Dict[str, Any]]:
    """The ``{"results": [...], ...}`` answer inside a tool result value (unwrapping ``{"result": ...}``)."""
    if isinstance(value, dict):
        if isinstance(value.get("results"), list):
            return value
        if "result" in value:
            return _search_payload(value["result"])
    if isinstance(value, list):
        return {"results": value}
    return None


def search_outcome(answer: Dict[str, Any]) -> Dict[str, Any]:
    """How many results a ``search_standards`` call returned, from either prAxIs OS answer shape.

    Upstream (both the agent-os and the praxis-os releases) answers ``{"results": [...],
    "total_tokens", "retrieval_method", "query_time_ms"}`` (``{"error", "results": []}`` on failure),
    as structured content and/or as JSON text; older servers answered a bare list. Returns
    ``results`` (a count), ``retrieval_method`` and ``error`` (or None).
    """
    payload = _search_payload(answer.get("structuredContent"))
    if payload is None:
        for item in answer.get("content") or []:
            if isinstance(item, dict) and item.get("type") == "text":
                try:
                    payload = _search_payload(json.loads(item.get("text") or ""))
                except ValueError:
                    continue
                if payload is not None:
                    break
    if payload is None:
        return {"results": 0, "retrieval_method": None,
                "error": "the answer is not a search result: %s" % (content_text(answer, 200) or "(empty)")}
    error = payload.get("error")
    return {"results": len(payload["results"]), "retrieval_method": payload.get("retrieval_method"),
            "error": str(error) if error else None}


def empty_result(transport: str, error: Optional[str] = None) -> Dict[str, Any]:
    """A health result with nothing learned yet (unhealthy when ``error`` is given)."""
    return {"healthy": False, "transport": transport, "server_name": None,
            "server_version": None, "protocol_version": None, "tools": [], "missing_tools": [],
            "tool_count": 0, "response_time_ms": None, "smoke_results": {}, "search": None,
            "errors": [error] if error else []}


def probe(transport: str, url: Optional[str] = None, command: Optional[Sequence[str]] = None,
          cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None, timeout: float = 60.0,
          expected_tools: Iterable[str] = (), min_tools: int = 1, smoke_calls: Iterable[Any] = (),
          log_hint: str = "the server log", search_query: Optional[str] = None) -> Dict[str, Any]:
    """Handshake, list tools, run smoke calls and (with ``search_query``) a search that must find
    something; return the health result (never raises McpError)."""
    result = empty_result(transport)
    errors = result["errors"]  # type: List[str]
    deadline = Deadline(timeout)
    conn = None  # type: Any
    try:
        if transport == "http":
            if not url:
                raise McpError("no MCP url to probe — pass url, or praxis_home of a server started in http mode")
            conn = HttpTransport(url, deadline, log_hint)
        elif transport == "stdio":
            if not command:
                raise McpError("no server command to spawn for the stdio probe — pass command or praxis_home")
            conn = StdioTransport(command, deadline, cwd=cwd, env=env)
        else:
            raise McpError("unknown transport %r: use http or stdio" % transport)
        session = McpSession(conn)
        started = time.monotonic()
        init = session.initialize()
        info = init.get("serverInfo") or {}
        result.update(server_name=info.get("name"), server_version=info.get("version"),
                      protocol_version=init.get("protocolVersion"))
        tools = session.list_tools()
        result["response_time_ms"] = int((time.monotonic() - started) * 1000)
        result.update(tools=tools, tool_count=len(tools))
        result["missing_tools"] = sorted(set(expected_tools) - set(tools))
        if result["missing_tools"]:
            errors.append("missing tools: %s (the server has: %s)"
                          % (", ".join(result["missing_tools"]), ", ".join(tools) or "none"))
        if len(tools) < min_tools:
            errors.append("only %d tools registered, at least %d expected" % (len(tools), min_tools))
        for name, arguments in _smoke_items(smoke_calls):
            try:
                answer = session.call_tool(name, arguments)
            except RpcError as exc:
                result["smoke_results"][name] = {"ok": False, "is_error": True, "text": str(exc)}
                errors.append("call %s returned an error: %s" % (name, exc))
                continue
            is_error = bool(answer.get("isError"))
            text = content_text(answer)
            result["smoke_results"][name] = {"ok": not is_error, "is_error": is_error, "text": text}
            if is_error:
                errors.append("call %s returned an error: %s" % (name, text or "(no text)"))
        if search_query:
            result["search"] = _search_smoke(session, search_query, errors)
    except McpError as exc:
        errors.append(str(exc))
    finally:
        if conn is not None:
            conn.close()
    result["healthy"] = not errors
    return result


def _search_smoke(session: McpSession, query: str, errors: List[str]) -> Dict[str, Any]:
    """Call search_standards(query); no result at all makes the server unhealthy."""
    outcome = {"query": query, "results": 0, "retrieval_method": None, "error": None}
    try:
        answer = session.call_tool(SEARCH_TOOL, {"query": query})
    except RpcError as exc:
        outcome["error"] = str(exc)
    else:
        if answer.get("isError"):
            outcome["error"] = content_text(answer, 300) or "(no text)"
        else:
            outcome.update(search_outcome(answer))
    if outcome["error"]:
        errors.append("search smoke call %s(query=%r) failed: %s" % (SEARCH_TOOL, query, outcome["error"]))
    elif not outcome["results"]:
        errors.append("search smoke call %s(query=%r) returned no results (retrieval %s): the server's search "
                      "index is missing or empty (the log says whether it fell back to grep); rebuild it by "
                      "creating standards/.rebuild_index and restarting the server, or set "
                      "praxis_search_query to a query your standards match (empty disables the check)"
                      % (SEARCH_TOOL, query, outcome["retrieval_method"] or "unknown"))
    return outcome


# ---------------------------------------------------------------- installed server helpers

def probe_server(transport: str, praxis_home: Optional[str] = None, url: Optional[str] = None,
                 command: Optional[Sequence[str]] = None, cwd: Optional[str] = None,
                 extra_env: Optional[Dict[str, Any]] = None, timeout: float = 60.0, **checks: Any) -> Dict[str, Any]:
    """One probe of an installation's server (``probe`` with its ``checks``), with ``url`` and ``pid`` added.

    With ``praxis_home``: over http the url comes from its state file unless given (trusted only for a live pid
    of this project), over stdio the installation's server is spawned in the project with ``server_env``.
    """
    log_hint = os.path.join(praxis_home, ".cache", "mcp_server.log") if praxis_home else "the server log"
    pid = None
    if transport == "http" and not url:
        url, pid, problem = discover_http_url(praxis_home or "")
        if problem:
            result = empty_result("http", problem)
            result.update(url=None, pid=pid)
            return result
    if praxis_home:
        command = command or stdio_command_for(praxis_home)
        cwd = cwd or os.path.dirname(os.path.realpath(praxis_home))
        env = server_env(praxis_home, extra_env)
    else:
        env = dict(os.environ)
        env.update((str(k), str(v)) for k, v in (extra_env or {}).items())
    result = probe(transport, url=url, command=command, cwd=cwd, env=env, timeout=timeout, log_hint=log_hint, **checks)
    result.update(url=url if transport == "http" else None, pid=pid)
    return result


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a running (not zombie) process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def pid_belongs_to(pid: int, project_dir: str) -> bool:
    """True when the process runs in ``project_dir`` (cwd) or has a PYTHONPATH entry inside it."""
    project = os.path.realpath(project_dir)
    try:
        if os.path.realpath(os.readlink("/proc/%d/cwd" % pid)) == project:
            return True
    except OSError:
        pass
    try:
        with open("/proc/%d/environ" % pid, "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        return False
    for item in environ:
        if item.startswith(b"PYTHONPATH="):
            for entry in item[len(b"PYTHONPATH="):].decode("utf-8", "replace").split(os.pathsep):
                real = os.path.realpath(entry) if entry else ""
                if real == project or real.startswith(project + os.sep):
                    return True
    return False


def discover_http_url(praxis_home: str) -> Tuple[Optional[str], Optional[int], Optional[str]]:
    """(url, pid, problem) from ``<praxis_home>/.mcp_server_state.json``; trusted only for a live pid of this project."""
    path = os.path.join(praxis_home, STATE_FILE)
    project = os.path.dirname(os.path.realpath(praxis_home))
    try:
        with open(path, "r", encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return None, None, ("no server state file at %s: no server is running in http mode for this project "
                            "(start it, or probe with transport=stdio)" % path)
    except (OSError, ValueError) as exc:
        return None, None, "cannot read the server state file %s: %s — remove it if corrupt" % (path, exc)
    if not isinstance(state, dict):
        return None, None, "the server state file %s is not a JSON object — remove it if corrupt" % path
    pid = state.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return None, None, "the server state file %s has no valid pid — remove it and restart the server" % path
    if not pid_alive(pid):
        return None, pid, ("state file %s names pid %d which is not running (stale after a crash) — restart "
                           "the server" % (path, pid))
    if not pid_belongs_to(pid, project):
        return None, pid, ("pid %d named in %s belongs to another project, not %s — the state file is stale; "
                           "restart this project's server" % (pid, path, project))
    url = state.get("url")
    if not url and state.get("port"):
        url = "http://%s:%s%s" % (state.get("host") or "127.0.0.1", state["port"], state.get("path") or "/mcp")
    if not url:
        return None, pid, "the server state file %s has no url/port — restart the server" % path
    return str(url), pid, None


def log_errors(path: str, offset: int = 0, limit: int = 20) -> Tuple[List[str], int]:
    """(first ``limit`` ERROR/CRITICAL lines written to ``path`` after byte ``offset``, how many in all).

    A missing log has no errors; a log shorter than ``offset`` was rotated and is read from the start.
    At most the last LOG_SCAN_LIMIT bytes are read.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = offset if 0 <= offset <= size else 0
            handle.seek(max(start, size - LOG_SCAN_LIMIT))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return [], 0
    found = [line.rstrip() for line in text.splitlines() if LOG_ERROR_RE.search(line)]
    return [line[:300] for line in found[:limit]], len(found)


def stdio_command_for(praxis_home: str) -> List[str]:
    """The command IDEs use to launch an installed prAxIs OS server over stdio."""
    return [os.path.join(praxis_home, "venv", "bin", "python"), "-m", "mcp_server", "--transport", "stdio"]


def server_env(praxis_home: str, extra_env: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
    """The process environment plus the operator's ``extra_env``, with PYTHONPATH=<praxis_home> first.

    PYTHONHOME and VIRTUAL_ENV of the calling process (e.g. Ansible's own venv) are dropped unless
    ``extra_env`` sets them: they would make the installation's venv python load the wrong stdlib.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
    env.update({str(k): str(v) for k, v in (extra_env or {}).items()})
    extra_path = str((extra_env or {}).get("PYTHONPATH") or "")
    env["PYTHONPATH"] = praxis_home + (os.pathsep + extra_path if extra_path else "")
    return env
