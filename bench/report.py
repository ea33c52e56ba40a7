"""Goals of issue 10, their verdicts and the markdown report (pure functions, unit-tested)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class Goal:
    name: str
    value: float | None  # the measured ratio (or seconds for "delta" goals); None: not measured
    limit: float
    unit: str = "x"  # "x" a ratio, "s" seconds
    detail: str = ""  # the raw numbers it comes from

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        return "pass" if self.value <= self.limit else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {"goal": self.name, "value": self.value, "limit": self.limit, "unit": self.unit,
                "verdict": self.verdict, "detail": self.detail}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt(value: float | None, unit: str = "x") -> str:
    if value is None:
        return "-"
    return ("%.2f×" % value) if unit == "x" else ("%+.1f s" % value if unit == "+s" else "%.1f s" % value)


def slope(points: Iterable[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x (the per-host marginal cost of the fleet curve)."""
    pts = list(points)
    if len(pts) < 2:
        return None
    mean_x = sum(p[0] for p in pts) / len(pts)
    mean_y = sum(p[1] for p in pts) / len(pts)
    spread = sum((p[0] - mean_x) ** 2 for p in pts)
    if not spread:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in pts) / spread


def goals_table(goals: Iterable[Goal]) -> list[str]:
    lines = ["| goal | measured | limit | verdict | from |", "|---|---|---|---|---|"]
    for goal in goals:
        limit = ("≤ %.2f×" % goal.limit) if goal.unit == "x" else ("≤ %s" % fmt(goal.limit, goal.unit))
        lines.append("| %s | %s | %s | %s | %s |" % (goal.name, fmt(goal.value, goal.unit), limit,
                                                     "**FAIL**" if goal.verdict == "FAIL" else goal.verdict,
                                                     goal.detail))
    return lines


def seconds_table(title: str, rows: dict[str, float]) -> list[str]:
    lines = ["| %s | seconds |" % title, "|---|---|"]
    lines += ["| %s | %.2f |" % (name, value) for name, value in rows.items()]
    return lines


def phase_table(costs: dict[str, list]) -> list[str]:
    lines = ["| phase | module tasks | seconds |", "|---|---|---|"]
    lines += ["| %s | %d | %.1f |" % (phase, count, sec) for phase, (count, sec) in costs.items()]
    total = (sum(c[0] for c in costs.values()), sum(c[1] for c in costs.values()))
    lines.append("| **total** | **%d** | %.1f |" % total)
    return lines


def task_table(tasks: list[dict[str, Any]], top: int = 12) -> list[str]:
    lines = ["| task (slowest first) | phase | seconds |", "|---|---|---|"]
    for task in sorted(tasks, key=lambda t: -t["seconds"])[:top]:
        phase = task["role"].rsplit(".", 1)[-1] or "playbook"
        lines.append("| %s | %s | %.2f |" % (task["task"], phase, task["seconds"]))
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The whole report: goals first, then each case's raw numbers."""
    out = ["# praxis.upgrade benchmark %s" % result["stamp"], "",
           "%s mode, %d cores, load average at start %s. Ratios are within this one run; "
           "absolute seconds vary 2-3× with machine load." % (result["mode"], result["cores"], result["load"]), "",
           "## Goals (issue 10)", ""]
    if result.get("corrections"):
        out[-2:-2] = ["Corrections: " + "; ".join(result["corrections"]), ""]
    out += goals_table(Goal(**{k: g[k] for k in ("value", "limit", "unit", "detail")}, name=g["goal"])
                       for g in result["goals"])
    for name, case in result["cases"].items():
        out += ["", "## %s" % name, ""]
        if case.get("note"):
            out += [case["note"], ""]
        if case.get("seconds"):
            out += seconds_table("run", case["seconds"]) + [""]
        if case.get("phases"):
            out += phase_table(case["phases"]) + [""]
        for label, costs in (case.get("phases_by_run") or {}).items():
            out += ["%s:" % label, ""] + phase_table(costs) + [""]
        if case.get("tasks"):
            out += task_table(case["tasks"]) + [""]
        if case.get("downtime"):
            for label, probe in case["downtime"].items():
                out.append("- downtime %s: %.2f s in %d window(s) %s (%d samples, %d answered)"
                           % (label, probe["downtime"], len(probe["windows"]),
                              ", ".join("%.1f-%.1f s" % (w["start"], w["end"]) for w in probe["windows"]),
                              probe["samples"], probe["answered"]))
            out.append("")
    return "\n".join(out).rstrip() + "\n"
