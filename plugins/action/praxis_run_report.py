# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin: the run report lives on the controller, so it is written right here, in the
controller's worker, instead of shipping a module to localhost (which costs a process per host)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.praxis.upgrade.plugins.module_utils.report import RUN_REPORT_ARGS, merge_run_row


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(RUN_REPORT_ARGS)
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=RUN_REPORT_ARGS)[1]
        row = dict(args["row"], check_mode=args["check_mode_run"])
        try:
            # the row's serial batch, as Ansible sees it now (the HTML timeline marks batches)
            batch = (task_vars or {}).get("ansible_play_batch")
            written = merge_run_row(os.path.expanduser(args["report_dir"]), args["run_id"], args["host"], row,
                                    args["hosts"], args["source"], kind=args["kind"],
                                    batch=[str(name) for name in batch] if isinstance(batch, list) else None)
        except (OSError, ValueError) as exc:
            raise AnsibleActionFail("could not write the run report in %s: %s; check the directory and re-run"
                                    % (args["report_dir"], exc))
        result.update(changed=False, json=written["json"], markdown=written["markdown"], html=written["html"])
        return result
