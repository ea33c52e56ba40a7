"""SIGKILL of the whole run (controller, workers, module processes, pip; not detached servers) at points spread
over an upgrade and over a rollback — by task event (the callback plugin), by time and at the product's own
named fault points — and during the automatic rollback; then the documented recovery, then the verdict."""
from __future__ import annotations

from typing import Any

import pytest

from tests.faults import lib

pytestmark = pytest.mark.slow

UPGRADE_TASK_SLOTS = 13
UPGRADE_TIME_FRACTIONS = (0.25, 0.5, 0.75)
NAMED_POINTS = ("backup.done", "content.midway", "server.during_pip", "server.during_index_build",
                "server.between_renames", "server.between_index_renames")
ROLLBACK_TASK_SLOTS = 6
ROLLBACK_TIME_FRACTIONS = (0.35, 0.7)


def boundaries(events: list[dict[str, Any]]) -> list[int]:
    """Global event numbers worth killing at: the start of every task that does something on a target
    (not the include wrappers, not argument validation), and the end of the last task."""
    points = [e["n"] for e in events
              if e["event"] == "start" and " : " in e["name"] and "Validating arguments" not in e["name"]]
    return points + [events[-1]["n"]]


def slot_event(events: list[dict[str, Any]], slot: int, slots: int) -> int:
    points = boundaries(events)
    return points[round(slot * (len(points) - 1) / (slots - 1))]


def event_name(events: list[dict[str, Any]], n: int) -> str:
    event = next(e for e in events if e["n"] == n)
    return f"{event['event']} of '{event['name'].split(' : ', 1)[-1][:60]}'"


def upgraded(case: lib.Case, prepared: lib.Prepared) -> lib.Install:
    inst = case.install(prepared.old)
    run = case.run("upgrade.yml", "v2")
    assert run.returncode == 0, f"setup upgrade failed:\n{run.output[-4000:]}"
    return inst


# ---- kills during an upgrade, recovery: re-run upgrade.yml -------------------------------------------------

UPGRADE_KILLS = ([f"task-{i:02d}" for i in range(UPGRADE_TASK_SLOTS)]
                 + [f"time-{int(f * 100)}pct" for f in UPGRADE_TIME_FRACTIONS]
                 + [f"point-{p}" for p in NAMED_POINTS])


@pytest.mark.parametrize("point", UPGRADE_KILLS)
def test_kill_upgrade(point: str, case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    inst = case.install(prepared.old)
    events = prepared.data["upgrade_events"]
    if point.startswith("task-"):
        n = slot_event(events, int(point[5:]), UPGRADE_TASK_SLOTS)
        killed = case.run("upgrade.yml", "v2", kill_at=f"any:{n}")
        fault = f"SIGKILL upgrade at {event_name(events, n)}"
    elif point.startswith("time-"):
        seconds = round(prepared.data["upgrade_s"] * int(point[5:-3]) / 100, 1)
        killed = case.run("upgrade.yml", "v2", kill_after=seconds)
        fault = f"SIGKILL upgrade after {seconds}s"
    else:
        name = point[6:]
        killed = case.run("upgrade.yml", "v2", env={"PRAXIS_FAULT_POINT": name})
        lib.settle([inst])
        killed.killed = killed.killed or (name if killed.returncode != 0 else "")
        fault = f"product fault point {name}"
    assert killed.killed or killed.returncode != 0, f"the run was not killed:\n{killed.output[-3000:]}"
    recovery = case.run("upgrade.yml", "v2")
    verdict = lib.judge(case, inst, prepared)
    if recovery.returncode != 0:
        verdict.problems.append(f"re-run upgrade.yml exited {recovery.returncode}: "
                                f"{lib.error_summary(recovery.output)}")
    conclude(fault, "re-run upgrade.yml", verdict)


# ---- kills during rollback.yml of an upgraded installation, recovery: re-run rollback.yml ------------------

ROLLBACK_KILLS = ([f"task-{i:02d}" for i in range(ROLLBACK_TASK_SLOTS)]
                  + [f"time-{int(f * 100)}pct" for f in ROLLBACK_TIME_FRACTIONS])


@pytest.mark.parametrize("point", ROLLBACK_KILLS)
def test_kill_rollback(point: str, case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    inst = upgraded(case, prepared)
    events = prepared.data["rollback_events"]
    if point.startswith("task-"):
        n = slot_event(events, int(point[5:]), ROLLBACK_TASK_SLOTS)
        killed = case.run("rollback.yml", kill_at=f"any:{n}")
        fault = f"SIGKILL rollback.yml at {event_name(events, n)}"
    else:
        seconds = round(prepared.data["rollback_s"] * int(point[5:-3]) / 100, 1)
        killed = case.run("rollback.yml", kill_after=seconds)
        fault = f"SIGKILL rollback.yml after {seconds}s"
    assert killed.killed, f"the run was not killed:\n{killed.output[-3000:]}"
    recovery = case.run("rollback.yml")
    verdict = lib.judge(case, inst, prepared, allowed=("OLD",))
    if recovery.returncode != 0:
        verdict.problems.append(f"re-run rollback.yml exited {recovery.returncode}: "
                                f"{lib.error_summary(recovery.output)}")
    conclude(fault, "re-run rollback.yml", verdict)


# ---- kills while the rescue's automatic rollback runs ------------------------------------------------------
# The upgrade fails on purpose (v2-crash: the new server exits at start; v2-pipfail: pip cannot install),
# the rescue starts the rollback role (its include task is named "Roll back"), and the run is killed at the
# n-th task event counted from there: 5 start of verify, 7 start of stop, 9 start of restore, 10 end of
# restore, 12 end of the restart, 14 end of the probe (before the rollback is recorded).

AUTO_ROLLBACK_KILLS = {
    "crash-stop": ("v2-crash", 7), "crash-restored": ("v2-crash", 10), "crash-restarted": ("v2-crash", 12),
    "crash-probed": ("v2-crash", 14), "pipfail-restore": ("v2-pipfail", 9), "pipfail-probed": ("v2-pipfail", 14),
}


@pytest.mark.parametrize("point", sorted(AUTO_ROLLBACK_KILLS))
def test_kill_automatic_rollback(point: str, case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    version, n = AUTO_ROLLBACK_KILLS[point]
    inst = case.install(prepared.old)
    killed = case.run("upgrade.yml", version, kill_at=f"any:{n}:Roll back")
    assert killed.killed, f"the rescue never reached event {n}:\n{killed.output[-3000:]}"
    # documented recovery: re-run upgrade.yml as it was (SPEC 3 "Resume"; a session that was rolling back is
    # finished first). The source is still broken, so the installation must end exactly OLD.
    recovery = case.run("upgrade.yml", version)
    verdict = lib.judge(case, inst, prepared, allowed=("OLD",))
    conclude(f"{version}; SIGKILL in the automatic rollback at {killed.killed}", "re-run upgrade.yml (same source)",
             verdict, note=f"re-run exit {recovery.returncode}")
