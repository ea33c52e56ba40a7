"""htmlreport: the run report and the fleet status as one self-contained HTML page (table + SVG timeline)."""
from __future__ import annotations

import datetime
import re
from html.parser import HTMLParser

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import htmlreport as hr
from ansible_collections.praxis.upgrade.plugins.module_utils import report

RUN_ID = "20261124T101500Z-bbbbbbb"
SOURCE = {"commit": "b" * 40, "describe": "v2.0.0", "path": "/src/praxis-os"}
EVIL = '<script>alert("x")</script> & \'quoted\''


def phase(start: str, end: str) -> dict:
    return {"started_at": "2026-11-24T10:%s" % start, "finished_at": "2026-11-24T10:%s" % end, "evidence": {}}


def completed_session() -> dict:
    return {
        "session_id": "S-alpha", "status": "completed", "installed_commit": "a" * 40, "target_commit": "b" * 40,
        "backup_path": "/p/alpha/.praxis-os/.backups/2026-11-24-101503",
        "phases": {"preflight": phase("15:01Z", "15:02Z"), "backup": phase("15:02Z", "15:05Z"),
                   "content": phase("15:05Z", "15:06Z"), "server": phase("15:06Z", "15:14Z"),
                   "validate": phase("15:14Z", "15:16Z"), "cleanup": phase("15:16Z", "15:17Z")},
    }


def rolled_back_session(reason: str = EVIL) -> dict:
    return {
        "session_id": "S-beta", "status": "rolled_back", "installed_commit": "a" * 40, "target_commit": "b" * 40,
        "backup_path": "/p/beta/.praxis-os/.backups/2026-11-24-101522", "reason": reason,
        "phases": {"preflight": phase("15:20Z", "15:21Z"), "backup": phase("15:21Z", "15:24Z"),
                   "content": phase("15:24Z", "15:25Z")},
        "rollback": {"backup_path": "/p/beta/.praxis-os/.backups/2026-11-24-101522", "reason": reason,
                     "from_status": "in_progress", "undoing": ["backup", "content"],
                     "started_at": "2026-11-24T10:15:31Z", "finished_at": "2026-11-24T10:15:40Z"},
    }


def document() -> dict:
    """A canary batch (up to date), a batch of two (completed + rolled back in server), one never reached."""
    return {
        "run_id": RUN_ID, "kind": "upgrade", "source": SOURCE,
        "inventory": ["gamma", "alpha", "beta", "delta"],
        "batches": [["gamma"], ["beta", "alpha"]],
        "hosts": [
            {"host": "gamma", "outcome": "up_to_date", "started_at": "2026-11-24T10:15:00Z",
             "recorded_at": "2026-11-24T10:15:01Z", "installed_commit": "b" * 40, "target_commit": "b" * 40},
            {"host": "alpha", "outcome": "completed", "started_at": "2026-11-24T10:15:01Z",
             "recorded_at": "2026-11-24T10:15:18Z", "session": completed_session(), "ide_restart_required": True},
            {"host": "beta", "outcome": "rolled_back", "started_at": "2026-11-24T10:15:20Z", "failed_phase": "server",
             "reason": EVIL, "recorded_at": "2026-11-24T10:15:41Z", "session": rolled_back_session(),
             "healthy_after_rollback": True},
        ],
    }


class Dom(HTMLParser):
    """Every element as (tag, attrs), text per element, and the parser's view of nesting."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, cls: str = "") -> list[dict]:
        return [a for t, a in self.elements if t == tag and (not cls or cls in (a.get("class") or "").split())]


def parse(page: str) -> Dom:
    dom = Dom()
    dom.feed(page)
    return dom


def at(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def test_page_is_self_contained_no_script_no_external_asset():
    page = hr.render_run_html(document(), "2026-11-24T10:16:00Z")
    dom = parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert not dom.find("script") and not dom.find("link") and not dom.find("img") and not dom.find("iframe")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page)
    assert "url(" not in page.replace("url(#failed-hatch)", "")  # only the inline pattern is referenced
    csp = [a for t, a in dom.elements if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert len(dom.find("svg", "timeline")) == 1 and len(dom.find("style")) == 1


def test_one_row_per_host_in_table_and_timeline_ordered_by_batch_and_start():
    dom = parse(hr.render_run_html(document()))
    assert [a["data-host"] for a in dom.find("tr", "host")] == ["gamma", "alpha", "beta", "delta"]
    rows = dom.find("g", "host-row")
    assert [(a["data-host"], a["data-outcome"], a["data-batch"]) for a in rows] == [
        ("gamma", "up_to_date", "1"), ("alpha", "completed", "2"), ("beta", "rolled_back", "2"), ("delta", "not_reached", "")]


def test_bars_one_per_phase_with_the_failed_phase_and_the_rollback():
    dom = parse(hr.render_run_html(document()))
    bars = dom.find("rect", "bar")
    by_host: dict[str, list[tuple[str, str]]] = {}
    host = None
    for tag, attrs in dom.elements:
        if tag == "g" and "host-row" in attrs.get("class", ""):
            host = attrs["data-host"]
        if tag == "rect" and "bar" in attrs.get("class", "").split():
            by_host.setdefault(host, []).append((attrs["data-phase"], attrs["data-kind"]))
    assert by_host["gamma"] == [("preflight", "done")]
    assert by_host["alpha"] == [(p, "done") for p in ("preflight", "backup", "content", "server", "validate", "cleanup")]
    assert by_host["beta"] == [("preflight", "done"), ("backup", "done"), ("content", "done"), ("server", "failed"),
                               ("rollback", "rollback")]
    assert "delta" not in by_host and len(dom.find("rect", "unreached")) == 1
    assert len(bars) == 12
    failed = [a for a in bars if a["data-kind"] == "failed"][0]
    assert (failed["data-start"], failed["data-end"]) == ("2026-11-24T10:15:25Z", "2026-11-24T10:15:31Z")


def test_bars_sit_on_one_shared_wall_clock_axis():
    dom = parse(hr.render_run_html(document()))
    bars = dom.find("rect", "bar")
    t0 = min(at(a["data-start"]) for a in bars)
    span = (max(at(a["data-end"]) for a in bars) - t0).total_seconds()
    for attrs in bars:
        expected = hr.LABEL_W + (at(attrs["data-start"]) - t0).total_seconds() / span * hr.CHART_W
        assert float(attrs["x"]) == pytest.approx(expected, abs=0.06)
        assert float(attrs["width"]) >= hr.MIN_BAR_W
    # later start, further right: alpha's server bar starts after gamma's preflight ends
    xs = {(a["data-phase"], a["data-start"]): float(a["x"]) for a in bars}
    assert xs[("server", "2026-11-24T10:15:06Z")] > xs[("preflight", "2026-11-24T10:15:00Z")]


def test_colours_per_outcome_and_legend():
    page = hr.render_run_html(document())
    dom = parse(page)
    classes = {a["data-phase"] + "/" + a["data-kind"]: a["class"] for a in dom.find("rect", "bar")
               if "outcome-completed" in a["class"] or a["data-kind"] != "done"}
    assert "outcome-completed" in classes["server/done"]
    css = dom.find("style")
    style = page[page.index("<style>"):page.index("</style>")]
    for outcome in ("completed", "rolled_back", "up_to_date", "not_reached"):
        assert "svg .kind-done.outcome-%s{fill:%s}" % (hr.css_name(outcome), hr.OUTCOMES[outcome][1]) in style
    assert ".kind-failed{fill:url(#failed-hatch)}" in style and hr.ROLLBACK_COLOUR in style and css
    legend = [a.get("data-outcome") or a.get("data-kind") for a in dom.find("span", "legend-item")]
    assert {"up_to_date", "completed", "rolled_back", "not_reached", "failed", "rollback"} <= set(legend)
    colours = {hr.OUTCOMES[o][1] for o in ("completed", "rolled_back", "up_to_date", "not_reached")}
    assert len(colours | {hr.FAILED_COLOUR, hr.ROLLBACK_COLOUR}) == 6  # every state tells itself apart


def test_batches_are_marked_with_bands_and_start_lines():
    dom = parse(hr.render_run_html(document()))
    assert [a["data-batch"] for a in dom.find("rect", "batch")] == ["1", "2"]
    starts = {a["data-batch"]: float(a["x1"]) for a in dom.find("line", "batch-start")}
    assert list(starts) == ["1", "2"] and starts["1"] == pytest.approx(hr.LABEL_W) and starts["2"] > starts["1"]


def test_everything_from_the_run_is_escaped():
    doc = document()
    doc["hosts"][0]["host"] = doc["inventory"][0] = 'g"<b>amma'
    doc["batches"][0] = ['g"<b>amma']
    doc["source"]["path"] = "/src/<i>x</i>"
    page = hr.render_run_html(doc)
    dom = parse(page)
    assert not dom.find("script") and not dom.find("b") and not dom.find("i")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27;" in page
    assert '<script>' not in page and 'alert("x")' not in page
    assert 'data-host="g&quot;&lt;b&gt;amma"' in page
    # the reason is shown in the table and on hover over the failed bar (its <title>)
    failed_title = re.search(r'data-kind="failed"[^>]*><title>([^<]*)</title>', page).group(1)
    assert "server FAILED" in failed_title and "&lt;script&gt;" in failed_title


def test_resumed_session_draws_only_this_runs_phases():
    row = {"host": "h", "outcome": "completed", "started_at": "2026-11-24T10:15:00Z",
           "session": {"phases": {"preflight": phase("01:00Z", "01:01Z"), "backup": phase("01:01Z", "01:09Z"),
                                  "content": phase("01:09Z", "15:04Z"), "server": phase("15:04Z", "15:09Z")}}}
    bars, earlier = hr.host_bars(row)
    assert earlier == ["preflight", "backup"]
    assert [(b.phase, b.start) for b in bars] == [("content", at("2026-11-24T10:15:00Z")),
                                                  ("server", at("2026-11-24T10:15:04Z"))]
    page = hr.render_run_html({"run_id": RUN_ID, "inventory": ["h"], "hosts": [row]})
    assert "resumed: preflight, backup done in an earlier run" in page


def test_phase_without_start_uses_its_duration_and_a_rollback_before_any_phase():
    one_phase = {"session": {"phases": {"preflight": {"finished_at": "2026-11-24T10:15:02Z", "duration_s": 2}}}}
    bars, _earlier = hr.host_bars(one_phase)
    assert [(b.start, b.end) for b in bars] == [(at("2026-11-24T10:15:00Z"), at("2026-11-24T10:15:02Z"))]
    failed_early = {"failed_phase": "backup", "started_at": "2026-11-24T10:15:00Z",
                    "session": {"rollback": {"started_at": "2026-11-24T10:15:03Z"}}, "recorded_at": "2026-11-24T10:15:05Z"}
    bars, _earlier = hr.host_bars(failed_early)
    assert [(b.phase, b.kind, b.start.second, b.end.second) for b in bars] == [
        ("backup", "failed", 0, 3), ("rollback", "rollback", 3, 5)]


def test_merge_batch_joins_overlapping_lists_and_keeps_run_order():
    batches = hr.merge_batch([], ["a"])
    batches = hr.merge_batch(batches, ["b", "c"])
    batches = hr.merge_batch(batches, ["c"])  # b failed: it is no longer in c's batch list
    batches = hr.merge_batch(batches, ["d", "e"])
    assert batches == [["a"], ["b", "c"], ["d", "e"]]
    assert hr.merge_batch([["a"], ["b"]], ["a", "b"]) == [["a", "b"]]
    assert hr.merge_batch([["a"]], []) == [["a"]]


def test_tick_labels_never_overlap():
    for end in ("15:03Z", "15:41Z", "17:00Z", "59:59Z"):
        doc = document()
        doc["hosts"][1]["session"]["phases"]["cleanup"]["finished_at"] = "2026-11-24T10:" + end
        page = hr.render_run_html(doc)
        xs = [float(v) for v in re.findall(r'class="tick-label" x="([\d.]+)"', page)]
        assert len(xs) >= 2 and all(b - a >= hr.TICK_LABEL_W for a, b in zip(xs, xs[1:])), (end, xs)


def test_tick_steps_and_run_start():
    assert hr.tick_step(8) == 1 and hr.tick_step(41) == 5 and hr.tick_step(3000) == 300
    assert hr.tick_step(86400 * 30) >= 86400 * 3
    assert hr.run_start(RUN_ID) == at("2026-11-24T10:15:00Z") and hr.run_start("run-1") is None


def test_no_times_at_all_says_so_and_unknown_outcomes_keep_their_name():
    doc = {"run_id": "r", "kind": "install", "inventory": ["a"], "hosts": [{"host": "a", "outcome": "weird_state"}]}
    page = hr.render_run_html(doc)
    assert "No phase times were recorded" in page and "prAxIs OS install run r" in page
    assert 'class="badge outcome-weird_state">weird state<' in page


def status_document() -> dict:
    return {
        "run_id": "20261124T120000Z", "kind": "status", "inventory": ["alpha", "beta", "gamma", "zeta"],
        "hosts": [
            {"host": "alpha", "outcome": "healthy", "installed_commit": "b" * 40, "tools": ["t1", "t2"],
             "server_mode": "process", "lock": None, "session": completed_session(),
             "backups": [{"name": "2026-11-24-101503", "path": "/p/alpha/.praxis-os/.backups/2026-11-24-101503"}]},
            {"host": "beta", "outcome": "unhealthy", "installed_commit": "a" * 40, "tools": [],
             "health_errors": ["<b>no answer</b>"], "server_mode": "none", "lock": {"session_id": "S-x"},
             "lock_status": "stale", "session": rolled_back_session(), "backups": []},
            {"host": "gamma", "outcome": "healthy", "installed_commit": "b" * 40, "tools": ["t1"], "session": {}},
        ],
    }


def test_status_page_shows_commit_health_tools_session_backups_and_last_sessions():
    page = hr.render_html(status_document(), "2026-11-24T12:00:01Z")
    dom = parse(page)
    assert "prAxIs OS fleet status 20261124T120000Z" in page
    assert [a["data-outcome"] for a in dom.find("tr", "host")] == ["healthy", "unhealthy", "healthy", "not_reached"]
    assert "no phase times recorded (no upgrade session)" in page and "none recorded" in page
    assert "1 (newest 2026-11-24-101503)" in page and "held by session S-x (stale)" in page
    assert "&lt;b&gt;no answer&lt;/b&gt;" in page and not dom.find("b")
    # bars are the last sessions', coloured by how each ended; no batches on a status page
    kinds = [(a["data-phase"], a["data-kind"], a["class"].split()[-1]) for a in dom.find("rect", "bar")]
    assert ("cleanup", "done", "outcome-completed") in kinds and ("rollback", "rollback", "outcome-rolled_back") in kinds
    # the status row has no failed_phase: the session tells it (the first phase it had not finished)
    assert ("server", "failed", "outcome-rolled_back") in kinds and "failed in server" in page
    assert not dom.find("rect", "batch") and not dom.find("line", "batch-start") and "batch begins" not in page
    assert "no status: unreachable" in page


def test_failed_phase_of_a_session():
    assert hr.failed_phase_of(rolled_back_session()) == "server"
    undone = dict(completed_session(), rollback={"from_status": "completed", "started_at": "2026-11-24T11:00:00Z"})
    assert hr.failed_phase_of(undone) is None  # rollback.yml after a good upgrade: nothing failed
    assert hr.failed_phase_of(completed_session()) is None


def test_axis_of_days_shows_dates():
    doc = status_document()
    doc["hosts"][1]["session"]["rollback"]["finished_at"] = "2026-11-27T09:00:00Z"
    page = hr.render_html(doc)
    labels = re.findall(r'class="tick-label"[^>]*>([^<]*)<', page)
    assert labels[0] == "11-24 10:15" and all(re.match(r"^\d\d-\d\d \d\d:\d\d$", t) for t in labels)


def test_merge_run_row_writes_the_html_beside_json_and_markdown(tmp_path):
    doc = document()
    for row in doc["hosts"]:
        batch = [b for b in doc["batches"] if row["host"] in b][0]
        fields = {k: v for k, v in row.items() if k not in ("host", "recorded_at")}
        written = report.merge_run_row(str(tmp_path), RUN_ID, row["host"], fields, doc["inventory"], SOURCE,
                                       batch=batch[:1])
    assert written["html"] == str(tmp_path / ("upgrade-%s.html" % RUN_ID))
    assert written["document"]["batches"] == [["gamma"], ["beta", "alpha"]]
    page = (tmp_path / ("upgrade-%s.html" % RUN_ID)).read_text(encoding="utf-8")
    assert [a["data-host"] for a in parse(page).find("tr", "host")] == ["gamma", "alpha", "beta", "delta"]
    status = report.merge_run_row(str(tmp_path), "20261124T120000Z", "alpha", status_document()["hosts"][0],
                                  ["alpha"], {}, kind="status")
    assert status["html"].endswith("status-20261124T120000Z.html") and "| alpha | healthy | bbbbbbb | 2 |" in \
        open(status["markdown"]).read()
