"""The interrupted session was left resumable and the re-run completed that same session."""
from __future__ import annotations

import json

from tests.molecule.fleetlib import Fleet, assert_upgraded


def step_facts(fleet: Fleet, step: str, name: str) -> dict:
    return json.loads((fleet.dir / "steps" / step / f"facts-{name}.json").read_text())


def test_interruption_left_a_resumable_session(fleet: Fleet, name: str) -> None:
    facts = step_facts(fleet, "interrupted", name)
    assert facts["status"] == "in_progress", facts
    assert "server" not in facts["completed_phases"], facts
    assert {"preflight", "backup", "content"} <= set(facts["completed_phases"]), facts
    assert facts.get("journal"), f"no swap journal recorded before the kill: {facts}"


def test_resumed_same_session_to_completion(fleet: Fleet, name: str) -> None:
    before = step_facts(fleet, "interrupted", name)
    after = fleet.facts(name)
    assert after["session_id"] == before["session_id"], (before["session_id"], after["session_id"])
    assert after["status"] == "completed", after
    assert_upgraded(fleet, name, "v2")
