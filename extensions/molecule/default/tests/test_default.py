"""v1 -> v2 on every host, checked on the hosts over SSH against the v2 source and the v1 baseline."""
from __future__ import annotations

from tests.molecule.fleetlib import Fleet, assert_upgraded, report_rows


def test_host_upgraded_to_v2(fleet: Fleet, name: str) -> None:
    assert_upgraded(fleet, name, "v2")


def test_http_server_restarted_on_new_code(fleet: Fleet) -> None:
    for name in fleet.names:
        if fleet.baseline(name)["http"]:
            probe = fleet.mcp(name, "http")
            old_pid = fleet.baseline(name)["serve"]["pid"]
            state = fleet.host(name).file(f"{fleet.project(name)}/.praxis-os/.mcp_server_state.json")
            assert str(old_pid) not in state.content_string.split('"pid":')[1].split(",")[0], \
                f"{name}: the v1 server (pid {old_pid}) still runs; the upgrade did not restart it"
            assert probe["ok"], probe


def test_run_report_lists_every_host(fleet: Fleet) -> None:
    upgrades = [r for r in fleet.reports()
                if any(row.get("outcome") == "completed" for row in r["hosts"])]
    assert upgrades, f"no run report with completed hosts in {fleet.dir / 'reports'}"
    rows = report_rows(upgrades[0])
    assert sorted(rows) == sorted(fleet.names), f"report rows {sorted(rows)} != inventory {fleet.names}"
    for name, row in rows.items():
        assert row["outcome"] == "completed", f"{name}: {row}"
        assert row.get("target_commit", fleet.commit("v2")) == fleet.commit("v2"), row
