# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin: validate the operator variables of a whole fleet on the controller, before any host is
touched, and decide the run-level values (batches, report directory). See module praxis_inputs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars
from ansible_collections.praxis.upgrade.plugins.module_utils import inputs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(inputs.INPUTS_ARGS)
    _supports_check_mode = True

    @staticmethod
    def host_values(hostvars, host):
        """({name: value}, [problems]) of the host's `praxis_*` variables, as hostvars templates them."""
        try:
            view = hostvars[host]
            names = list(view.keys())
        except (AnsibleError, KeyError) as exc:
            return {}, ["its variables cannot be read (%s); Next: fix the inventory" % exc]
        return inputs.read_values(names, view.__getitem__, (AnsibleError,))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=inputs.INPUTS_ARGS)[1]
        hostvars = task_vars.get("hostvars", {})
        extra_vars = load_extra_vars(self._loader)
        given = {k: v for k, v in extra_vars.items() if k.startswith(inputs.PREFIX)}
        # extra vars reach every host: checked once, as the run's, not once per host
        problems = ["the run (-e): %s" % p for p in inputs.validate(given)]
        per_host = {}
        for host in args["hosts"]:
            values, found = self.host_values(hostvars, host)
            per_host[host] = {k: v for k, v in values.items() if k not in given}
            required = () if "praxis_project_dir" in given else ("praxis_project_dir",)
            found += inputs.validate(per_host[host], required=required)
            problems += ["%s: %s" % (host, problem) for problem in found]
        effective = inputs.effective_run_values(extra_vars)
        first = per_host.get(args["hosts"][0], {}) if args["hosts"] else {}
        report_dir = first.get("praxis_report_dir") or args["report_dir"] or os.path.join(
            os.path.realpath(os.getcwd()), "praxis-reports")
        warnings = inputs.run_level_conflicts(per_host, effective)
        for warning in warnings:
            self._display.warning(warning)
        result.update(changed=False, hosts=list(args["hosts"]), problems=problems, warnings_found=warnings,
                      serial=effective["praxis_serial"],
                      max_fail_percentage=inputs.as_int(effective["praxis_max_fail_percentage"]),
                      report_dir=os.path.expanduser(report_dir))
        if problems:
            result.update(failed=True, msg=inputs.failure_message(
                "%d host(s) of the run" % len(args["hosts"]), problems))
        return result
