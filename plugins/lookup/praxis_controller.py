# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: praxis_controller
short_description: Identity of the running ansible-playbook process (the run that takes upgrade locks)
version_added: "1.0.0"
author:
  - praxis.upgrade contributors (@praxis-upgrade)
description:
  - Returns one dict naming this C(ansible-playbook) run on the controller - C(controller_host), C(controller_pid)
    (the pid of the C(ansible-playbook) process itself, not of the worker evaluating the lookup),
    C(controller_start) (that process's start time in clock ticks since boot), C(boot_id) (the controller's
    kernel boot id) and C(run_key) (the four joined, unique per run).
  - The upgrade lock records it, so a later run can tell whether the run holding a lock can still be alive
    (the same pid with the same start time on the same boot) or is provably gone.
options: {}
"""

EXAMPLES = r"""
- name: Name this run in every lock it takes
  ansible.builtin.set_fact:
    praxis_run: "{{ lookup('praxis.upgrade.praxis_controller') }}"
"""

RETURN = r"""
_raw:
  description: One dict with C(controller_host), C(controller_pid), C(controller_start), C(boot_id), C(run_key).
  type: list
  elements: dict
"""

import multiprocessing
import os

from ansible.plugins.lookup import LookupBase
from ansible_collections.praxis.upgrade.plugins.module_utils.lock import process_identity


def playbook_pid():
    """The ansible-playbook process: lookups run in a worker forked from it (or in it, at parse time)."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else os.getpid()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [process_identity(playbook_pid())]
