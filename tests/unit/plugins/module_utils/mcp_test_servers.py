"""Tiny test servers for the MCP client tests, run as a script with the dev venv's python.

    python mcp_test_servers.py mcp-http PORT     real MCP server (mcp SDK), streamable HTTP
    python mcp_test_servers.py mcp-json PORT     same, answering plain JSON instead of SSE
    python mcp_test_servers.py mcp-stdio         real MCP server (mcp SDK), stdio
    python mcp_test_servers.py crash             stdio process that dies with a traceback
    python mcp_test_servers.py silent            stdio process that reads stdin and never answers
"""
from __future__ import annotations

import sys
import time

TOOLS = ("current_date", "echo", "get_server_info", "broken")


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
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("broken on purpose")

    return server


def main(argv: list[str]) -> int:
    mode = argv[1]
    if mode in ("mcp-http", "mcp-json"):
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
