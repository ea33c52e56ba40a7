# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin: before the praxis_preflight module looks at a target, check every operator variable
this host sees (`praxis_*` in its task vars, templated) against the one table in module_utils/inputs.py.
A bad value or a likely typo fails here, on the controller, before the lock and before any change."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.praxis.upgrade.plugins.module_utils import inputs


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        values, problems = inputs.read_values(list(task_vars), lambda name: self._templar.template(task_vars[name]),
                                              (AnsibleError,))
        problems += inputs.validate(values, required=("praxis_project_dir",))
        if problems:
            result.update(failed=True, changed=False, problems=problems,
                          msg=inputs.failure_message(task_vars.get("inventory_hostname", "this host"), problems))
            return result
        result.update(self._execute_module(module_name="praxis.upgrade.praxis_preflight",
                                           module_args=self._task.args, task_vars=task_vars))
        return result
