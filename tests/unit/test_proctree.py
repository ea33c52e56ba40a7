"""tests/proctree.py: the process tree of a run and killing it like a crash (fault suite, Molecule steps)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests import proctree

# a "controller" in its own session with a plain child and a worker that calls setsid() like ansible-core's
SCRIPT = """
import os, subprocess, sys, time
plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
spared = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "keep-me"], start_new_session=True)
print(plain.pid, worker.pid, spared.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_dead(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def settled(root: int, pids: set[int], timeout: float = 10) -> set[int]:
    """The `pids` that `descendants(root)` finds, once each shows its argv (or at the timeout).

    Popen returns when the child's exec closes its close-on-exec pipe, which the kernel does before it
    lays out the new argv: for a moment /proc/<pid>/cmdline is empty (seen on CI's loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        found = set(proctree.descendants(root)) & pids
        if (found == pids and all(proctree.cmdline(p) for p in pids)) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def tree_of(pids: list[int]) -> str:
    """pid, parent, state and argv of each: the failure message shows what /proc said."""
    rows = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            rows.append(f"{pid}: state {fields[0]} parent {fields[1]} {proctree.cmdline(pid)}")
        except OSError as exc:
            rows.append(f"{pid}: unreadable ({exc})")
    return "; ".join(rows)


def test_kill_run_takes_setsid_workers_and_spares_what_it_is_told() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    plain = worker = spared = 0
    try:
        plain, worker, spared = (int(x) for x in proc.stdout.readline().split())  # type: ignore[union-attr]
        expected = {plain, worker, spared}
        assert settled(proc.pid, expected) == expected, tree_of([proc.pid, plain, worker, spared])
        assert "keep-me" in proctree.cmdline(spared)

        def keep(pid: int) -> bool:
            return "keep-me" in proctree.cmdline(pid)

        assert spared not in proctree.descendants(proc.pid, keep)

        proctree.kill_run(proc.pid, spare=keep)
        proc.wait(timeout=10)
        assert wait_dead([plain, worker]) == []
        assert alive(spared)
    finally:  # nothing outlives the test, whatever failed: the controller's group, then each child
        if proc.poll() is None:  # not reaped: its pid (and group) is still ours
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in (plain, worker, spared):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
