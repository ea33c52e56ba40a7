"""The MCP probe and praxis_health against real fixture prAxIs OS installations (tests/fixtures/praxis_fixture)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import mcp_client as mc

pytestmark = pytest.mark.slow
fixture = pytest.importorskip("tests.fixtures.praxis_fixture", reason="fixture package not built yet")
API = ("make_source", "install", "start_http_server", "stop_server", "EXPECTED_TOOLS", "wheelhouse")
if not all(hasattr(fixture, name) for name in API):
    pytest.skip("tests/fixtures/praxis_fixture does not export %s yet" % ", ".join(API), allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / ".venv" / "bin" / "ansible"


@pytest.fixture(scope="module")
def installs(tmp_path_factory: Any) -> Dict[str, Path]:
    """version -> project dir, each a fresh install of that fixture version (default shared venv cache)."""
    root = tmp_path_factory.mktemp("health")
    projects = {}
    for version in ("v2", "v2-missing-tool", "v2-crash", "v2-hang"):
        source = root / ("src-" + version)
        fixture.make_source(source, version)
        project = root / ("proj-" + version)
        project.mkdir()
        fixture.install(source, project, fixture.wheelhouse(), user_content=True)
        projects[version] = project
    return projects


def stdio_probe(project: Path, timeout: float = 60.0, **kwargs: Any) -> Dict[str, Any]:
    home = str(project / ".praxis-os")
    return mc.probe("stdio", command=mc.stdio_command_for(home), cwd=str(project),
                    env=mc.server_env(home, {"HF_HUB_OFFLINE": "1"}), timeout=timeout, **kwargs)


@pytest.fixture()
def http_v2(installs: Dict[str, Path]) -> Iterator[Path]:
    project = installs["v2"]
    fixture.start_http_server(project, env={"HF_HUB_OFFLINE": "1"}, timeout=60)
    try:
        yield project
    finally:
        fixture.stop_server(project)


def test_http_probe_of_installed_server(http_v2: Path) -> None:
    url, pid, problem = mc.discover_http_url(str(http_v2 / ".praxis-os"))
    assert problem is None and url and mc.pid_belongs_to(pid, str(http_v2))
    result = mc.probe("http", url=url, timeout=60, expected_tools=fixture.EXPECTED_TOOLS["v2"],
                      min_tools=len(fixture.EXPECTED_TOOLS["v2"]), smoke_calls=["get_server_info"])
    assert result["errors"] == []
    assert set(fixture.EXPECTED_TOOLS["v2"]) <= set(result["tools"])
    assert result["smoke_results"]["get_server_info"]["ok"] is True


def test_module_under_ansible_discovers_the_server(http_v2: Path) -> None:
    home = http_v2 / ".praxis-os"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    args = json.dumps({"praxis_home": str(home), "expected_tools": fixture.EXPECTED_TOOLS["v2"],
                       "smoke_calls": ["get_server_info"], "timeout": 60})
    proc = subprocess.run([str(ANSIBLE), "localhost", "-c", "local", "-m", "praxis.upgrade.praxis_health",
                           "-a", args, "--check"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("localhost | SUCCESS => "), proc.stdout
    result = json.loads(proc.stdout.split("=> ", 1)[1])
    assert result["healthy"] is True and result["changed"] is False
    assert result["pid"] == json.loads((home / ".mcp_server_state.json").read_text())["pid"]


def test_killed_server_leaves_a_stale_state_file(http_v2: Path) -> None:
    home = str(http_v2 / ".praxis-os")
    url, pid, problem = mc.discover_http_url(home)
    assert problem is None
    os.kill(pid, signal.SIGKILL)  # verified above: alive and of this project
    deadline = time.monotonic() + 10
    while mc.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    url, got_pid, problem = mc.discover_http_url(home)
    assert url is None and got_pid == pid
    assert "which is not running (stale after a crash)" in problem


def test_stdio_probe_of_installed_server(installs: Dict[str, Path]) -> None:
    result = stdio_probe(installs["v2"], expected_tools=fixture.EXPECTED_TOOLS["v2"], smoke_calls=["get_server_info"])
    assert result["errors"] == []
    assert result["transport"] == "stdio" and result["tool_count"] >= len(fixture.EXPECTED_TOOLS["v2"])


def test_stdio_missing_tool_variant(installs: Dict[str, Path]) -> None:
    result = stdio_probe(installs["v2-missing-tool"], expected_tools=fixture.EXPECTED_TOOLS["v2"])
    assert result["healthy"] is False
    assert result["missing_tools"] == ["pos_browser"]
    assert result["errors"][0].startswith("missing tools: pos_browser")


def test_stdio_crash_variant(installs: Dict[str, Path]) -> None:
    result = stdio_probe(installs["v2-crash"])
    assert result["healthy"] is False
    assert result["errors"][0].startswith("server process exited with code 1 before answering")
    assert "BrowserSession" in result["errors"][0]


def test_stdio_hang_variant_is_bounded(installs: Dict[str, Path]) -> None:
    started = time.monotonic()
    result = stdio_probe(installs["v2-hang"], timeout=5)
    assert time.monotonic() - started < 5 + 2
    assert result["healthy"] is False
    assert "within 5 s (initialize)" in result["errors"][0]
