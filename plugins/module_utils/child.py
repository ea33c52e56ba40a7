# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers a module hands to `subprocess` as `preexec_fn` (run in the child before exec).

`tied_to_module()`: a tool that writes where the upgrade owns (`cp -al` into a backup, pip into the
staged venv, the index builder into its staging directory) must not outlive the module that started it.
When the module process dies (SIGKILL, OOM), the kernel kills the child too (Linux `PR_SET_PDEATHSIG`), so a
re-run never races a writer left over from the killed one. Elsewhere it does nothing: the process group
still takes the child along when the whole run is killed.
"""

from __future__ import annotations

import os
import signal
from typing import Callable, Optional

_PR_SET_PDEATHSIG = 1


def _prctl() -> Optional[Callable[..., int]]:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):  # not Linux / no libc symbol
        return None


def tied_to_module(nice: int = 0) -> Callable[[], None]:
    """A `preexec_fn`: the child gets SIGKILL when this process dies, and runs `nice` steps lower
    (a helper that only has to be done by the end, such as pip freeze, leaves the CPU to the work beside it)."""
    prctl = _prctl()  # resolved before the fork: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
            if os.getppid() != parent:  # the module died before the call took effect
                os._exit(137)
        if nice:
            try:
                os.nice(nice)
            except OSError:
                pass

    return preexec
