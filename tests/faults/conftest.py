"""Fixtures of the fault-matrix suite: the prepared installations, the matrix rows, the final table."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.faults import lib

OUTPUT = Path(os.environ.get("PRAXIS_FAULTS_OUTPUT") or lib.REPO / "tests" / "output") / "fault-matrix.md"
PROGRESS = OUTPUT.with_suffix(".jsonl")  # one row per finished case, as they finish (read it mid-run)
ROW_KEY = "fault_row"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        PROGRESS.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> lib.Prepared:
    """OLD installation, NEW reference manifest, task lists: built once, shared by the xdist workers."""
    if os.environ.get("PRAXIS_FAULTS_PREPARED"):  # reuse a prepared directory across runs (development)
        return lib.prepare(Path(os.environ["PRAXIS_FAULTS_PREPARED"]))
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base
    return lib.prepare(shared / "faults-prepared")


@pytest.fixture
def case(request: pytest.FixtureRequest, prepared: lib.Prepared, tmp_path: Path) -> Iterator[lib.Case]:
    """A case directory; every server and run it started is stopped afterwards."""
    made = lib.Case(tmp_path, prepared.sources, request.node.callspec.id if hasattr(request.node, "callspec")
                    else request.node.name)
    try:
        yield made
    finally:
        made.stop_servers()


Conclude = Callable[..., None]


@pytest.fixture
def conclude(request: pytest.FixtureRequest) -> Conclude:
    """conclude(fault, recovery, verdict, note="") -> the case's matrix row, then pass or fail."""
    case_id = request.node.nodeid.split("::", 1)[1]

    def done(fault: str, recovery: str, verdict: lib.Verdict, note: str = "") -> None:
        row = {"case": case_id, "fault": fault, "recovery": recovery, "end": verdict.end_state,
               "verdict": "PASS" if verdict.ok else "FAIL", "problems": verdict.problems, "note": note}
        request.node.user_properties.append((ROW_KEY, json.dumps(row)))
        PROGRESS.parent.mkdir(parents=True, exist_ok=True)
        with open(PROGRESS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if not verdict.ok:
            pytest.fail(f"{case_id}: {fault} -> {verdict.end_state}: " + "; ".join(verdict.problems))

    return done


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", []) or []:
                if key == ROW_KEY and getattr(report, "when", "") == "call":
                    rows.append(json.loads(value))
    if not rows:
        return
    rows.sort(key=lambda r: r["case"])
    passed = sum(r["verdict"] == "PASS" for r in rows)
    lines = [f"# Fault matrix: {passed}/{len(rows)} cases end as promised", "",
             "| case | fault | recovery | end state | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        verdict = r["verdict"] + ("" if r["verdict"] == "PASS" else ": " + "; ".join(r["problems"]))
        end = r["end"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"| {_cell(r['case'])} | {_cell(r['fault'])} | {_cell(r['recovery'])} | {_cell(end)} "
                     f"| {_cell(verdict[:400])} |")
    text = "\n".join(lines) + "\n"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    terminalreporter.write_sep("=", "fault matrix")
    terminalreporter.write(text)
    terminalreporter.write_line(f"(also written to {OUTPUT})")
