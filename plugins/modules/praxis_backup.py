#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_backup
short_description: Create, verify, restore and prune backups of a prAxIs OS installation
version_added: "1.0.0"
description:
  - Backs up what an upgrade may change in a C(.praxis-os) directory into
    C(<backup_root>/YYYY-MM-DD-HHMMSS[-N]/) (unique even within one second) - copies of O(paths) hashed while
    copied, project files such as C(.gitignore), C(pip freeze) of the venv as C(requirements-snapshot.txt),
    and a hard-link snapshot of the venv (C(venv-snapshot/), described by C(VENV_MANIFEST.json)) so the venv
    can be restored exactly without network.
  - C(MANIFEST.json) is written last; a backup without it is incomplete and is never verified or restored.
  - O(state=restored) makes every backed-up path exactly as in the backup (files the upgrade added are
    removed, no residue) and rebuilds the venv from the snapshot when it differs, after verifying the backup.
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
extends_documentation_fragment:
  - praxis.upgrade.session
options:
  state:
    description:
      - C(present) creates a backup and verifies it. When O(session_id) already made a complete backup
        (an interrupted upgrade being resumed) that backup is verified and reused instead.
      - C(listed) lists the backups (read-only).
      - C(verified) re-hashes a backup and checks its venv snapshot (read-only).
      - C(restored) verifies a backup, then restores it.
      - C(pruned) removes old backups beyond O(keep).
    type: str
    choices: [present, verified, restored, pruned, listed]
    default: present
  praxis_home:
    description: Path of the installation's C(.praxis-os) directory.
    type: path
    required: true
  backup_root:
    description: Directory holding the backups; defaults to C(<praxis_home>/.backups).
    type: path
  paths:
    description:
      - Paths relative to O(praxis_home) to back up; a path missing at backup time is recorded as absent and
        removed on restore. Absolute paths, C(..) and nested paths are refused.
    type: list
    elements: str
    default: [mcp_server, scripts, standards/universal, workflows, usage, config.json, VERSION.txt,
              UPDATE_LOG.txt, INSTALLATION_SUMMARY.md, .cache/base-manifest.json]
  workflows:
    description:
      - The entries of C(workflows/) the upgrade owns (RV(praxis.upgrade.praxis_source#module:workflows)); with
        O(state=present), the C(workflows) entry of O(paths) is narrowed to them plus those the base manifest lists,
        so the operator's own workflows are neither copied nor verified (an upgrade never writes them).
      - Unset, the whole C(workflows) tree is backed up.
    type: list
    elements: str
  project_dir:
    description: The project directory holding O(project_files); defaults to the parent of O(praxis_home).
    type: path
  project_files:
    description:
      - Paths relative to O(project_dir) to back up (stored under C(project/)); a path absent at backup
        time is removed on restore.
    type: list
    elements: str
    default: [.gitignore, .cursorrules, .cursorrules.upstream, .cursor/mcp.json, .cursor/mcp.json.upstream]
  venv:
    description:
      - With O(state=present), snapshot C(<praxis_home>/venv) (pip freeze + hard links).
      - With O(state=restored), restore the venv from the snapshot when it differs.
    type: bool
    default: true
  backup:
    description:
      - Backup to verify or restore, as a name in O(backup_root) (C(YYYY-MM-DD-HHMMSS[-N])) or a path directly
        inside O(backup_root); anything else is refused.
      - A backup made of another installation (its recorded C(praxis_home)) is refused before anything changes.
      - Defaults to the newest complete backup.
    type: str
  session_id:
    description: Upgrade session recorded in the backup's manifest.
    type: str
  keep:
    description: With O(state=pruned), how many complete backups to keep (the newest is always kept).
    type: int
    default: 3
  protect:
    description: With O(state=pruned), backups (names or paths) never removed, e.g. the one of this run.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - C(present) reports what would be backed up (counts, bytes) without writing.
      - C(restored) and C(pruned) report what they would change without writing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: partial
    details: C(restored) returns a before/after summary of the paths that change.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Back up the installation before upgrading
  praxis.upgrade.praxis_backup:
    praxis_home: /srv/app/.praxis-os
    session_id: "{{ praxis_session_id }}"
  register: praxis_backup

- name: Verify a named backup
  praxis.upgrade.praxis_backup:
    state: verified
    praxis_home: /srv/app/.praxis-os
    backup: 2026-11-24-101500

- name: Roll back to the backup of this run
  praxis.upgrade.praxis_backup:
    state: restored
    praxis_home: /srv/app/.praxis-os
    backup: "{{ praxis_backup.path }}"

- name: Keep the three newest backups, never the one of this run
  praxis.upgrade.praxis_backup:
    state: pruned
    praxis_home: /srv/app/.praxis-os
    keep: 3
    protect: ["{{ praxis_backup.name }}"]
"""

RETURN = r"""
session:
  description: The upgrade session after recording O(record_phase) (see M(praxis.upgrade.praxis_state)).
  returned: when O(record_phase) is set with O(state=present), not in check mode
  type: dict
reused:
  description: C(present) found a complete backup already made by this O(session_id) (a resumed upgrade) and verified it instead of taking another.
  returned: state is present and a backup of the session exists
  type: bool
backups:
  description: Backups under the backup root, oldest first (C(name), C(path), C(complete), C(timestamp), C(session_id)).
  returned: state is listed
  type: list
  elements: dict
path:
  description: Absolute path of the backup created, verified or restored (null in check mode of C(present)).
  returned: state is present, verified or restored
  type: str
  sample: /srv/app/.praxis-os/.backups/2026-11-24-101500
name:
  description: Name of that backup.
  returned: state is present, verified or restored
  type: str
  sample: 2026-11-24-101500
file_count:
  description: Files copied (C(present); in check mode, files that would be copied) or listed in the manifest (C(verified)).
  returned: state is present or verified
  type: int
bytes:
  description: Bytes copied (or that would be copied), venv excluded.
  returned: state is present
  type: int
venv_files:
  description: Venv files in the hard-link snapshot (or that would be).
  returned: state is present
  type: int
venv_linked:
  description: Whether the venv snapshot is made of hard links (false when it had to be copied).
  returned: state is present and not check mode
  type: bool
paths:
  description: Kind of each backed-up path at backup time, C(dir), C(file) or C(absent).
  returned: state is present
  type: dict
duration_s:
  description: Seconds taken.
  returned: state is present or restored
  type: float
timings:
  description:
    - Where a new backup's time went, in seconds - C(venv_snapshot_s) (the hard-link snapshot of the venv) and
      C(pip_freeze_wait_s) (waiting for C(pip freeze), which runs beside the copies and the snapshot).
  returned: state is present and a backup was created
  type: dict
  sample: {"venv_snapshot_s": 0.61, "pip_freeze_wait_s": 0.0}
verified:
  description: Whether the backup passed verification (always true on success; the task fails otherwise).
  returned: state is present (not check mode), verified or restored
  type: bool
missing:
  description: Manifest entries whose file is missing from the backup.
  returned: state is verified
  type: list
  elements: str
changed_files:
  description:
    - Manifest entries whose file no longer has the recorded hash (named so because C(changed) is Ansible's
      status key).
  returned: state is verified
  type: list
  elements: str
extra:
  description: Files in the backup that its manifest does not list.
  returned: state is verified
  type: list
  elements: str
venv_problems:
  description: Venv snapshot entries whose size, mtime or mode differ from C(VENV_MANIFEST.json) (first 50).
  returned: state is verified
  type: list
  elements: str
restored:
  description: Files and directories restored (content or mode); in check mode, that would be.
  returned: state is restored
  type: int
removed:
  description: Files removed because the backup does not have them (added since); in check mode, that would be.
  returned: state is restored
  type: int
unchanged:
  description: Backed-up files already identical to the backup.
  returned: state is restored
  type: int
venv_restored:
  description: Whether the venv differed from the snapshot and was (or would be) rebuilt from it.
  returned: state is restored
  type: bool
restored_paths:
  description: Manifest keys (C(files/<rel>), C(project/<rel>)) restored, first 50; directories end with C(/).
  returned: state is restored
  type: list
  elements: str
removed_paths:
  description: Paths removed, in the same form, first 50.
  returned: state is restored
  type: list
  elements: str
venv_changes:
  description: How the live venv differed from the snapshot (first 50), for example C(changed lib/.../x.py).
  returned: state is restored
  type: list
  elements: str
pruned:
  description: Names of the backups removed (or that would be).
  returned: state is pruned
  type: list
  elements: str
kept:
  description: Names of the backups kept.
  returned: state is pruned
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils.session import record_for
from ansible_collections.praxis.upgrade.plugins.module_utils.state import PHASES
from ansible_collections.praxis.upgrade.plugins.module_utils import backup
from ansible_collections.praxis.upgrade.plugins.module_utils.faults import fault_point
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import UnsafePathError


def run_present(module, home, root, project):
    params = module.params
    venv = "venv" if params["venv"] else None
    earlier = backup.session_backup(root, params["session_id"])
    if earlier:
        report = backup.verify(earlier["path"])
        if not report["ok"]:
            module.fail_json(msg="the backup this session made earlier " + backup.verification_message(report))
        return dict(changed=False, verified=True, reused=True, path=report["path"], name=report["name"],
                    file_count=report["file_count"], bytes=None, venv_files=None, duration_s=0.0)
    paths = backup.owned_paths(home, params["paths"], params["workflows"])
    if module.check_mode:
        planned = backup.plan(home, paths, project, params["project_files"], venv)
        return dict(changed=True, path=None, name=None, file_count=planned["file_count"], bytes=planned["bytes"],
                    venv_files=planned["venv_files"], paths=planned["paths"], duration_s=0.0)
    created = backup.create(home, root, paths, project_dir=project, project_files=params["project_files"],
                            venv=venv, session_id=params["session_id"])
    for warning in created.pop("warnings"):
        module.warn(warning)
    report = backup.verify(created["path"])
    if not report["ok"]:
        module.fail_json(msg="the new " + backup.verification_message(report)
                         + " (the backup was just written: check the disk, then re-run)", **created)
    created.pop("project_paths")
    fault_point("backup.done")  # test seam: a crash right after a complete, verified backup
    return dict(changed=True, verified=True, **created)


def backup_plan_text(result, root):
    """The backup plan (or what was done) as --diff text."""
    if result.get("reused"):
        return "backup: reuse %s, made earlier by this session and verified again\n" % result["path"]
    where = result["path"] or os.path.join(root, "<YYYY-MM-DD-HHMMSS>")
    lines = ["backup: %s %s" % ("would create" if result["path"] is None else "created", where),
             "  %d files%s of: %s" % (
                 result["file_count"] or 0, " (%d bytes)" % result["bytes"] if result.get("bytes") else "",
                 ", ".join(result.get("paths") or []) or "the framework trees, records, .gitignore"),
             "  venv: hard-link snapshot of %s files + pip freeze (requirements-snapshot.txt)"
             % (result.get("venv_files") if result.get("venv_files") is not None else "its"),
             "  then verified against MANIFEST.json (sha256 of every file)"]
    return "\n".join(lines) + "\n"


def run_verified(module, root):
    report = backup.verify(backup.resolve(root, module.params["backup"]))
    # `changed` is Ansible's own status key, so the changed files are returned as `changed_files`.
    result = dict(changed=False, verified=report["ok"], path=report["path"], name=report["name"],
                  file_count=report["file_count"], missing=report["missing"], changed_files=report["changed"],
                  extra=report["extra"], venv_problems=report["venv_problems"])
    if not report["ok"]:
        module.fail_json(msg=backup.verification_message(report), **result)
    return result


def diff_of(result):
    before, after = {}, {}
    for key in result["restored_paths"]:
        before[key], after[key] = "differs from the backup", "as in the backup"
    for key in result["removed_paths"]:
        before[key], after[key] = "present", "absent"
    if result["venv_restored"]:
        before["venv"] = "differs from the snapshot (%s)" % ", ".join(result["venv_changes"][:5])
        after["venv"] = "as in the snapshot"
    return {"before": before, "after": after,
            "before_header": "current installation", "after_header": "backup %s" % result["name"]}


def run_restored(module, home, root, project):
    result = backup.restore(backup.resolve(root, module.params["backup"]), home, project_dir=project,
                            restore_venv=module.params["venv"], check=module.check_mode)
    result["changed"] = bool(result["restored"] or result["removed"] or result["venv_restored"])
    result["verified"] = True
    if module._diff:
        result["diff"] = diff_of(result)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="present", choices=["present", "verified", "restored", "pruned", "listed"]),
            praxis_home=dict(type="path", required=True),
            backup_root=dict(type="path"),
            paths=dict(type="list", elements="str", default=list(backup.DEFAULT_PATHS)),
            workflows=dict(type="list", elements="str"),
            project_dir=dict(type="path"),
            project_files=dict(type="list", elements="str", default=list(backup.PROJECT_FILES)),
            venv=dict(type="bool", default=True),
            backup=dict(type="str"),
            session_id=dict(type="str"),
            keep=dict(type="int", default=3),
            protect=dict(type="list", elements="str", default=[]),
            record_phase=dict(type="str", choices=list(PHASES)),
        ),
        supports_check_mode=True,
    )
    params = module.params
    home = os.path.abspath(params["praxis_home"])
    root = params["backup_root"] or os.path.join(home, ".backups")
    project = params["project_dir"] or os.path.dirname(home)
    state = params["state"]
    try:
        if state == "present":
            result = run_present(module, home, root, project)
            evidence = {key: result.get(key) for key in ("path", "file_count", "bytes", "venv_files", "verified",
                                                         "reused")}
            recorded = record_for(module, evidence, backup_path=result["path"])
            if recorded:
                result["session"] = recorded
            if module._diff:
                result["diff"] = dict(prepared=backup_plan_text(result, root))
        elif state == "verified":
            result = run_verified(module, root)
        elif state == "restored":
            result = run_restored(module, home, root, project)
        elif state == "listed":
            result = dict(changed=False, backups=backup.list_backups(root))
        else:
            pruned = backup.prune(root, params["keep"], params["protect"], check=module.check_mode)
            result = dict(changed=bool(pruned["removed"]), pruned=pruned["removed"], kept=pruned["kept"])
    except (backup.BackupError, UnsafePathError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="praxis_backup state=%s failed on %s: %s; check permissions and free space, then re-run"
                         % (state, getattr(exc, "filename", None) or home, exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
