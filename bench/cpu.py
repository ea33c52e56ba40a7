"""CPU seconds of one measured run, everything it starts included (Ansible's workers, the modules, pip, the
servers an upgrade starts detached): the bench process joins a fresh cgroup for the run, so every child and
grandchild is counted, then leaves it and moves whatever is still running (the new servers) back out.

On 2 cores a fleet run can never take less wall time than its CPU seconds / 2: that is the floor the fleet
goal is judged against. cgroup v1 (cpuacct) and v2 (cpu.stat) are both read; where neither can be written
(not root, no cgroup fs) the meter says why and the bench reports the CPU as not measured.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpuacct")
V2 = Path("/sys/fs/cgroup")


def own_group(mount: Path, v1: bool) -> Path:
    """The cgroup this process is in (where it returns to), from /proc/self/cgroup."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if (v1 and "cpuacct" in controllers.split(",")) or (not v1 and _id == "0"):
            return mount / path.lstrip("/")
    return mount


class CpuMeter:
    """with CpuMeter() as meter: ...  then meter.seconds (None when unmeasured, meter.why says why)."""

    def __init__(self) -> None:
        self.seconds: float | None = None
        self.why = ""
        self._group: Path | None = None
        self._home: Path | None = None
        self._start = 0

    def _usage_ns(self) -> int:
        assert self._group is not None
        if (self._group / "cpuacct.usage").exists():
            return int((self._group / "cpuacct.usage").read_text())
        fields = dict(line.split() for line in (self._group / "cpu.stat").read_text().splitlines())
        return int(fields["usage_usec"]) * 1000

    def __enter__(self) -> "CpuMeter":
        name = "praxis-bench-%d-%d" % (os.getpid(), time.monotonic_ns())
        if (V1 / "cpuacct.usage").exists():
            self._home = own_group(V1, v1=True)
        elif (V2 / "cgroup.controllers").exists():
            self._home = own_group(V2, v1=False)
        else:
            self.why = "no cgroup file system at %s" % V2
            return self
        self._group = self._home / name
        try:
            self._group.mkdir()
            (self._group / "cgroup.procs").write_text(str(os.getpid()))
            self._start = self._usage_ns()
        except OSError as exc:
            self.why = "cannot use a cgroup under %s (%s)" % (self._home, exc.strerror or exc)
            self._leave()
            self._group = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._group is None:
            return
        try:
            self.seconds = round((self._usage_ns() - self._start) / 1e9, 3)
        except OSError as exc:
            self.why = "cannot read %s (%s)" % (self._group, exc.strerror or exc)
        self._leave()

    def _leave(self) -> None:
        """Move this process and what is still running in the group back, then remove the group."""
        assert self._group is not None and self._home is not None
        procs = self._group / "cgroup.procs"
        for _attempt in range(20):
            try:
                pids = procs.read_text().split() if procs.exists() else []
                for pid in pids:
                    try:
                        (self._home / "cgroup.procs").write_text(pid)
                    except ProcessLookupError:
                        pass
                self._group.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)  # a process forked while we moved the others: move it too
