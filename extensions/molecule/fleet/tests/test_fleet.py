"""Fleet behaviour (SPEC §8 and issue 4 a/b/c) step by step: the run reports, logs, facts files and
tree snapshots each step of converge.yml kept, then the final state checked on the hosts over SSH."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.molecule.fleetlib import (
    PHASES,
    Fleet,
    assert_completed_row,
    assert_upgraded,
    markdown_outcomes,
    report_rows,
    row_commits,
    snapshot_diff,
)

H1, H2, H3, H4 = "praxis-h1", "praxis-h2", "praxis-h3", "praxis-h4"


def kept(fleet: Fleet, step: str, name: str) -> Any:
    path = fleet.dir / "steps" / step / name
    return json.loads(path.read_text()) if path.is_file() else None


def report(fleet: Fleet, step: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
    """(document, rows by host, markdown outcome by host) of the run report a step wrote."""
    path = fleet.dir / "steps" / step / "report.json"
    assert path.is_file(), f"step {step} wrote no run report (see {path.parent}/ansible.log)"
    doc = json.loads(path.read_text())
    assert doc["inventory"] == fleet.names, f"{step}: report inventory {doc['inventory']} != {fleet.names}"
    return doc, report_rows(doc), markdown_outcomes(path)


def recap(fleet: Fleet, step: str) -> dict[str, dict[str, int]]:
    log = (fleet.dir / "steps" / step / "ansible.log").read_text()
    out = {}
    for m in re.finditer(r"^(praxis-h\d+)\s+:\s+(.*)$", log, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def unchanged_since_install(fleet: Fleet, step: str, name: str) -> list[str]:
    return snapshot_diff(fleet.baseline(name)["snapshot"], kept(fleet, step, f"snapshot-{name}.json"))


# ---------------------------------------------------------------- (b) failing host in batch 2
def test_b_canary_upgraded(fleet: Fleet) -> None:
    rows = report(fleet, "b-h2-broken")[1]
    assert_completed_row(fleet, H1, rows[H1])


def test_b_failing_host_rolled_itself_back(fleet: Fleet) -> None:
    rows, md = report(fleet, "b-h2-broken")[1:]
    row = rows[H2]
    assert row["outcome"] == "rolled_back" and md[H2] == "rolled_back", row
    assert row.get("reason") and row.get("failed_phase") == "server", row
    assert row.get("healthy_after_rollback") is True, row
    facts = kept(fleet, "b-h2-broken", f"facts-{H2}.json")
    assert facts and facts["status"] == "rolled_back" and facts.get("reason"), facts
    assert not unchanged_since_install(fleet, "b-h2-broken", H2), \
        f"{H2} not restored exactly: {unchanged_since_install(fleet, 'b-h2-broken', H2)}"
    assert ".praxis-os/.upgrade-lock" not in kept(fleet, "b-h2-broken", f"snapshot-{H2}.json")


def test_b_run_stopped_before_later_batches(fleet: Fleet) -> None:
    rows, md = report(fleet, "b-h2-broken")[1:]
    assert sorted(rows) == [H1, H2], f"hosts of the third batch reported although it never ran: {sorted(rows)}"
    assert md[H3] == md[H4] == "not_reached", md
    plays = recap(fleet, "b-h2-broken")
    for later in (H3, H4):
        assert later not in plays or plays[later]["ok"] == 0, f"{later} ran tasks: {plays.get(later)}"
        assert kept(fleet, "b-h2-broken", f"facts-{later}.json") is None, f"{later}: a session was started"
        diff = unchanged_since_install(fleet, "b-h2-broken", later)
        assert not diff, f"{later} changed although its batch never ran: {diff}"
    assert kept(fleet, "b-h2-broken", "result.json")["rc"] != 0


# ---------------------------------------------------------------- (c) host unreachable mid-run
def test_c_host_stopped_mid_run_is_reported_unreachable(fleet: Fleet) -> None:
    result = kept(fleet, "c-h3-down", "result.json")
    assert result["interrupted"] and result["interrupted"]["action"] == "stop-host", result
    plays = recap(fleet, "c-h3-down")
    assert plays[H3]["unreachable"] == 1, plays
    log = (fleet.dir / "steps" / "c-h3-down" / "ansible.log").read_text()
    assert f"[{H3}]: UNREACHABLE!" in log
    rows, md = report(fleet, "c-h3-down")[1:]
    assert H3 not in rows and md[H3] == "not_reached", (sorted(rows), md)


def test_c_other_hosts_carried_on(fleet: Fleet) -> None:
    rows, md = report(fleet, "c-h3-down")[1:]
    assert rows[H1]["outcome"] == "up_to_date", rows[H1]
    assert row_commits(rows[H1]) == (fleet.commit("v2"), fleet.commit("v2")), rows[H1]
    assert_completed_row(fleet, H2, rows[H2])
    assert_completed_row(fleet, H4, rows[H4])       # same batch as the lost host


def test_c_facts_file_shows_where_it_stopped(fleet: Fleet) -> None:
    facts = kept(fleet, "c-h3-down", f"facts-{H3}.json")
    stopped = kept(fleet, "c-h3-down", "result.json")["interrupted"]
    assert facts and facts["status"] == "in_progress", facts
    done = facts["completed_phases"]
    assert done == list(PHASES[:len(done)]) and "backup" in done and "validate" not in done, done
    assert done[:len(stopped["completed_phases"])] == stopped["completed_phases"], (done, stopped)
    assert ".praxis-os/.upgrade-lock" in kept(fleet, "c-h3-down", f"snapshot-{H3}.json"), "no lock left"


def test_c_rerun_resumed_and_completed_it(fleet: Fleet) -> None:
    before = kept(fleet, "c-h3-down", f"facts-{H3}.json")
    after = kept(fleet, "c-h3-back", f"facts-{H3}.json")
    assert after["session_id"] == before["session_id"], (before["session_id"], after["session_id"])
    assert after["status"] == "completed" and after["backup_path"] == before["backup_path"], after
    rows = report(fleet, "c-h3-back")[1]
    assert sorted(rows) == sorted(fleet.names), rows
    assert_completed_row(fleet, H3, rows[H3])
    for name in (H1, H2, H4):
        assert rows[name]["outcome"] == "up_to_date", rows[name]


# ---------------------------------------------------------------- reset, then (a) all good
def test_rollback_playbook_restored_v1_everywhere(fleet: Fleet, name: str) -> None:
    facts = kept(fleet, "rollback-all", f"facts-{name}.json")
    assert facts and facts["status"] == "rolled_back", facts
    diff = unchanged_since_install(fleet, "rollback-all", name)
    assert not diff, f"{name}: rollback.yml did not restore the v1 install exactly: {diff}"


def test_a_all_good_run_lists_every_host(fleet: Fleet) -> None:
    doc, rows, md = report(fleet, "a-all-good")
    assert sorted(rows) == sorted(fleet.names), f"rows {sorted(rows)} != inventory {fleet.names}"
    for name in fleet.names:
        assert_completed_row(fleet, name, rows[name])
    assert md == {name: "completed" for name in fleet.names}, md
    assert doc["source"]["commit"] == fleet.commit("v2"), doc["source"]


@pytest.mark.parametrize("host", [H1, H2, H3, H4])
def test_every_host_upgraded_in_the_end(fleet: Fleet, host: str) -> None:
    assert_upgraded(fleet, host, "v2")
    rolled = kept(fleet, "rollback-all", f"facts-{host}.json")
    assert fleet.facts(host)["session_id"] != rolled["session_id"], "the final run reused a finished session"
