#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_report
short_description: Write the records and the summary report of a prAxIs OS upgrade on its target
description:
  - Renders the per-target summary report C(.praxis-os/.cache/upgrade-summary-<ts>.md) and C(.json) from the
    session's facts (phases with durations, versions, file counts by class, conflicts, tools before and after,
    backup path, outcome).
  - After a completed upgrade also sets C(commit=), C(version_updated=) and C(source=) in C(VERSION.txt) and
    records the new base manifest used by the next three-way content upgrade.
  - Appends one line to C(UPDATE_LOG.txt) and one section to C(INSTALLATION_SUMMARY.md); both are append-only.
  - Every write is atomic (temporary file and rename).
  - With O(session_id) the session is read from the facts file and the records are journalled first
    (one stamp per session, written before any record), so a resumed run writes the same records again
    instead of appending a second entry; with O(record_phase) the phase is recorded once they are durable.
version_added: "1.0.0"
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
options:
  praxis_home:
    description: Absolute path of the installation's C(.praxis-os) directory.
    type: path
    required: true
  outcome:
    description: The outcome to record.
    type: str
    choices: [completed, rolled_back, failed]
    default: completed
  session:
    description:
      - The session document returned by M(praxis.upgrade.praxis_state), when O(session_id) is not given.
    type: dict
  session_id:
    description:
      - The in-progress upgrade session whose records to write, read from its facts file (journalled,
        idempotent). Takes precedence over O(session).
    type: str
  record_phase:
    description: Phase to record as completed in the session once the records are written (C(cleanup)).
    type: str
    choices: [cleanup]
  source:
    description: The source summary (C(commit), C(describe), C(path)) of the upgrade.
    type: dict
    required: true
  manifest:
    description: Upstream manifest (installed path to SHA-256) recorded as the new base manifest.
    type: dict
    default: {}
  remove_staging:
    description:
      - Staging this upgrade left under C(<praxis_home>/.cache/) (the shipped archive, the unpacked source),
        removed once the records are written. Paths outside C(.cache/) are refused.
    type: list
    elements: path
    default: []
  pruned:
    description: Backups removed by pruning in this run, for the report.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Computes the summary and writes nothing.
  diff_mode:
    support: none
    description: Not supported; the summary is returned instead.
  platform:
    platforms: posix
    support: full
    description: Runs on POSIX targets.
"""

EXAMPLES = r"""
- name: Update VERSION.txt, UPDATE_LOG.txt, INSTALLATION_SUMMARY.md, the base manifest and the summary report
  praxis.upgrade.praxis_report:
    praxis_home: /srv/app/.praxis-os
    outcome: completed
    session: "{{ praxis_session.session }}"
    source: {commit: "{{ praxis_src.commit }}", describe: "{{ praxis_src.describe }}", path: /src/praxis-os}
    manifest: "{{ praxis_src.manifest }}"

- name: The same, once per session, journalled in the session and recorded as its cleanup phase
  praxis.upgrade.praxis_report:
    praxis_home: /srv/app/.praxis-os
    session_id: "{{ praxis_session.session_id }}"
    source: {commit: "{{ praxis_src.commit }}", describe: "{{ praxis_src.describe }}", path: /src/praxis-os}
    manifest: "{{ praxis_src.manifest }}"
    record_phase: cleanup
"""

RETURN = r"""
summary:
  description: The summary document written as JSON.
  returned: always
  type: dict
  sample: {"outcome": "completed", "counts": {"add": 3, "update": 5}, "tools_after": ["get_server_info"]}
removed_staging:
  description: Staging paths that existed and were removed (in check mode, would be removed).
  returned: always
  type: list
  elements: str
session:
  description: The session after recording O(record_phase).
  returned: when O(session_id) and O(record_phase) are given, not in check mode
  type: dict
reports:
  description: Paths of the JSON and Markdown reports (empty in check mode).
  returned: always
  type: dict
  sample: {"json": "/srv/app/.praxis-os/.cache/upgrade-summary-20261124T101500Z.json"}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils import faults
from ansible_collections.praxis.upgrade.plugins.module_utils import session as sessions
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import remove_path
from ansible_collections.praxis.upgrade.plugins.module_utils.report import build_summary, write_target_records


def journalled_session(module, home):
    """The checked in-progress session with its records journalled (the stamp saved before writing)."""
    try:
        before = sessions.checked_session(home, module.params["session_id"])
        after = states.begin_records(before)
        if after != before and not module.check_mode:
            after = states.save(states.facts_path(home), after)
    except (ValueError, OSError) as exc:
        module.fail_json(msg="the upgrade records cannot be written: %s" % exc)
    return after


def main():
    module = AnsibleModule(
        argument_spec=dict(
            praxis_home=dict(type="path", required=True),
            outcome=dict(type="str", default="completed", choices=["completed", "rolled_back", "failed"]),
            session=dict(type="dict"),
            session_id=dict(type="str"),
            record_phase=dict(type="str", choices=["cleanup"]),
            source=dict(type="dict", required=True),
            manifest=dict(type="dict", default={}),
            remove_staging=dict(type="list", elements="path", default=[]),
            pruned=dict(type="list", elements="str", default=[]),
        ),
        required_one_of=[("session", "session_id")],
        required_by={"record_phase": "session_id"},
        supports_check_mode=True,
    )
    params = module.params
    home = os.path.abspath(params["praxis_home"])
    stamp = None
    session = params["session"]
    if params["session_id"]:
        session = journalled_session(module, home)
        stamp = states.journal_get(session, states.RECORDS_OP)["stamp"]
    summary = build_summary(session, params["source"], params["outcome"], params["pruned"], finished_at=stamp)
    cache = os.path.join(home, ".cache") + os.sep
    staging = [os.path.abspath(path) for path in params["remove_staging"]]
    outside = [path for path in staging if not path.startswith(cache)]
    if outside:
        module.fail_json(msg="remove_staging only removes paths under %s; refusing %s" % (cache, ", ".join(outside)))
    present = [path for path in staging if os.path.lexists(path)]
    if module.check_mode:
        module.exit_json(changed=True, summary=summary, reports={}, removed_staging=present)
    result = {}
    try:
        reports = write_target_records(home, summary, params["manifest"], fault=faults.fault_point)
        for path in present:
            remove_path(path)
        if params["record_phase"]:
            # the `records` entry stays until the session closes: a re-run before that (a crash after this
            # record) writes the same records under the same stamp instead of a second summary
            result["session"] = sessions.record_phase(home, params["session_id"], params["record_phase"],
                                                      {"reports": reports, "records_stamp": stamp})
    except (OSError, ValueError) as exc:
        module.fail_json(
            msg="could not write the upgrade records under %s: %s. Next: check free space and permissions, "
            "then re-run playbooks/upgrade.yml (it writes them once)" % (home, exc),
            summary=summary,
        )
    module.exit_json(changed=True, summary=summary, reports=reports, removed_staging=present, **result)


if __name__ == "__main__":
    main()
