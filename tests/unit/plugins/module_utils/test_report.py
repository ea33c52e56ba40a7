"""report: the per-target summary and records, and the controller's run report."""
from __future__ import annotations

import json
import os
import threading

from ansible_collections.praxis.upgrade.plugins.module_utils import report

SESSION = {
    "session_id": "20261124T101500Z-abc123", "run_id": "run-1", "installed_commit": "a" * 40,
    "target_commit": "b" * 40, "backup_path": "/p/.praxis-os/.backups/2026-11-24-101500",
    "started_at": "2026-11-24T10:15:00Z",
    "phases": {
        "preflight": {"duration_s": 0.5, "evidence": {"tools_before": ["current_date", "get_server_info"]}},
        "content": {"duration_s": 1.5, "evidence": {"counts": {"add": 2, "update": 1, "conflict": 1},
                                                    "conflicts": ["standards/universal/x.md"]}},
        "server": {"duration_s": 3.0, "evidence": {"pip_ran": True, "mode": "process"}},
        "validate": {"duration_s": 0.7, "evidence": {"tools_after": ["get_current_date", "get_server_info"],
                                                     "response_time_ms": 42}},
    },
}
SOURCE = {"commit": "b" * 40, "describe": "v2.0.0", "path": "/src/praxis-os"}


def test_summary_collects_phases_counts_tools_and_versions():
    summary = report.build_summary(SESSION, SOURCE, "completed", ["2026-01-01-000000"])
    assert summary["outcome"] == "completed" and summary["target_describe"] == "v2.0.0"
    assert [p["name"] for p in summary["phases"]] == ["preflight", "content", "server", "validate"]
    assert summary["counts"]["conflict"] == 1 and summary["conflicts"] == ["standards/universal/x.md"]
    assert summary["tools_before"] == ["current_date", "get_server_info"]
    assert summary["tools_after"] == ["get_current_date", "get_server_info"]
    assert summary["pip_ran"] is True and summary["pruned_backups"] == ["2026-01-01-000000"]
    text = report.render_summary_markdown(summary)
    assert "added get_current_date; removed current_date" in text and "`standards/universal/x.md`" in text


def test_target_records_keep_old_bytes_and_update_version(tmp_path):
    home = tmp_path / ".praxis-os"
    (home / ".cache").mkdir(parents=True)
    (home / "VERSION.txt").write_text("commit=%s\nchannel=stable\n" % ("a" * 40))
    (home / "UPDATE_LOG.txt").write_bytes(b"older entry without newline")
    summary = report.build_summary(SESSION, SOURCE, "completed")
    written = report.write_target_records(str(home), summary, {"standards/universal/x.md": "c" * 64})
    version = (home / "VERSION.txt").read_text().splitlines()
    assert "channel=stable" in version and "commit=" + "b" * 40 in version and "source=/src/praxis-os" in version
    log = (home / "UPDATE_LOG.txt").read_text()
    assert log.startswith("older entry without newline\n") and "completed" in log and "conflicts=1" in log
    assert json.loads((home / ".cache" / "base-manifest.json").read_text())["commit"] == "b" * 40
    assert json.loads(open(written["json"]).read())["session_id"] == SESSION["session_id"]
    assert "Upgrade" in (home / "INSTALLATION_SUMMARY.md").read_text()


def test_rolled_back_outcome_leaves_version_and_base_manifest_alone(tmp_path):
    home = tmp_path / ".praxis-os"
    (home / ".cache").mkdir(parents=True)
    (home / "VERSION.txt").write_text("commit=%s\n" % ("a" * 40))
    report.write_target_records(str(home), report.build_summary(SESSION, SOURCE, "rolled_back"), {})
    assert (home / "VERSION.txt").read_text() == "commit=%s\n" % ("a" * 40)
    assert not (home / ".cache" / "base-manifest.json").exists()


def test_run_report_rows_from_concurrent_forks_all_land(tmp_path):
    hosts = ["h%d" % n for n in range(8)]

    def add(name):
        report.merge_run_row(str(tmp_path), "run-1", name, {"outcome": "completed", "session": SESSION,
                                                            "content_counts": {"add": 1}}, hosts, SOURCE)

    threads = [threading.Thread(target=add, args=(name,)) for name in hosts[:6]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    document = json.loads((tmp_path / "upgrade-run-1.json").read_text())
    assert [row["host"] for row in document["hosts"]] == hosts[:6] and document["inventory"] == hosts
    text = (tmp_path / "upgrade-run-1.md").read_text()
    assert text.count("| completed |") == 6 and text.count("not_reached") == 2
    assert "+2 ~1 -0 !1" not in text and "+1 ~0 -0 !0" in text


def test_run_report_row_is_replaced_and_failures_are_shown(tmp_path):
    report.merge_run_row(str(tmp_path), "r", "web1", {"outcome": "in_progress"}, ["web1"], SOURCE)
    failure = {"outcome": "rolled_back", "failed_phase": "server", "reason": "pip failed | exit 1\n  line two"}
    result = report.merge_run_row(str(tmp_path), "r", "web1", failure, ["web1"], SOURCE)
    assert len(result["document"]["hosts"]) == 1
    text = open(result["markdown"]).read()
    assert "| rolled_back |" in text and "server: pip failed / exit 1 line two" in text
    taken = report.merge_run_row(str(tmp_path), "r", "web1", {"outcome": "completed", "lock_taken_over": {
        "session_id": "OLD", "controller": "bob@ctl"}}, ["web1"], SOURCE)
    assert "took over the stale lock of session OLD (bob@ctl)" in open(taken["markdown"]).read()
    assert os.path.exists(result["json"])


def test_records_are_written_once_per_session_even_when_rerun(tmp_path):
    """issue 8 item 6: a run killed after UPDATE_LOG got its entry must not add a second one on resume."""
    from ansible_collections.praxis.upgrade.plugins.module_utils import report as rp

    home = tmp_path / ".praxis-os"
    (home / ".cache").mkdir(parents=True)
    (home / "UPDATE_LOG.txt").write_text("older entry\n")
    session = {"session_id": "S1", "installed_commit": "a" * 40, "phases": {}}
    summary = rp.build_summary(session, {"commit": "b" * 40, "describe": "v2", "path": "/src"}, "completed",
                               finished_at="2026-11-24T10:15:00Z")
    seen = []
    first = rp.write_target_records(str(home), summary, {"x": "0" * 64}, fault=seen.append)
    second = rp.write_target_records(str(home), summary, {"x": "0" * 64})
    assert seen == ["cleanup.after_update_log"] and first == second
    log = (home / "UPDATE_LOG.txt").read_text()
    assert log.startswith("older entry\n") and log.count("session=S1 outcome=completed") == 1
    assert (home / "INSTALLATION_SUMMARY.md").read_text().count("session=S1 outcome=completed") == 1
    assert sorted(p.name for p in (home / ".cache").glob("upgrade-summary-*")) == [
        "upgrade-summary-20261124T101500Z.json", "upgrade-summary-20261124T101500Z.md"]


def test_the_summary_says_what_became_of_the_search_index():
    """Issue 10: built before the stop, left to the new server (and why), or not needed."""
    assert report.search_index_note(None).startswith("unchanged")
    prebuilt = {"method": "prebuilt", "prebuild": {"built": True, "duration_s": 49.3}}
    assert report.search_index_note(prebuilt) == "built before the old server stopped (49.3 s)"
    flag = {"method": "flag", "prebuild": {"built": False, "reason": "index_prebuild is false (praxis_index_prebuild)"}}
    assert report.search_index_note(flag) == ("rebuilt by the new server at start (standards/.rebuild_index); not "
                                              "built before: index_prebuild is false (praxis_index_prebuild)")
    session = dict(SESSION, phases=dict(SESSION["phases"], server=dict(SESSION["phases"]["server"], evidence=dict(
        SESSION["phases"]["server"].get("evidence") or {}, index_rebuild=prebuilt))))
    summary = report.build_summary(session, SOURCE, "completed")
    assert "| search index | built before the old server stopped (49.3 s) |" in report.render_summary_markdown(summary)
