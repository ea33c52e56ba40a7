"""praxis_health run in-process (patch_module_args) against real MCP servers on loopback."""
from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Dict, Iterator

import pytest
from tests.unit.plugins.modules.module_args import patch_module_args

from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.modules import praxis_health
from tests.unit.plugins.module_utils import mcp_test_servers as ts


def run_module(capsys: Any, **args: Any) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        praxis_health.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with ts.http_server("mcp-http") as server_url:
        yield server_url


@pytest.fixture()
def home(tmp_path: Any) -> Any:
    path = tmp_path / "project" / ".praxis-os"
    path.mkdir(parents=True)
    return path


def test_healthy_by_url(capsys: Any, url: str) -> None:
    result = run_module(capsys, url=url, expected_tools=["get_server_info", "echo"], min_tools=2,
                        smoke_calls=["get_server_info", {"name": "echo", "arguments": {"text": "x"}}], timeout=10)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["healthy"] is True
    assert result["tools"] == sorted(ts.TOOLS) and result["tool_count"] == len(ts.TOOLS)
    assert result["missing_tools"] == [] and result["errors"] == []
    assert (result["server_name"], result["server_version"], result["protocol_version"]) == (
        "test-praxis", "9.8.7", "2025-06-18")
    assert result["url"] == url and result["pid"] is None and result["transport"] == "http"
    assert result["attempts"] == 1 and result["response_time_ms"] >= 0
    assert result["smoke_results"]["echo"]["text"] == "x"


def test_check_mode_still_probes(capsys: Any, url: str) -> None:
    result = run_module(capsys, url=url, timeout=10, _ansible_check_mode=True)
    assert result["healthy"] is True and result["changed"] is False and result["tool_count"] == len(ts.TOOLS)


def test_missing_expected_tool_fails_naming_it(capsys: Any, url: str) -> None:
    result = run_module(capsys, url=url, expected_tools=["get_server_info", "pos_workflow"], timeout=10)
    assert result["failed"] is True
    assert result["healthy"] is False and result["missing_tools"] == ["pos_workflow"]
    assert result["msg"].startswith("MCP server at %s is unhealthy after 1 attempt(s): missing tools: "
                                    "pos_workflow" % url)
    assert "Next: check the server log and run the probe again." in result["msg"]


def test_unhealthy_without_failing(capsys: Any, url: str) -> None:
    result = run_module(capsys, url=url, smoke_calls=["broken"], fail_on_unhealthy=False, timeout=10)
    assert not result.get("failed")
    assert result["healthy"] is False
    assert result["errors"] == ["call broken returned an error: Error executing tool broken"]


def test_error_lines_in_the_log_since_the_restart_fail(capsys: Any, url: str, tmp_path: Any) -> None:
    log = tmp_path / "mcp_server.log"
    before = "ERROR from the previous server\n"
    log.write_text(before + "INFO Server started\n")
    result = run_module(capsys, url=url, timeout=10, log_file=str(log), log_offset=len(before))
    assert result["healthy"] is True and result["log_errors"] == []
    with log.open("a") as handle:
        handle.write("2026-11-24 ERROR tool search_standards failed: index missing\n")
    result = run_module(capsys, url=url, timeout=10, log_file=str(log), log_offset=len(before))
    assert result["failed"] is True and result["healthy"] is False
    assert result["log_errors"] == ["2026-11-24 ERROR tool search_standards failed: index missing"]
    assert "1 ERROR line(s) in %s since the restart, first: 2026-11-24 ERROR tool" % log in result["msg"]


def test_changed_only_when_the_phase_is_recorded(capsys: Any, url: str, home: Any) -> None:
    """`changed` is true exactly when record_phase wrote the facts file (documented in DOCUMENTATION)."""
    document = states.new_session("b" * 40, controller="alice@ctl", host="web1")
    document["status"] = "in_progress"
    facts = states.facts_path(str(home))
    states.save(facts, document)
    locks.acquire(locks.lock_path(str(home)), locks.make_owner(document["session_id"], "b" * 40, "alice@ctl"))
    before = open(facts).read()

    checked = run_module(capsys, url=url, praxis_home=str(home), record_phase="validate", timeout=10,
                         _ansible_check_mode=True)
    assert checked["healthy"] is True and checked["changed"] is False and "session" not in checked
    assert open(facts).read() == before

    recorded = run_module(capsys, url=url, praxis_home=str(home), record_phase="validate", timeout=10)
    assert recorded["healthy"] is True and recorded["changed"] is True
    assert "validate" in recorded["session"]["completed_phases"]
    assert json.loads(open(facts).read())["completed_phases"] == recorded["session"]["completed_phases"]
    assert "C(changed) is true only when\n    O(record_phase) is set" in praxis_health.DOCUMENTATION


def test_discovers_url_and_pid_from_state_file(capsys: Any, url: str, home: Any) -> None:
    owner = subprocess.Popen(["sleep", "60"], cwd=str(home.parent))  # stands in for this project's server pid
    try:
        (home / ".mcp_server_state.json").write_text(json.dumps({"pid": owner.pid, "url": url}))
        result = run_module(capsys, praxis_home=str(home), timeout=10)
    finally:
        owner.kill()
        owner.wait()
    assert result["healthy"] is True, result.get("msg")
    assert (result["url"], result["pid"]) == (url, owner.pid)


def test_stale_state_file_fails_with_next_step(capsys: Any, home: Any) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (home / ".mcp_server_state.json").write_text(json.dumps({"pid": dead.pid, "url": "http://127.0.0.1:1/mcp"}))
    result = run_module(capsys, praxis_home=str(home), timeout=5)
    assert result["failed"] is True and result["pid"] == dead.pid and result["url"] is None
    assert "names pid %d which is not running (stale after a crash)" % dead.pid in result["msg"]
    assert result["msg"].endswith("Next: check %s and run the probe again." % (home / ".cache" / "mcp_server.log"))


def test_stdio_installed_layout_with_server_env(capsys: Any, home: Any) -> None:
    """Default stdio command of an installation: <home>/venv/bin/python -m mcp_server, cwd project, PYTHONPATH home."""
    (home / "venv" / "bin").mkdir(parents=True)
    python = home / "venv" / "bin" / "python"
    python.write_text('#!/bin/sh\nexec %s "$@"\n' % ts.VENV_PYTHON)  # the dev venv stands in for the install's
    python.chmod(0o755)
    (home / "mcp_server").mkdir()
    (home / "mcp_server" / "__init__.py").write_text("")
    (home / "mcp_server" / "__main__.py").write_text(
        "import runpy, sys\nassert sys.argv[1:] == ['--transport', 'stdio'], sys.argv\n"
        "sys.argv = [%r, 'mcp-stdio']\nrunpy.run_path(%r, run_name='__main__')\n" % (ts.SCRIPT, ts.SCRIPT))
    result = run_module(capsys, transport="stdio", praxis_home=str(home), env={"PRAXIS_TEST_VAR": "from-operator"},
                        smoke_calls=["whoami"], expected_tools=["whoami"], timeout=20)
    assert result["healthy"] is True, result.get("msg")
    assert result["url"] is None and result["transport"] == "stdio"
    assert json.loads(result["smoke_results"]["whoami"]["text"]) == {
        "cwd": str(home.parent), "pythonpath": str(home), "var": "from-operator"}


def test_stdio_command_override_crash(capsys: Any) -> None:
    result = run_module(capsys, transport="stdio", command=ts.command("crash"), timeout=10)
    assert result["failed"] is True
    assert "server process exited with code 1 before answering" in result["msg"]
    assert result["msg"].endswith("Next: run `%s` by hand in %s to see its full output." % (
        " ".join(ts.command("crash")), os.getcwd()))
    assert result["msg"].startswith("MCP server at `%s` is unhealthy" % " ".join(ts.command("crash")))


def test_retries_until_a_restarted_server_answers(capsys: Any) -> None:
    port = ts.free_port()
    server = ts.spawn("mcp-http", str(port))  # not listening yet: the first attempts are refused
    try:
        result = run_module(capsys, url="http://127.0.0.1:%d/mcp" % port, retries=100, retry_delay=0.1,
                            timeout=30)
    finally:
        ts.stop(server)
    assert result["healthy"] is True, result.get("msg")
    assert result["attempts"] > 1


def test_retries_stop_at_the_limit(capsys: Any) -> None:
    started = time.monotonic()
    result = run_module(capsys, url="http://127.0.0.1:%d/mcp" % ts.free_port(), retries=2, retry_delay=0.1,
                        timeout=10)
    assert result["failed"] is True and result["attempts"] == 3
    assert "is unhealthy after 3 attempt(s): cannot reach" in result["msg"]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("args, expected", [
    ({}, "transport is http but any of the following are missing: url, praxis_home"),
    ({"transport": "stdio"}, "transport is stdio but any of the following are missing: command, praxis_home"),
    ({"url": "http://127.0.0.1:1/mcp", "smoke_calls": [{"arguments": {}}]}, "is neither a tool name nor a dict"),
])
def test_bad_arguments(capsys: Any, args: Dict[str, Any], expected: str) -> None:
    result = run_module(capsys, **args)
    assert result["failed"] is True
    assert expected in result["msg"]


def test_search_query_that_finds_nothing_fails(capsys: Any, url: str) -> None:
    """Issue 7 item 2: validate fails when search_standards returns nothing (grep fallback, no index)."""
    result = run_module(capsys, url=url, search_query="nothing indexed", timeout=10)
    assert result["failed"] is True and result["healthy"] is False
    assert result["search"]["results"] == 0 and "returned no results" in result["msg"]
    ok = run_module(capsys, url=url, search_query="workflow", timeout=10)
    assert ok["healthy"] is True and ok["search"]["results"] == 1
    assert run_module(capsys, url=url, search_query="", timeout=10)["search"] is None  # "" disables it
