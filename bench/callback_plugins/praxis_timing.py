# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench-only callback: seconds per task, written as JSON lines to $PRAXIS_TIMING_FILE."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: praxis_timing
type: aggregate
short_description: Seconds per task for bench/run
description:
  - Appends one JSON line per finished task (role, task, host, action, status, wall_start, seconds, the module's
    duration_s and timings) to $PRAXIS_TIMING_FILE.
requirements:
  - PRAXIS_TIMING_FILE set in the environment
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "praxis_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._started = {}
        self._path = os.environ.get("PRAXIS_TIMING_FILE")

    def v2_runner_on_start(self, host, task):
        self._started[(host.get_name(), task._uuid)] = (time.monotonic(), time.time())

    def _record(self, result, status):
        key = (result._host.get_name(), result._task._uuid)
        began = self._started.pop(key, None)
        if began is None or not self._path:
            return
        role = result._task._role.get_name() if result._task._role else ""
        line = {"host": key[0], "role": role, "task": result._task.get_name(), "action": result._task.action,
                "status": status, "wall_start": round(began[1], 3), "seconds": round(time.monotonic() - began[0], 3)}
        inner = result._result.get("duration_s") if isinstance(result._result, dict) else None
        if isinstance(inner, (int, float)):
            line["module_duration_s"] = inner  # the module's own measure, without Ansible's round trip
        parts = result._result.get("timings") if isinstance(result._result, dict) else None
        if isinstance(parts, dict):
            line["module_timings"] = parts  # where the module's time went (praxis_backup)
        with open(self._path, "a") as handle:
            handle.write(json.dumps(line) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")
