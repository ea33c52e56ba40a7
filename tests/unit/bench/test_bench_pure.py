"""The pure parts of bench/: downtime windows, goal verdicts and rendering, the fleet slope, the SVG."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from bench import padding, report, svg
from bench.bench import goals, parse
from bench.probe import Sample, windows


def samples(pattern: str, step: float = 0.1, cost: float = 0.02) -> list[Sample]:
    """'+' answered, '-' unanswered, one sample every `step` seconds taking `cost` seconds."""
    return [Sample(round(i * step, 3), round(i * step + cost, 3), ch == "+") for i, ch in enumerate(pattern)]


def test_windows_from_probe_samples() -> None:
    found = windows(samples("+++---++--+"))
    assert [(w.start, w.end, w.samples) for w in found] == [(0.3, 0.62, 3), (0.8, 1.02, 2)]
    assert round(sum(w.seconds for w in found), 3) == 0.54


def test_no_window_when_every_sample_answered_and_open_window_ends_at_until() -> None:
    assert windows(samples("+++++")) == []
    assert windows([]) == []
    # never answered again: the window lasts until the probe stopped; down from the very first sample too
    (only,) = windows(samples("--"), until=5.0)
    assert (only.start, only.end, only.samples) == (0.0, 5.0, 2)
    (tail,) = windows(samples("++-"))
    assert (tail.start, tail.end) == (0.2, 0.22)


def test_windows_sort_samples_by_start() -> None:
    shuffled = list(reversed(samples("+-+")))
    assert [(w.start, w.end) for w in windows(shuffled)] == [(0.1, 0.22)]


def test_goal_verdicts_and_table() -> None:
    ok = report.Goal("fast", 1.2, 1.3, detail="12 s / 10 s")
    bad = report.Goal("downtime", 1.5, 1.0, "+s")
    missing = report.Goal("ssh", None, 1.8)
    assert (ok.verdict, bad.verdict, missing.verdict) == ("pass", "FAIL", "not measured")
    assert report.Goal("edge", 1.3, 1.3).verdict == "pass"
    lines = report.goals_table([ok, bad, missing])
    assert lines[2] == "| fast | 1.20× | ≤ 1.30× | pass | 12 s / 10 s |"
    assert lines[3] == "| downtime | +1.5 s | ≤ +1.0 s | **FAIL** |  |"
    assert lines[4] == "| ssh | - | ≤ 1.80× | not measured |  |"


def test_ratio_and_slope() -> None:
    assert report.ratio(3.0, 2.0) == 1.5
    assert report.ratio(None, 2.0) is None and report.ratio(1.0, 0.0) is None
    assert report.slope([(1, 9.0), (4, 18.0), (8, 30.0), (16, 54.0)]) == 3.0
    assert report.slope([(1, 9.0)]) is None and report.slope([(2, 1.0), (2, 3.0)]) is None


def test_goals_from_a_result() -> None:
    scale = {"seconds": {"upgrade": 30.0, "shell procedure (+ first answer)": 25.0, "rollback.yml": 6.0,
                         "bare stop + start + first answer (median)": 2.0, "cp -al venv": 1.0,
                         "praxis_backup task (venv snapshot)": 2.5,
                         "the collection's venv snapshot, same conditions (backup.snapshot_venv)": 1.1,
                         "venv snapshot inside praxis_backup (timings.venv_snapshot_s)": 1.2},
             "venv": {"files": 40000, "bytes": 2 << 30},
             "downtime": {"upgrade": {"downtime": 2.5, "windows": [{}]}, "shell": {"downtime": 20.0}}}
    fleet = {"curve": [[1, 10.0], [2, 13.0], [4, 19.0]], "marginal_per_host": 3.0}
    user = {"seconds": {"upgrade without user content (best)": 10.0, "upgrade with user content (best)": 13.0},
            "user_content": {"files": 100000, "bytes": 5 << 30}}
    real = {"seconds": {"upgrade": 70.0, "shell": 56.0, "rollback": 14.0, "prebuild": 50.0, "downtime": 8.5}}
    listed = goals({"cases": {"scale": scale, "fleet": fleet, "user": user, "real": real}})
    by_name = {g.name.split(" (")[0]: g for g in listed}
    assert by_name["Downtime during an upgrade"].value == 0.5
    # the real-scale goals come from the real product; the padded fixture's ratios are info
    assert by_name["Upgrade at real scale"].value == 1.25 and by_name["Upgrade at real scale"].verdict == "pass"
    assert by_name["Rollback / upgrade at real scale"].value == 0.2
    info = {g.name: g for g in listed if g.name.startswith("(info) padded fixture")}
    assert [round(g.value, 2) for g in info.values()] == [1.2, 0.2]
    assert round(by_name["Venv snapshot"].value, 2) == 1.1
    assert round(by_name["(info) venv snapshot inside praxis_backup"].value, 2) == 1.2
    assert round(by_name["(info) whole praxis_backup task"].value, 2) == 2.5
    without = {g.name.split(" (")[0]: g for g in goals({"cases": {"scale": scale}})}
    assert without["Upgrade at real scale"].verdict == "not measured"
    assert "--mirror" in without["Upgrade at real scale"].detail
    projected = by_name["Fleet: 8 local installations / 1"]
    assert "PROJECTED" in projected.name and projected.value == (10.0 + 7 * 3.0) / 10.0
    assert by_name["User content"].value == 3.0 and by_name["User content"].verdict == "FAIL"
    assert by_name["Fleet: 4 SSH hosts / 1 at forks 4"].verdict == "not measured"


def test_markdown_renders_every_case() -> None:
    result = {"stamp": "S", "mode": "quick", "cores": 2, "load": "1.00",
              "goals": [report.Goal("g", 1.0, 2.0).as_dict()],
              "cases": {"Fleet": {"seconds": {"1 host(s)": 9.0}, "note": "n"},
                        "Fixture": {"phases": {"server": [1, 3.0]},
                                    "tasks": [{"task": "t", "role": "praxis.upgrade.server", "seconds": 3.0}],
                                    "downtime": {"upgrade": {"downtime": 1.0, "samples": 10, "answered": 9,
                                                             "windows": [{"start": 1.0, "end": 2.0}]}}}}}
    text = report.markdown(result)
    assert "| g | 1.00× | ≤ 2.00× | pass |  |" in text
    assert "| 1 host(s) | 9.00 |" in text and "| server | 1 | 3.0 |" in text and "| t | server | 3.00 |" in text
    assert "- downtime upgrade: 1.00 s in 1 window(s) 1.0-2.0 s (10 samples, 9 answered)" in text


def test_svg_is_well_formed_and_draws_both_panels() -> None:
    text = svg.chart([(1, 9.0), (4, 18.0), (8, 33.6)], {"scale upgrade": [[0.0, 0.05, 1], [0.1, 0.15, 0]]},
                     {"scale upgrade": [(0.0, 0.1, "server")]})
    root = ET.fromstring(text.split("\n", 1)[1])
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == ns + "svg"
    assert len(root.findall(ns + "circle")) == 3
    fills = [r.get("fill") for r in root.findall(ns + "rect")]
    assert "#2ca02c" in fills and "#d62728" in fills
    empty = ET.fromstring(svg.chart([], {}).split("\n", 1)[1])
    assert sum("(not measured)" in (t.text or "") for t in empty.iter(ns + "text")) == 2


def test_split_sizes_and_quick_knobs() -> None:
    large, large_bytes, small_bytes = padding.split_sizes(40000, 2 << 30)
    assert large == 20 and large * large_bytes + (40000 - large) * small_bytes <= 2 << 30
    assert large * large_bytes >= (1 << 30) - large
    args = parse(["--quick", "--pad-files", "100", "--fleet", "1,3"])
    assert args.pad_files == 100 and args.fleet_sizes == [1, 3] and args.user_files == 10000
    assert parse([]).user_mb == 5120 and parse([]).fleet_sizes == [1, 4, 8, 16]


def test_index_rebuild_seconds_from_the_server_log(tmp_path) -> None:
    from bench.cases import index_rebuild_seconds

    log = tmp_path / "mcp_server.log"
    assert index_rebuild_seconds(log) is None  # no log
    log.write_text("2026-11-30 13:51:24,100 [INFO] x: started\n"
                   "2026-11-30 13:51:27,218 [INFO] x: /p/standards/.rebuild_index removed: ready\n"  # before any found
                   "2026-11-30 13:51:24,212 [INFO] x: /p/standards/.rebuild_index found: rebuilding the search index\n"
                   "2026-11-30 13:51:27,718 [INFO] x: /p/standards/.rebuild_index removed: search index ready\n"
                   "2026-11-30 13:52:00,000 [INFO] x: /p/standards/.rebuild_index found: rebuilding again\n")
    assert index_rebuild_seconds(log) == 3.506
    log.write_text("2026-11-30 13:51:24,212 [INFO] x: /p/standards/.rebuild_index found: rebuilding\n")
    assert index_rebuild_seconds(log) is None  # never finished


def test_prebuild_seconds_from_the_session_evidence(tmp_path) -> None:
    import json

    from bench.cases import prebuild_seconds

    facts = tmp_path / ".cache" / "facts.d" / "praxis_upgrade.fact"
    assert prebuild_seconds(tmp_path) is None  # no session
    facts.parent.mkdir(parents=True)
    evidence = {"index_rebuild": {"method": "prebuilt", "prebuild": {"built": True, "duration_s": 3.25}}}
    facts.write_text(json.dumps({"phases": {"server": {"evidence": evidence}}}))
    assert prebuild_seconds(tmp_path) == 3.25
    evidence["index_rebuild"] = None  # nothing needed a new index
    facts.write_text(json.dumps({"phases": {"server": {"evidence": evidence}}}))
    assert prebuild_seconds(tmp_path) is None


def test_ssh_case_is_a_default_case_and_runs_alone() -> None:
    assert "ssh" in parse([]).case_list and "ssh" in parse(["--quick"]).case_list
    assert parse(["--cases", "ssh"]).case_list == ["ssh"]


def test_ssh_goal_from_a_result_and_when_not_measured() -> None:
    ssh = {"curve": [[1, 15.0], [4, 24.0]], "ratio": 1.6, "marginal_per_host": 3.0,
           "ssh": "SSH pipelining on, ControlMaster auto, ControlPersist 60s (4 control socket(s) open after the run)"}
    (goal,) = [g for g in goals({"cases": {"ssh": ssh}}) if "SSH" in g.name]
    assert (goal.name, goal.value, goal.limit, goal.verdict) == ("Fleet: 4 SSH hosts / 1 at forks 4", 1.6, 1.8, "pass")
    assert goal.detail.startswith("24.0 s / 15.0 s; marginal 3.00 s/host; SSH pipelining on")
    (skipped,) = [g for g in goals({"cases": {"ssh": {"not_measured": "needs root"}}}) if "SSH" in g.name]
    assert (skipped.verdict, skipped.detail) == ("not measured", "not measured: needs root")


def test_ssh_settings_from_ansible_config_dump() -> None:
    from bench.sshfleet import describe, pick_ssh_settings

    dump = [{"local": [{"name": "pipelining", "origin": "default", "value": False}]},
            {"ssh": [{"name": "pipelining", "origin": "/r/ansible.cfg", "value": True},
                     {"name": "ssh_args", "origin": "default", "value": "-C -o ControlMaster=auto -o ControlPersist=60s"},
                     {"name": "timeout", "origin": "default", "value": 10}]}]
    settings = pick_ssh_settings(dump)
    assert settings == {"pipelining": "True (/r/ansible.cfg)", "control_path_dir": "unknown",
                        "ssh_args": "-C -o ControlMaster=auto -o ControlPersist=60s (default)"}
    assert describe(settings, 4) == ("SSH pipelining on, ControlMaster auto, ControlPersist 60s "
                                     "(4 control socket(s) open after the run)")
    settings["ansible_ssh_common_args (fleet inventory)"] = "-o ControlPersist=no"  # the inventory's comes last
    assert "ControlPersist no" in describe(settings, 0)
    assert describe(pick_ssh_settings([]), 0).startswith("SSH pipelining unknown, ControlMaster off, ControlPersist off")


def test_ssh_case_not_measured_when_the_fleet_cannot_start(monkeypatch) -> None:
    from contextlib import contextmanager

    from bench import cases, sshfleet

    monkeypatch.setattr(sshfleet, "unavailable", lambda: "the SSH fleet needs root")
    assert cases.ssh_case(1) == {"not_measured": "the SSH fleet needs root", "note": "not measured: the SSH fleet needs root"}

    @contextmanager
    def broken(hosts):
        if hosts:  # `up` fails before it yields a fleet
            raise sshfleet.FleetUnavailable("`fleet.py up --hosts %d` failed (exit 1): no sshd" % hosts)
        yield {}

    monkeypatch.setattr(sshfleet, "unavailable", lambda: None)
    monkeypatch.setattr(sshfleet, "up", broken)
    assert cases.ssh_case(1)["not_measured"] == "`fleet.py up --hosts 1` failed (exit 1): no sshd"
