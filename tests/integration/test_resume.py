"""Resume: a run killed at a fault point (the whole `ansible-playbook` process group gets SIGKILL, like a
controller that dies) is finished by the next plain run, in the same session, from the same backup."""
from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.integration.conftest import facts, framework_view, fx, lock_path, output, probe_http, probe_stdio, recap

pytestmark = pytest.mark.slow

# fault point -> (host alias, http server?, phases recorded complete when it fires)
FAULTS = {
    "backup.done": ("b", False, ["preflight"]),
    "server.between_renames": ("r", True, ["preflight", "backup", "content"]),
    "server.during_pip": ("p", False, ["preflight", "backup", "content"]),
}
HOME_ENTRIES = {"mcp_server", "scripts", "standards", "workflows", "usage", "specs", "workspace", "venv", ".cache",
                ".backups", "config.json", "VERSION.txt", "UPDATE_LOG.txt", "INSTALLATION_SUMMARY.md",
                ".mcp_server_state.json"}


@pytest.fixture(scope="module")
def fleet(make_fleet: Any) -> Any:
    fleet = make_fleet("resume")
    for alias, http, _phases in FAULTS.values():
        fleet.add(alias, "v1", http=http)
    fleet.source("v2")
    return fleet


@pytest.mark.parametrize("point", sorted(FAULTS))
def test_killed_run_is_resumed_in_the_same_session(fleet: Any, point: str) -> None:
    alias, http, phases = FAULTS[point]
    host = next(h for h in fleet.hosts if h.name == alias)

    killed = fleet.upgrade("v2", "--limit", alias + ",localhost", env={"PRAXIS_FAULT_POINT": point})
    # ansible-core's workers run in their own session, so the fault point kills the worker running the
    # module; the controller then stops the whole run at once (no rescue, no cleanup), like a crash.
    died = killed.returncode == -signal.SIGKILL or "A worker was found in a dead state" in killed.stderr
    assert died, output(killed)[-4000:]
    assert "TASK [Roll back]" not in killed.stdout
    interrupted = facts(host)
    assert interrupted["status"] == "in_progress"
    assert interrupted["completed_phases"] == phases
    assert lock_path(host).exists()

    proc = fleet.upgrade("v2", "--limit", alias + ",localhost")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert recap(proc)[alias]["failed"] == 0
    state = facts(host)
    assert state["session_id"] == interrupted["session_id"]
    assert state["status"] == "completed"
    assert set(state["completed_phases"]) >= {"backup", "content", "server", "validate"}
    backups = list((host.home / ".backups").iterdir())
    assert [b.as_posix() for b in backups] == [state["backup_path"]]
    assert not lock_path(host).exists()
    assert host.version_commit() == fx.head_commit(fleet.source("v2"))

    v2_server = {k: v for k, v in fx.installed_tree("v2").items() if k.startswith("mcp_server/")}
    assert {k: v for k, v in framework_view(host).items() if k.startswith("mcp_server/")} == v2_server
    assert set(p.name for p in host.home.iterdir()) <= HOME_ENTRIES  # no staging or swap residue
    health = probe_http(host.project) if http else probe_stdio(host.project)
    assert health["healthy"], health
    assert sorted(health["tools"]) == fx.EXPECTED_TOOLS["v2"]
