# -*- coding: utf-8 -*-
# Test-only: part of tests/faults, never shipped with the collection.
"""Record the run's task events, and SIGKILL the whole run at a chosen one.

Environment (read once at load):
- ``PRAXIS_TEST_TASK_LOG=<file>``: append one JSON line per task event (``{"event": "start"|"end",
  "name": ..., "n": ...}``) so a reference run tells the suite how many tasks a run has.
- ``PRAXIS_TEST_KILL=<event>:<n>[:<anchor>]``: when the n-th (1-based) ``start``, ``end`` or ``any`` event is seen,
  counting only events after a task whose name contains ``<anchor>`` started (every event when no
  anchor), kill the run like a crash of the controller: every descendant of this process (module
  processes, pip, ...) except detached prAxIs OS servers, then this process group, with SIGKILL.
  Before dying it writes ``{"killed_at": ...}`` to ``$PRAXIS_TEST_KILL_MARK`` when set.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: praxis_fault_kill
    type: aggregate
    short_description: test-only task recorder and run killer for the fault-matrix suite
    description: Records task events and SIGKILLs the run's process tree at a chosen task event.
    requirements: [enabled in ANSIBLE_CALLBACKS_ENABLED]
"""


def _load_proctree() -> ModuleType:
    """tests/proctree.py, by its path: this plugin runs inside ansible-playbook, where `tests` is no package."""
    path = Path(__file__).resolve().parents[2] / "proctree.py"
    spec = importlib.util.spec_from_file_location("praxis_test_proctree", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


proctree = _load_proctree()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "praxis_fault_kill"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._log = os.environ.get("PRAXIS_TEST_TASK_LOG")
        spec = os.environ.get("PRAXIS_TEST_KILL", "")
        parts = spec.split(":", 2) if spec else []
        self._event = parts[0] if parts else None
        self._n = int(parts[1]) if len(parts) > 1 else 0
        self._anchor = parts[2] if len(parts) > 2 else None
        self._armed = self._anchor is None
        self._count = 0
        self._seen = 0
        self._current = ""

    def _record(self, event: str, name: str) -> None:
        self._seen += 1
        if self._log:
            with open(self._log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"event": event, "name": name, "n": self._seen}) + "\n")
        if self._event is None:
            return
        if not self._armed and event == "start" and self._anchor and self._anchor in name:
            self._armed = True
        if not self._armed or self._event not in (event, "any"):
            return
        self._count += 1
        if self._count == self._n:
            mark = os.environ.get("PRAXIS_TEST_KILL_MARK")
            if mark:
                with open(mark, "w", encoding="utf-8") as handle:
                    json.dump({"killed_at": f"{event} #{self._n}: {name}", "event_no": self._seen}, handle)
            proctree.kill_run(os.getpid(), spare=proctree.is_server)

    def v2_playbook_on_task_start(self, task, is_conditional):  # noqa: ANN001 - ansible's signature
        self._current = task.get_name()
        self._record("start", self._current)

    def v2_playbook_on_handler_task_start(self, task):  # noqa: ANN001
        self._current = task.get_name()
        self._record("start", self._current)

    def _end(self, result) -> None:  # noqa: ANN001
        self._record("end", result._task.get_name())

    def v2_runner_on_ok(self, result):  # noqa: ANN001
        self._end(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):  # noqa: ANN001
        self._end(result)

    def v2_runner_on_skipped(self, result):  # noqa: ANN001
        self._end(result)

    def v2_runner_on_unreachable(self, result):  # noqa: ANN001
        self._end(result)
