"""One upgrade per installation: a live foreign lock stops preflight (naming its holder) and changes
nothing; a stale lock (too old, or its session recorded finished) is taken over and reported."""
from __future__ import annotations

import json
from typing import Any

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from tests.integration.conftest import NO_CHANGE, facts, fx, lock_path, output, snapshot, tree_diff

pytestmark = pytest.mark.slow

# The running server (not the collection) logs the preflight probe's requests to its own log.
SERVER_LOG = (".praxis-os/.cache/mcp_server.log",)


def write_lock(host: Any, session_id: str, started_at: str) -> bytes:
    owner = {"session_id": session_id, "run_id": "20260101T000000Z-ffffff", "started_at": started_at,
             "controller": "ops@other-controller", "host": "other-alias", "target_commit": "f" * 40}
    data = json.dumps(owner).encode()
    lock_path(host).write_bytes(data)
    return data


@pytest.fixture(scope="module")
def fleet(make_fleet: Any) -> Any:
    fleet = make_fleet("locks")
    for name in ("held", "old", "finished"):
        fleet.add(name, "v1")
    fleet.source("v2")
    return fleet


def limit(fleet: Any, name: str, **kwargs: Any) -> Any:
    return fleet.upgrade("v2", "--limit", name + ",localhost", **kwargs)


def test_live_foreign_lock_fails_preflight_and_changes_nothing(fleet: Any) -> None:
    host = next(h for h in fleet.hosts if h.name == "held")
    data = write_lock(host, "20260101T000000Z-abcdef", states.iso())
    before = snapshot(host.project, SERVER_LOG)
    proc = limit(fleet, "held")
    text = output(proc)
    assert proc.returncode != 0
    assert "is held by run 20260101T000000Z-ffffff of session 20260101T000000Z-abcdef" in text, text[-4000:]
    assert "ops@other-controller" in text and "last heartbeat" in text
    assert "praxis_break_lock" in text  # the next step
    assert "TASK [Roll back]" not in text
    assert tree_diff(before, snapshot(host.project, SERVER_LOG)) == NO_CHANGE
    assert lock_path(host).read_bytes() == data


@pytest.mark.parametrize("name", ["old", "finished"])
def test_stale_lock_is_taken_over_and_reported(fleet: Any, name: str) -> None:
    host = next(h for h in fleet.hosts if h.name == name)
    stale_id = "20250101T000000Z-0ld0ld" if name == "old" else "20260101T000000Z-d0ne00"
    if name == "old":
        write_lock(host, stale_id, "2025-01-01T00:00:00Z")
    else:  # a fresh lock whose session is recorded as finished
        write_lock(host, stale_id, states.iso())
        announced = states.begin_rollback(states.new_session("f" * 40, session_id=stale_id), None, "test")
        done = states.finish_rollback(announced, {})
        states.save(states.facts_path(str(host.home)), done)
    proc = limit(fleet, name)
    text = output(proc)
    assert proc.returncode == 0, text[-6000:]
    assert "stale" in text and stale_id in text, text[-6000:]
    state = facts(host)
    assert state["status"] == "completed" and state["session_id"] != stale_id
    assert not lock_path(host).exists()
    assert host.version_commit() == fx.head_commit(fleet.source("v2"))
