"""v1 -> v2 on every host, checked on the hosts over SSH against the v2 source and the v1 baseline,
and in the three run reports the scenario left: check mode (dry_run), converge (completed),
idempotence (up_to_date)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.molecule.fleetlib import (
    Fleet,
    assert_completed_row,
    assert_upgraded,
    markdown_outcomes,
    report_rows,
    row_commits,
)


def test_host_upgraded_to_v2(fleet: Fleet, name: str) -> None:
    assert_upgraded(fleet, name, "v2")


def test_http_server_restarted_on_new_code(fleet: Fleet) -> None:
    http = [name for name in fleet.names if fleet.baseline(name)["http"]]
    assert http, "the scenario must have a host with its server in http mode"
    for name in http:
        probe = fleet.mcp(name, "http")
        assert probe["ok"], probe
        old_pid = fleet.baseline(name)["serve"]["pid"]
        state = fleet.host(name).file(f"{fleet.project(name)}/.praxis-os/.mcp_server_state.json")
        pid = json.loads(state.content_string)["pid"]
        assert pid != old_pid, f"{name}: the v1 server (pid {old_pid}) still serves; the upgrade did not restart it"
        assert not fleet.host(name).process.filter(pid=str(old_pid)), f"{name}: v1 server {old_pid} still runs"


def _runs(fleet: Fleet) -> list[tuple[Path, dict[str, Any]]]:
    files = sorted((fleet.dir / "reports").glob("upgrade-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return [(p, json.loads(p.read_text())) for p in files]


def test_three_runs_check_converge_idempotence(fleet: Fleet) -> None:
    outcomes = [sorted({row["outcome"] for row in doc["hosts"]}) for _path, doc in _runs(fleet)]
    assert outcomes == [["dry_run"], ["completed"], ["up_to_date"]], outcomes


def test_run_report_lists_every_host(fleet: Fleet) -> None:
    path, doc = _runs(fleet)[1]
    assert doc["inventory"] == fleet.names, f"{path}: inventory {doc['inventory']} != {fleet.names}"
    rows = report_rows(doc)
    assert sorted(rows) == sorted(fleet.names), f"{path}: rows {sorted(rows)} != inventory {fleet.names}"
    for name, row in rows.items():
        assert_completed_row(fleet, name, row)
    assert markdown_outcomes(path) == {n: "completed" for n in fleet.names}, path.with_suffix(".md").read_text()


def test_idempotent_run_reports_up_to_date(fleet: Fleet) -> None:
    path, doc = _runs(fleet)[2]
    rows = report_rows(doc)
    assert sorted(rows) == sorted(fleet.names), f"{path}: rows {sorted(rows)}"
    for name, row in rows.items():
        assert row_commits(row) == (fleet.commit("v2"), fleet.commit("v2")), f"{name}: {row}"
