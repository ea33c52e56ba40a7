# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for praxis_state: runs the module on the target and, when the lock there belongs to
another run of *this* controller that the (remote) target cannot check, checks that run's process here
on the controller (same pid with the same start time on the same boot) and, when it is provably gone,
runs the module once more telling it so (`gone_runs`). A run that can be alive is never overridden."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.praxis.upgrade.plugins.module_utils.lock import boot_id, run_alive_here


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        out = self._execute_module(module_name="praxis.upgrade.praxis_state", module_args=args,
                                   task_vars=task_vars)
        holder = out.get("controller_check") if out.get("failed") else None
        if holder and run_alive_here(holder, boot_id()) is False:
            args["gone_runs"] = list(args.get("gone_runs") or []) + [holder["run_key"]]
            out = self._execute_module(module_name="praxis.upgrade.praxis_state", module_args=args,
                                       task_vars=task_vars)
        result.update(out)
        return result
