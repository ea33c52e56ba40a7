#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_run_report
short_description: Add one target's row to the controller-side report of a run
description:
  - Maintains C(<report_dir>/<kind>-<run_id>.json), C(.md) and C(.html) on the controller, one row per target,
    rewritten after every row so the report is complete even when the run stops early (a failed canary
    batch, an unreachable host). Inventory hosts without a row are shown as not reached.
  - The HTML page is self-contained (inline CSS and SVG, no script, no network) - the per-host table and a
    timeline with one row per host and one bar per phase on a shared wall-clock axis, serial batches marked
    (the row's batch is taken from C(ansible_play_batch)), colours by outcome, the failure reason on hover.
    Phase times come from the row's C(session) (each phase's C(started_at)/C(finished_at), the rollback's),
    the row's C(started_at) (when preflight began on the target) and C(recorded_at).
  - With O(kind=status) the rows are the fleet's current state (C(playbooks/status.yml)) and the page is the
    status page.
  - An action plugin does the work on the controller itself (no module is shipped anywhere); concurrent
    forks are serialised with a file lock. It writes in check mode too, since it only touches the controller.
  - C(changed) is always false, also from the action plugin; the report is the run's own bookkeeping on
    the controller, rewritten for every row, not a change to the target.
version_added: "1.0.0"
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
options:
  report_dir:
    description: Controller directory for run reports (C(praxis_report_dir)).
    type: path
    required: true
  run_id:
    description: The run id shared by every batch of one C(ansible-playbook) run.
    type: str
    required: true
  host:
    description: Inventory name of the target this row describes.
    type: str
    required: true
  row:
    description: The row (C(outcome), C(session), counts, tools, failure details).
    type: dict
    required: true
  hosts:
    description: Every inventory host of the run, so hosts without a result are listed too.
    type: list
    elements: str
    default: []
  source:
    description: Source summary (C(commit), C(describe), C(path)).
    type: dict
    default: {}
  check_mode_run:
    description: Whether the playbook runs in check mode (the report is still written on the controller).
    type: bool
    default: false
  kind:
    description:
      - What kind of run the report is about; the files are named C(<kind>-<run_id>.*).
      - C(status) is the read-only fleet status of C(playbooks/status.yml) (rows with C(installed_commit),
        C(tools), C(lock), C(session), C(backups)).
    type: str
    default: upgrade
    choices: [upgrade, rollback, install, status]
attributes:
  action:
    support: full
    description: Runs as an action plugin on the controller.
  check_mode:
    support: full
    description: Writes the report in check mode too (the dry run's report); nothing is written on targets.
  diff_mode:
    support: none
    description: Not supported.
  platform:
    platforms: posix
    support: full
    description: Runs on the POSIX controller.
"""

EXAMPLES = r"""
- name: Add this host to the run report
  praxis.upgrade.praxis_run_report:
    report_dir: "{{ praxis_report_dir }}"
    run_id: "{{ praxis_run_id }}"
    host: "{{ inventory_hostname }}"
    hosts: "{{ ansible_play_hosts_all }}"
    row: {outcome: completed}
"""

RETURN = r"""
json:
  description: Path of the JSON run report.
  returned: always
  type: str
  sample: /home/ops/praxis-reports/upgrade-20261124T101500Z-3f9a1c2.json
markdown:
  description: Path of the Markdown run report.
  returned: always
  type: str
  sample: /home/ops/praxis-reports/upgrade-20261124T101500Z-3f9a1c2.md
html:
  description: Path of the HTML run report (per-host table and timeline, self-contained).
  returned: always
  type: str
  sample: /home/ops/praxis-reports/upgrade-20261124T101500Z-3f9a1c2.html
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils.report import RUN_REPORT_ARGS, merge_run_row


def main():
    module = AnsibleModule(
        argument_spec=RUN_REPORT_ARGS,
        supports_check_mode=True,
    )
    params = module.params
    row = dict(params["row"], check_mode=params["check_mode_run"])
    try:
        written = merge_run_row(params["report_dir"], params["run_id"], params["host"], row, params["hosts"], params["source"],
                                kind=params["kind"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg="could not write the run report in %s: %s; check the directory and re-run" % (params["report_dir"], exc))
    module.exit_json(changed=False, json=written["json"], markdown=written["markdown"], html=written["html"])


if __name__ == "__main__":
    main()
