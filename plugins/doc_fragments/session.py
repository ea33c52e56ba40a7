# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options of the modules that can record their upgrade phase in the session's facts file."""

    DOCUMENTATION = r"""
options:
  record_phase:
    description:
      - After the work succeeds, record this phase as done in the upgrade session's facts file
        C(.praxis-os/.cache/facts.d/praxis_upgrade.fact), with the result as its evidence, so a re-run
        resumes after it. The session must be in progress and still hold the upgrade lock.
      - Nothing is recorded in check mode. Omit it to use the module on its own.
    type: str
    choices: [preflight, backup, content, server, validate, cleanup]
"""
