"""Automatic rollback of each broken upgrade, and `playbooks/rollback.yml` after a good one: afterwards the
project is exactly what it was (venv included), its v1 server healthy, the session `rolled_back`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (KEEP, NO_CHANGE, facts, fx, lock_path, output, probe_http, probe_stdio,
                                        snapshot, tree_diff)

pytestmark = pytest.mark.slow

# The state file of a server in process mode names its pid: a restarted server writes a new one.
EXACT = KEEP + (".praxis-os/.mcp_server_state.json",)

# variant -> (http server?, extra group vars, failed phase, words the failure must name)
BROKEN = {
    "v2-crash": (True, {}, "server", ["ImportError"]),
    "v2-missing-tool": (False, {"praxis_expected_tools": fx.EXPECTED_TOOLS["v2"]}, "validate", ["pos_browser"]),
    "v2-pipfail": (True, {}, "server", ["praxis-nonexistent-dep"]),
    "v2-hang": (True, {"praxis_health_timeout": 15}, "server", ["15"]),
}


def assert_v1_healthy(host: Any, http: bool, old_pid: int | None) -> None:
    if http:
        state = fx.read_state(host.project)
        assert state and state["pid"] != old_pid and fx.pid_alive(state["pid"])
        assert not fx.pid_alive(old_pid)
        health = probe_http(host.project)
    else:
        assert fx.read_state(host.project) is None
        health = probe_stdio(host.project)
    assert health["healthy"], health
    assert sorted(health["tools"]) == fx.EXPECTED_TOOLS["v1"]


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_broken_upgrade_rolls_back_exactly(make_fleet: Any, variant: str) -> None:
    http, group_vars, phase, words = BROKEN[variant]
    fleet = make_fleet(variant)
    host = fleet.add("h", "v1", http=http)
    fleet.source(variant)
    before = snapshot(host.project, EXACT)
    old_pid = fx.read_state(host.project)["pid"] if http else None

    proc = fleet.upgrade(variant, **group_vars)

    text = output(proc)
    assert proc.returncode != 0, text[-6000:]
    message = text[text.rindex("failed in phase"):][:3000]
    assert message.startswith("failed in phase " + phase), message
    assert all(word in message for word in words), message
    assert "rolled back from backup" in message and "re-run playbooks/upgrade.yml" in message
    assert tree_diff(before, snapshot(host.project, EXACT)) == NO_CHANGE
    assert_v1_healthy(host, http, old_pid)
    state = facts(host)
    assert state["status"] == "rolled_back"
    assert all(word in state["reason"] for word in words), state["reason"]
    assert not lock_path(host).exists()
    rows = fleet.last_report()["hosts"]
    assert [(r["host"], r["outcome"], r["failed_phase"]) for r in rows] == [("h", "rolled_back", phase)]


@pytest.fixture(scope="module")
def upgraded(make_fleet: Any) -> Any:
    fleet = make_fleet("rollbackyml")
    host = fleet.add("h", "v1", http=True)
    v1 = snapshot(host.project, EXACT)
    proc = fleet.upgrade("v2")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert fx.read_state(host.project)["pid"] and host.version_commit() != host.install["commit"]
    return fleet, host, v1


def test_rollback_refuses_a_backup_that_fails_verification(upgraded: Any) -> None:
    fleet, host, _v1 = upgraded
    backup = Path(facts(host)["backup_path"])
    victim = backup / "files" / fx.LOCALLY_MODIFIED_CONFLICT
    original = victim.read_bytes()
    victim.write_bytes(original + b"tampered\n")
    try:
        before = snapshot(host.project, (".praxis-os/.cache",))
        pid = fx.read_state(host.project)["pid"]
        proc = fleet.playbook("rollback.yml")
        text = output(proc)
        assert proc.returncode != 0, text[-6000:]
        assert fx.LOCALLY_MODIFIED_CONFLICT in text and backup.name in text, text[-4000:]
        assert "failed verification" in text and "praxis_backup_name=" in text  # what is wrong, what to do
        assert tree_diff(before, snapshot(host.project, (".praxis-os/.cache",))) == NO_CHANGE
        assert fx.read_state(host.project)["pid"] == pid and fx.pid_alive(pid)
    finally:
        victim.write_bytes(original)


def test_rollback_playbook_restores_v1_exactly(upgraded: Any) -> None:
    fleet, host, v1 = upgraded
    pid = fx.read_state(host.project)["pid"]
    proc = fleet.playbook("rollback.yml")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert tree_diff(v1, snapshot(host.project, EXACT)) == NO_CHANGE
    assert host.version_commit() == host.install["commit"]
    assert_v1_healthy(host, True, pid)
    state = facts(host)
    assert state["status"] == "rolled_back" and "operator" in state["reason"]
    assert not lock_path(host).exists()
