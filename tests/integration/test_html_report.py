"""The HTML run report of a real fleet run, rendered by a real headless browser (Chromium).

One `playbooks/upgrade.yml` run with `praxis_serial=[1, 2]` over four installations: gamma (canary, already
at v2: up to date), then alpha (completed) and beta (validate fails on a tool the server does not have,
named `<script>...`: rolled back) side by side, then delta (never reached: the failed batch stops the run).
Then `playbooks/status.yml`. Both pages are checked in the DOM Chromium built and as it laid them out;
screenshots stay in tests/output/html-report/.
"""
from __future__ import annotations

import datetime
import re
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from tests.harness import REPO
from tests.integration import browser
from tests.integration.conftest import facts, fx, output, read_json

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "tests" / "output" / "html-report"
EVIL_TOOL = "<script>alert(1)</script>"
PHASES = ["preflight", "backup", "content", "server", "validate", "cleanup"]
# what the browser paints (computed `fill`) per outcome: the page's own colours
FILLS = {"completed": "rgb(46, 125, 50)", "rolled_back": "rgb(239, 108, 0)", "up_to_date": "rgb(21, 101, 192)"}


def at(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def run(make_fleet: Any) -> Iterator[SimpleNamespace]:
    fleet = make_fleet("html")
    fleet.add("gamma", "v2")
    fleet.add("alpha", "v1", http=True)
    fleet.add("beta", "v1")
    fleet.add("delta", "v1")
    host_vars = fleet.workdir / "host_vars"  # beyond the inventory file: Ansible reads it beside it
    host_vars.mkdir()
    (host_vars / "beta.yml").write_text('praxis_expected_tools: ["get_server_info", "%s"]\n' % EVIL_TOOL)
    proc = fleet.upgrade("v2", extra={"praxis_serial": [1, 2]})
    reports = fleet.reports()
    assert reports, output(proc)[-6000:]
    status = fleet.playbook("status.yml")
    assert status.returncode == 0, output(status)[-6000:]
    pages = sorted((fleet.workdir / "reports").glob("status-*.html"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield SimpleNamespace(fleet=fleet, proc=proc, json=reports[-1], html=reports[-1].with_suffix(".html"),
                          document=read_json(reports[-1]), status=status, status_pages=pages,
                          workdir=fleet.workdir)


def test_the_run_had_every_outcome(run: SimpleNamespace) -> None:
    assert run.proc.returncode != 0  # beta failed: the run stops before delta's batch
    outcomes = {row["host"]: row["outcome"] for row in run.document["hosts"]}
    assert outcomes == {"gamma": "up_to_date", "alpha": "completed", "beta": "rolled_back"}, output(run.proc)[-6000:]
    assert run.document["batches"] == [["gamma"], ["alpha", "beta"]]
    assert EVIL_TOOL in run.document["hosts"][2]["reason"]
    assert run.html.exists() and run.html.with_suffix(".md").exists()


def expected_order(run: SimpleNamespace) -> list[str]:
    """Batch by batch, by start time (the rows' second-precision `started_at`), the inventory order on a tie:
    alpha and beta start together in batch 2, so either may be a second ahead."""
    inventory = ["gamma", "alpha", "beta", "delta"]
    started = {row["host"]: row.get("started_at") or "" for row in run.document["hosts"]}
    return ["gamma"] + sorted(["alpha", "beta"], key=lambda h: (started[h], inventory.index(h))) + ["delta"]


def test_browser_dom_has_a_row_per_host_and_a_bar_per_phase(run: SimpleNamespace) -> None:
    dom = browser.dump_dom(run.html)
    (ARTIFACTS / "upgrade.dom.html").write_text(dom, encoding="utf-8")
    rows = re.findall(r'<g class="host-row outcome-(\S+)" data-host="(\w+)" data-outcome="\w+" data-batch="(\d*)"', dom)
    shown = {"gamma": ("up_to_date", "gamma", "1"), "alpha": ("completed", "alpha", "2"),
             "beta": ("rolled_back", "beta", "2"), "delta": ("not_reached", "delta", "")}
    assert rows == [shown[host] for host in expected_order(run)]
    assert re.findall(r'<tr class="host outcome-\S+" data-host="(\w+)"', dom) == expected_order(run)
    bars: dict[str, list[tuple[str, str]]] = {}
    for chunk in dom.split('<g class="host-row')[1:]:
        host = re.search(r'data-host="(\w+)"', chunk).group(1)
        bars[host] = re.findall(r'<rect class="bar [^"]*" data-phase="(\w+)" data-kind="(\w+)"', chunk.split("</g>")[0])
    assert bars["gamma"] == [("preflight", "done")]
    assert bars["alpha"] == [(phase, "done") for phase in PHASES]
    assert bars["beta"] == [(phase, "done") for phase in PHASES[:4]] + [("validate", "failed"), ("rollback", "rollback")]
    assert bars["delta"] == [] and dom.count('class="unreached"') == 1
    assert dom.count('<rect class="batch ') == 2 and dom.count('<line class="batch-start"') == 2
    # the reason was escaped: the browser built no script element, it shows the text
    assert "<script" not in dom.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_browser_layout_orders_by_start_time_and_paints_outcomes(run: SimpleNamespace) -> None:
    shown = browser.layout(run.html, run.workdir)
    assert shown["scripts"] == 0
    assert [r["host"] for r in sorted(shown["rows"], key=lambda r: r["top"])] == expected_order(run)
    bars = shown["bars"]
    # one wall-clock axis: a later start is further right, on every host
    ordered = sorted(bars, key=lambda b: (at(b["start"]), b["left"]))
    assert [b["left"] for b in ordered] == sorted(b["left"] for b in ordered)
    assert min(b["start"] for b in bars if b["host"] == "alpha") >= max(b["end"] for b in bars if b["host"] == "gamma")
    widths = {(b["host"], b["phase"]): b["width"] for b in bars}
    assert widths[("beta", "rollback")] > 0 and all(w >= 2.5 for w in widths.values())
    for drawn in bars:
        if drawn["kind"] == "done":
            assert drawn["fill"] == FILLS[next(r["outcome"] for r in shown["rows"] if r["host"] == drawn["host"])], drawn
    failed = [b for b in bars if b["kind"] == "failed"]
    assert len(failed) == 1 and failed[0]["fill"].startswith("url(") and "failed-hatch" in failed[0]["fill"]
    assert "validate FAILED" in failed[0]["title"] and EVIL_TOOL in failed[0]["title"]  # the hover text


def test_bars_are_the_recorded_phase_times(run: SimpleNamespace) -> None:
    alpha = next(row for row in run.document["hosts"] if row["host"] == "alpha")
    phases = alpha["session"]["phases"]
    assert phases["preflight"]["started_at"] == alpha["started_at"]  # preflight's own start is recorded now
    dom = browser.dump_dom(run.html)
    for phase in PHASES:
        assert 'data-phase="%s" data-kind="done" data-start="%s" data-end="%s"' % (
            phase, phases[phase]["started_at"], phases[phase]["finished_at"]) in dom
    beta = facts(run.fleet.hosts[2])
    assert 'data-phase="rollback" data-kind="rollback" data-start="%s" data-end="%s"' % (
        beta["rollback"]["started_at"], beta["rollback"]["finished_at"]) in dom


def test_screenshots_are_kept(run: SimpleNamespace) -> None:
    png = browser.screenshot(run.html, ARTIFACTS / "upgrade.png")
    assert png.stat().st_size > 10_000  # a rendered page, not a blank one


def test_status_page_in_the_browser(run: SimpleNamespace) -> None:
    assert len(run.status_pages) == 1 and "status-" in run.status_pages[0].name
    assert str(run.status_pages[0]) in run.status.stdout  # the playbook names the page
    dom = browser.dump_dom(run.status_pages[0])
    rows = re.findall(r'<tr class="host outcome-\S+" data-host="(\w+)" data-outcome="(\w+)"', dom)
    assert sorted(rows) == [("alpha", "healthy"), ("beta", "healthy"), ("delta", "healthy"), ("gamma", "healthy")]
    v1, v2 = fx.head_commit(run.fleet.source("v1"))[:7], fx.head_commit(run.fleet.source("v2"))[:7]
    commits = dict(re.findall(r'data-host="(\w+)" data-outcome="\w+"><td>\w+</td><td>.*?</td><td><code>(\w+)</code>', dom))
    assert commits == {"alpha": v2, "beta": v1, "gamma": v2, "delta": v1}
    assert "failed in validate" in dom and "completed · " in dom
    # the last sessions on the timeline: alpha's six phases, beta's rollback; gamma and delta had none
    assert len(re.findall(r'data-phase="\w+" data-kind="done"', dom)) == 6 + 4
    assert dom.count('data-phase="rollback" data-kind="rollback"') == 1 and "<script" not in dom.lower()
    browser.screenshot(run.status_pages[0], ARTIFACTS / "status.png")
