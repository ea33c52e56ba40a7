# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only fault injection: simulate a crash (controller killed, host lost) at a named point.

`fault_point(name)` kills the whole process group with SIGKILL when the environment variable
`PRAXIS_FAULT_POINT` equals `name`; otherwise it does nothing. Names in use: `backup.done`,
`content.midway`, `server.during_staging`, `server.between_renames`, `server.during_pip`,
`server.during_index_build`, `server.between_index_renames`,
`cleanup.after_update_log`, `rollback.started`, `rollback.restore_midway`, `rollback.before_record`.
"""

from __future__ import annotations

import os
import signal

ENV = "PRAXIS_FAULT_POINT"


def armed(name: str) -> bool:
    return os.environ.get(ENV) == name


def fault_point(name: str) -> None:
    if armed(name):
        os.killpg(os.getpgid(0), signal.SIGKILL)
