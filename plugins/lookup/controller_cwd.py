# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: controller_cwd
short_description: The real working directory of ansible-playbook on the controller
version_added: "1.0.0"
description:
  - Returns the directory C(ansible-playbook) was started from, with symlinks resolved (C(os.getcwd())).
  - Unlike C(lookup('ansible.builtin.env', 'PWD')) it does not trust the environment, which can be stale
    (for example under C(sudo), C(ansible-runner) or a shell that changed directory without updating C(PWD)),
    and unlike C(playbook_dir) it is not inside an installed collection.
  - The default of C(praxis_report_dir) is C(<controller_cwd>/praxis-reports).
author:
  - praxis.upgrade contributors (@praxis-upgrade)
options: {}
"""

EXAMPLES = r"""
- name: Where the run reports go by default
  ansible.builtin.debug:
    msg: "{{ lookup('praxis.upgrade.controller_cwd') }}/praxis-reports"
"""

RETURN = r"""
_raw:
  description: One absolute path, the controller's real working directory.
  type: list
  elements: str
"""

import os

from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [os.path.realpath(os.getcwd())]
