"""Independent MCP health probe run ON a fleet host (stdlib only, Python >= 3.9).

    python3 mcp_probe.py PROJECT stdio   # spawn the installed server over stdio
    python3 mcp_probe.py PROJECT http    # talk to the running server named by its state file

Prints one JSON line: {"ok": bool, "tools": [...], "server": {...}, "error": str|null}.
Deliberately not praxis.upgrade's mcp_client: the verifier must not trust the code under test.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import urllib.request

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "molecule-verify", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def stdio(project: str, timeout: float = 60.0) -> dict:
    home = os.path.join(project, ".praxis-os")
    env = dict(os.environ, PYTHONPATH=home, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([os.path.join(home, "venv", "bin", "python"), "-m", "mcp_server", "--transport", "stdio"],
                            cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout

    def send(msg: dict) -> None:
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()

    def answer(msg_id: int) -> dict:
        buf = b""
        while time.monotonic() < deadline:
            ready = select.select([proc.stdout], [], [], 0.2)[0]
            if not ready:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode} before answering")
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("server closed stdout before answering")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    msg = json.loads(line)
                    if msg.get("id") == msg_id:
                        return msg
        raise RuntimeError(f"no answer to request {msg_id} within {timeout}s")

    try:
        send(INIT)
        init = answer(1)
        send(INITIALIZED)
        send(LIST)
        tools = answer(2)
        return {"init": init, "tools": tools}
    finally:
        proc.kill()
        proc.wait()


def http(project: str, timeout: float = 30.0) -> dict:
    with open(os.path.join(project, ".praxis-os", ".mcp_server_state.json"), encoding="utf-8") as fh:
        url = json.load(fh)["url"]
    session: dict = {}

    def post(msg: dict) -> dict | None:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if "id" in session:
            headers["Mcp-Session-Id"] = session["id"]
        req = urllib.request.Request(url, data=json.dumps(msg).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if resp.headers.get("Mcp-Session-Id"):
                session["id"] = resp.headers["Mcp-Session-Id"]
            body = resp.read().decode()
        if "id" not in msg or not body.strip():
            return None
        for line in body.splitlines():            # SSE: the answer is on a data: line
            if line.startswith("data:"):
                return json.loads(line[5:])
        return json.loads(body)

    init = post(INIT)
    post(INITIALIZED)
    return {"init": init, "tools": post(LIST), "url": url}


def main() -> int:
    project, transport = sys.argv[1], sys.argv[2]
    try:
        res = stdio(project) if transport == "stdio" else http(project)
        tools = sorted(t["name"] for t in res["tools"]["result"]["tools"])
        out = {"ok": True, "tools": tools, "server": res["init"]["result"].get("serverInfo"),
               "url": res.get("url"), "error": None}
    except Exception as exc:  # report, never hide: the test asserts on it
        out = {"ok": False, "tools": [], "server": None, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
