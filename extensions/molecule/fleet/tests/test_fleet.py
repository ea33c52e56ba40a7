"""Fleet behaviour (SPEC §8) step by step, from the run reports and facts kept by each step."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.molecule.fleetlib import Fleet, assert_upgraded, report_rows


def report(fleet: Fleet, step: str) -> dict[str, dict[str, Any]]:
    path = fleet.dir / "steps" / step / "report.json"
    assert path.is_file(), f"step {step} wrote no run report (see {path.parent}/ansible.log)"
    return report_rows(json.loads(path.read_text()))


def facts(fleet: Fleet, step: str, name: str) -> dict[str, Any] | None:
    path: Path = fleet.dir / "steps" / step / f"facts-{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def not_completed(rows: dict[str, dict[str, Any]], name: str) -> None:
    assert name in rows, f"{name} missing from the run report; every inventory host must be listed: {sorted(rows)}"
    assert rows[name]["outcome"] not in ("completed", "up_to_date"), rows[name]


def test_failing_second_batch_rolls_back_and_stops_the_run(fleet: Fleet) -> None:
    rows = report(fleet, "h2-fails")
    assert rows["praxis-h1"]["outcome"] == "completed", rows["praxis-h1"]
    assert rows["praxis-h2"]["outcome"] == "rolled_back", rows["praxis-h2"]
    assert (facts(fleet, "h2-fails", "praxis-h2") or {}).get("status") == "rolled_back"
    for later in ("praxis-h3", "praxis-h4"):
        not_completed(rows, later)
        assert facts(fleet, "h2-fails", later) is None, f"{later} was touched although its batch never ran"


def test_dropped_host_is_unreachable_and_resumable(fleet: Fleet) -> None:
    rows = report(fleet, "h3-drops")
    assert rows["praxis-h2"]["outcome"] == "completed", rows["praxis-h2"]
    assert rows["praxis-h4"]["outcome"] == "completed", rows["praxis-h4"]
    not_completed(rows, "praxis-h3")
    state = facts(fleet, "h3-drops", "praxis-h3")
    assert state and state["status"] == "in_progress", state
    assert "server" not in state["completed_phases"] and state.get("journal"), state


def test_down_host_reported_and_left_where_it_stopped(fleet: Fleet) -> None:
    rows = report(fleet, "h3-down")
    not_completed(rows, "praxis-h3")
    before, now = facts(fleet, "h3-drops", "praxis-h3"), facts(fleet, "h3-down", "praxis-h3")
    assert now == before, "the facts file of an unreachable host changed"


def test_rerun_resumed_the_same_session(fleet: Fleet) -> None:
    before = facts(fleet, "h3-drops", "praxis-h3")
    after = fleet.facts("praxis-h3")
    assert after["session_id"] == before["session_id"] and after["status"] == "completed", after
    rows = report(fleet, "h3-back")
    assert sorted(rows) == sorted(fleet.names), rows
    assert rows["praxis-h3"]["outcome"] == "completed", rows["praxis-h3"]


@pytest.mark.parametrize("host", ["praxis-h1", "praxis-h2", "praxis-h3", "praxis-h4"])
def test_every_host_upgraded_in_the_end(fleet: Fleet, host: str) -> None:
    assert_upgraded(fleet, host, "v2")
