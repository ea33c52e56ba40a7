#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_inputs
short_description: Validate every operator variable of a fleet before anything is touched
description:
  - Reads the C(praxis_*) variables of every host in O(hosts) (inventory, group and extra vars, as
    C(hostvars) shows them) and checks each against the one table of operator variables
    (C(plugins/module_utils/inputs.py), the variables table of README) - types, ranges, choices, the shape
    of C(praxis_serial), C(praxis_pip_args) as a list, C(praxis_server_env) as a dict of strings,
    C(praxis_backup_name) as a plain name. Any other C(praxis_*) name is a likely typo and fails, naming
    the closest known variable.
  - Decides the run-level values the upgrade play uses (C(serial) and C(max_fail_percentage), from extra
    vars or the default) and warns, naming the host and the fix, when the inventory sets them (Ansible decides
    batches before it reads host variables, so such values cannot be honoured).
  - An action plugin does the work on the controller; no module is shipped to any host.
  - C(praxis_preflight) checks the same table again per host, so a role run alone is checked too.
version_added: "1.0.0"
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
options:
  hosts:
    description: Inventory hosts whose variables are checked (C(groups['praxis'])).
    type: list
    elements: str
    default: []
  report_dir:
    description:
      - The controller's own C(praxis_report_dir), used for RV(report_dir) when the first host does not
        set one.
    type: str
    default: ""
attributes:
  action:
    support: full
    description: Runs as an action plugin on the controller.
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: Not supported.
  platform:
    platforms: posix
    support: full
    description: Runs on the POSIX controller.
"""

EXAMPLES = r"""
- name: Validate every operator variable of the fleet
  praxis.upgrade.praxis_inputs:
    hosts: "{{ groups['praxis'] | default([]) }}"
    report_dir: "{{ praxis_report_dir }}"
  register: run_inputs
"""

RETURN = r"""
hosts:
  description: The hosts checked.
  returned: always
  type: list
  elements: str
problems:
  description: "Every problem found, as C(<host>: <problem>; Next: <what to do>); the task fails when not empty."
  returned: always
  type: list
  elements: str
warnings_found:
  description: Run-level values set in the inventory that the run cannot honour.
  returned: always
  type: list
  elements: str
serial:
  description: The batch sizes the upgrade play uses.
  returned: always
  type: raw
  sample: [1, "25%", "100%"]
max_fail_percentage:
  description: The max_fail_percentage the upgrade play uses.
  returned: always
  type: int
  sample: 0
report_dir:
  description: Controller directory of the run report and the packed source (the first host's C(praxis_report_dir)).
  returned: always
  type: str
  sample: /home/ops/praxis-reports
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils.inputs import INPUTS_ARGS


def main():
    module = AnsibleModule(argument_spec=INPUTS_ARGS, supports_check_mode=True)
    module.fail_json(msg="praxis_inputs runs as an action plugin on the controller; call it as "
                         "praxis.upgrade.praxis_inputs from a play, not as a module on a target")


if __name__ == "__main__":
    main()
