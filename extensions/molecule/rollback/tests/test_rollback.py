"""Each failed upgrade restored v1 exactly, healthy, and said so in its state file and run report."""
from __future__ import annotations

import json

from tests.molecule.fleetlib import Fleet, assert_rolled_back, report_rows

STEP_OF = {"praxis-h1": ("crash", "v2-crash"), "praxis-h2": ("missing-tool", "v2-missing-tool")}


def test_rolled_back_to_v1(fleet: Fleet, name: str) -> None:
    facts = assert_rolled_back(fleet, name)
    assert facts["target_commit"] == fleet.commit(STEP_OF[name][1]), facts


def test_run_report_says_rolled_back(fleet: Fleet, name: str) -> None:
    step = STEP_OF[name][0]
    report = json.loads((fleet.dir / "steps" / step / "report.json").read_text())
    row = report_rows(report)[name]
    assert row["outcome"] == "rolled_back", f"{name}: {row}"
    assert row.get("reason"), f"{name}: the report does not say why: {row}"


def test_backup_kept_for_inspection(fleet: Fleet, name: str) -> None:
    facts = fleet.facts(name)
    backup = facts.get("backup_path")
    assert backup and fleet.host(name).file(f"{backup}/MANIFEST.json").exists, \
        f"{name}: the backup used for the rollback is gone: {backup}"
