"""The interrupted session was left resumable and the re-run completed that same session."""
from __future__ import annotations

import json
from typing import Any

from tests.molecule.fleetlib import PHASES, Fleet, assert_completed_row, assert_upgraded, report_rows


def step_file(fleet: Fleet, step: str, name: str) -> Any:
    path = fleet.dir / "steps" / step / name
    assert path.is_file(), f"step {step} left no {path.name} (see {path.parent}/ansible.log)"
    return json.loads(path.read_text())


def test_controller_was_killed_mid_run(fleet: Fleet) -> None:
    result = step_file(fleet, "interrupted", "result.json")
    assert result["rc"] == -9 and result["interrupted"]["action"] == "kill-controller", result


def test_interruption_left_a_resumable_session(fleet: Fleet, name: str) -> None:
    facts = step_file(fleet, "interrupted", f"facts-{name}.json")
    assert facts["status"] == "in_progress", facts
    done = facts["completed_phases"]
    assert done == list(PHASES[:len(done)]), f"phases not recorded in order: {done}"
    assert {"preflight", "backup", "content"} <= set(done) and "validate" not in done, facts
    snap = step_file(fleet, "interrupted", f"snapshot-{name}.json")
    assert ".praxis-os/.upgrade-lock" in snap, "the killed run left no lock: nothing protected the half-done upgrade"


def test_resumed_same_session_to_completion(fleet: Fleet, name: str) -> None:
    before = step_file(fleet, "interrupted", f"facts-{name}.json")
    after = fleet.facts(name)
    assert after["session_id"] == before["session_id"], (before["session_id"], after["session_id"])
    assert after["status"] == "completed", after
    assert after["backup_path"] == before["backup_path"], "the resumed session took a new backup"
    assert_upgraded(fleet, name, "v2")


def test_resumed_run_reports_completed(fleet: Fleet, name: str) -> None:
    row = report_rows(step_file(fleet, "resumed", "report.json"))[name]
    assert_completed_row(fleet, name, row)
