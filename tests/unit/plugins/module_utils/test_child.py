# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""child.tied_to_module: a writer started by a module dies with the module (not only with its group)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import child

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# A stand-in module: starts a long-running writer through tied_to_module, prints its pid, then waits.
MODULE = textwrap.dedent("""
    import subprocess, sys, time
    from ansible_collections.praxis.upgrade.plugins.module_utils.child import tied_to_module
    proc = subprocess.Popen(["sleep", "60"], preexec_fn=tied_to_module(nice=int(sys.argv[1])))
    print(proc.pid, flush=True)
    time.sleep(60)
""")


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start_module(nice: int) -> "tuple[subprocess.Popen[str], int]":
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    module = subprocess.Popen([sys.executable, "-c", MODULE, str(nice)], stdout=subprocess.PIPE, text=True,
                              env=env, start_new_session=True)
    assert module.stdout is not None
    return module, int(module.stdout.readline())


def stop(module: "subprocess.Popen[str]") -> None:
    """Whatever of the stand-in module's session still runs (its own pid is its group: start_new_session)."""
    try:
        os.killpg(module.pid, signal.SIGKILL)
    except OSError:
        pass
    module.wait()


def test_the_child_dies_when_the_module_is_killed_alone():
    module, pid = start_module(0)
    try:
        assert alive(pid)
        os.kill(module.pid, signal.SIGKILL)  # the module alone, not its process group
        module.wait()
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the writer outlived the module that started it"
    finally:
        stop(module)


def test_nice_lowers_only_the_child():
    module, pid = start_module(10)
    try:
        with open("/proc/%d/stat" % pid) as handle:
            niceness = int(handle.read().rsplit(")", 1)[1].split()[16])
        assert niceness == min(19, os.nice(0) + 10)
    finally:
        stop(module)


def test_without_prctl_it_still_runs(monkeypatch):
    monkeypatch.setattr(child, "_prctl", lambda: None)
    out = subprocess.run(["sh", "-c", "echo ok"], preexec_fn=child.tied_to_module(), capture_output=True, text=True,
                         check=True)
    assert out.stdout == "ok\n"
