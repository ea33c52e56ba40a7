#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_install
short_description: Begin, finish or undo a fresh prAxIs OS install, or adopt a docs-made installation
version_added: "1.0.0"
description:
  - The install-only steps of C(playbooks/install.yml); the install itself reuses the upgrade's modules
    (M(praxis.upgrade.praxis_content) with an empty base, M(praxis.upgrade.praxis_server) C(action=upgrade),
    M(praxis.upgrade.praxis_health), M(praxis.upgrade.praxis_report)).
  - O(state=inspected) (read-only, also in check mode) - what the project holds (C(absent), C(empty),
    C(interrupted) unfinished install, C(installed), C(docs) made by upstream's docs) and what to do
    (RV(action)); refuses, changing nothing, an installation at another commit (naming
    C(praxis.upgrade.upgrade)) or a docs-made one outside adopt mode.
  - O(state=started) - creates the installation directory, takes the upgrade lock (C(.upgrade-lock)) and writes
    the install journal C(.install-journal.json) (the paths that existed inside the installation, the bytes of
    C(.gitignore), C(.cursorrules) and C(.cursor/mcp.json)) before anything else is created, then creates the
    venv (C(python -m venv)). An unfinished install found there (its run gone) is undone first.
  - O(state=undone) - stops this project's server (verified pid - the state file's and each pid the install
    journalled when it started one - or the unit), removes everything the journal
    does not list, restores the project files, removes the installation directory when the install created
    it, so the project is exactly as before. Idempotent; the journal goes last. Refused while another live run holds
    the lock.
  - O(state=completed) - removes the install's staging, releases the lock, removes the journal.
  - O(state=adopted) - records C(VERSION.txt) and the base manifest of a docs-made installation (the commit
    C(installs) identifies, its installer's files as base), under the lock; no framework file changes.
author:
  - praxis.upgrade maintainers (@praxis-upgrade)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  state:
    description: What to do.
    type: str
    choices: [inspected, started, completed, undone, adopted]
    required: true
  project_dir:
    description: Absolute path of the project (C(praxis_project_dir)).
    type: path
    required: true
  praxis_home_name:
    description: Name of the installation directory inside the project.
    type: str
    default: .praxis-os
  mode:
    description: C(install) a new installation or C(adopt) a docs-made one (C(praxis_install_mode)).
    type: str
    choices: [install, adopt]
    default: install
  commit:
    description: Commit of the source (M(praxis.upgrade.praxis_source) RV(praxis.upgrade.praxis_source#module:commit)).
    type: str
  installs:
    description: Installs of the source's history (RV(praxis.upgrade.praxis_source#module:installs)); identifies a docs-made install.
    type: dict
    default: {}
  source_path:
    description: Controller path of the source, recorded by O(state=adopted).
    type: str
  session_id:
    description: Install session id (names the lock's holder and the journal).
    type: str
  run_id:
    description: Controller run id shared by every host of one run.
    type: str
  run:
    description: Identity of the C(ansible-playbook) run (lookup P(praxis.upgrade.praxis_controller#lookup)), recorded in the lock.
    type: dict
  controller:
    description: C(user@host) of the controller, recorded in the lock.
    type: str
  host:
    description: Inventory name of the target, recorded in the lock.
    type: str
  lock_stale_after:
    description: Seconds after the last heartbeat of another run's lock when it is stale.
    type: int
    default: 86400
  break_lock:
    description: Take over a live or corrupt lock of another run.
    type: bool
    default: false
  python:
    description: Interpreter that makes the venv (C(python -m venv)); default the one running this module.
    type: path
  staging:
    description: Staging paths under C(<praxis_home>/.cache/) removed by O(state=completed).
    type: list
    elements: path
    default: []
  server_mode:
    description: Server mode (C(praxis_server_mode)); O(state=undone) stops the unit in C(systemd) mode.
    type: str
    choices: [auto, none, process, systemd]
    default: auto
  systemd_unit:
    description: systemd unit running the server.
    type: str
  systemd_scope:
    description: Scope of that unit.
    type: str
    choices: [system, user]
    default: system
attributes:
  check_mode:
    support: full
    details: O(state=inspected) runs the same; the other states say what they would do and change nothing.
  diff_mode:
    support: full
    details: O(state=started) and O(state=adopted) list what they would create or record.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: What does the project hold
  praxis.upgrade.praxis_install:
    state: inspected
    project_dir: /srv/app
    commit: "{{ src.commit }}"
    installs: "{{ src.installs }}"
  register: target

- name: Create the installation directory, take the lock, journal, make the venv
  praxis.upgrade.praxis_install:
    state: started
    project_dir: /srv/app
    commit: "{{ src.commit }}"
    session_id: install-20261130T101500Z-e8b70c7
    run: "{{ lookup('praxis.upgrade.praxis_controller') }}"

- name: Undo a failed install
  praxis.upgrade.praxis_install:
    state: undone
    project_dir: /srv/app
    session_id: install-20261130T101500Z-e8b70c7
"""

RETURN = r"""
praxis_home:
  description: The installation directory.
  returned: always
  type: str
status:
  description: What the project held (C(absent), C(empty), C(interrupted), C(installed), C(docs)).
  returned: when state is inspected
  type: str
action:
  description: What install.yml does there - C(install), C(adopt), C(check_health) (installed at the source's commit), C(nothing).
  returned: when state is inspected
  type: str
installed_commit:
  description: Commit of the installation found (recorded, or identified in the source's history), else null.
  returned: when state is inspected or adopted
  type: str
match:
  description: How a docs-made installation matched the source's history (C(commit), C(exact), C(differing), C(files)).
  returned: when state is inspected
  type: dict
server_pid:
  description: Verified pid of this project's http server (to probe it), else null.
  returned: when state is inspected
  type: int
created_home:
  description: Whether the installation directory is (or would be) created by this install.
  returned: when state is started
  type: bool
lock:
  description: C(acquired), C(ours) or C(taken_over).
  returned: when state is started
  type: str
undone_interrupted:
  description: What undoing an unfinished install found first did (see RV(undo)), else null.
  returned: when state is started
  type: dict
venv:
  description: The venv path, the interpreter that made it and whether it was created.
  returned: when state is started
  type: dict
undo:
  description: C(undone), C(stopped) (what stopping the server did), C(removed) (paths inside the installation), C(restored) (project files), C(removed_home).
  returned: when state is undone
  type: dict
session:
  description: The install as a session row for the run report (C(session_id), C(started_at), C(finished_at), C(phases)).
  returned: when state is completed
  type: dict
removed_staging:
  description: Staging paths removed.
  returned: when state is completed
  type: list
  elements: str
reports:
  description: Summary report files written by O(state=adopted).
  returned: when state is adopted
  type: dict
diff:
  description: What would be created or recorded.
  returned: when diff mode is on and state is started or adopted
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils import install, lock, procutil


def _judged(p):
    return dict(stale_after=p["lock_stale_after"], break_lock=p["break_lock"])


def _owner(p):
    return lock.make_owner(p["session_id"], p["commit"], p["controller"], p["host"], p["run_id"], run=p["run"])


def _stopper(p, home):
    def stop(started):
        mode, _why = procutil.resolve_mode(p["server_mode"], p["systemd_unit"], home)
        if mode == "systemd":
            procutil.systemd_stop(p["systemd_unit"], p["systemd_scope"])
            return "stopped unit %s" % p["systemd_unit"]
        done = []
        # a server the install started may not have published its state file yet (first index build)
        for pid in started:
            if procutil.check_server_pid(pid, home)[0]:
                done.append("stopped started pid %s with SIG%s" % (pid, procutil.stop(pid)["stopped_by"] or "(gone)"))
        found = procutil.classify_server(home)
        if found["kind"] == "http":
            stopped = procutil.stop(found["pid"])
            done.append("stopped pid %s with SIG%s" % (found["pid"], stopped["stopped_by"] or "(gone)"))
        return "; ".join(done) or "nothing to stop (%s)" % found["reason"]
    return stop


def _check_lock(module, p, home, what):
    """Refuse (changing nothing) while another live run holds this installation's lock."""
    try:
        lock.plan(lock.lock_path(home), _owner(p), **_judged(p))
    except lock.LockHeld as exc:
        module.fail_json(msg="%s: %s" % (what, exc))


def inspected(module, p, home):
    found = install.inspect(p["project_dir"], p["praxis_home_name"], p["commit"], p["installs"], p["mode"])
    if found["action"] == "refuse":
        module.fail_json(msg=found["refusal"], status=found["status"], installed_commit=found["installed_commit"])
    pid = procutil.our_http_server_pid(home)[0] if found["status"] == "installed" else None
    module.exit_json(changed=False, praxis_home=home, status=found["status"], action=found["action"],
                     installed_commit=found["installed_commit"], match=found["match"], server_pid=pid)


def started(module, p, home):
    undone = None
    if install.status_of(home) == "interrupted":
        _check_lock(module, p, home, "an unfinished install of %s is still running" % home)
        undone = install.undo(p["project_dir"], home, _stopper(p, home), check=module.check_mode)
    elif os.path.isdir(home):
        _check_lock(module, p, home, "another run holds %s" % home)
    begun = install.begin(p["project_dir"], home, _owner(p), p["commit"], check=module.check_mode, **_judged(p))
    venv = install.create_venv(home, p["python"], check=module.check_mode)
    result = dict(changed=True, praxis_home=home, created_home=begun["created_home"], lock=begun["lock"],
                  undone_interrupted=undone, venv=venv)
    if module._diff:
        lines = []
        if undone and undone["undone"]:
            lines.append("undo the unfinished install found there (%s)" % install.JOURNAL)
        if begun["created_home"]:
            lines.append("%s/  (created)" % home)
        lines += ["%s  (lock, released at the end)" % lock.lock_path(home),
                  "%s  (install journal: what exists now, removed at the end)" % install.journal_path(home),
                  "%s/  (python -m venv; then pip install -r mcp_server/requirements.txt)" % venv["venv"]]
        result["diff"] = dict(before="", after="".join(line + "\n" for line in lines),
                              after_header="%s (install)" % home)
    module.exit_json(**result)


def undone(module, p, home):
    if os.path.isdir(home):
        _check_lock(module, p, home, "the install of %s is not undone: another run holds it" % home)
    done = install.undo(p["project_dir"], home, _stopper(p, home), check=module.check_mode)
    module.exit_json(changed=done["undone"], praxis_home=home, undo=done)


def completed(module, p, home):
    if module.check_mode:
        module.exit_json(changed=True, praxis_home=home, removed_staging=[], session={})
    done = install.finish(home, p["session_id"], p["staging"])
    session = install.session_row(p["session_id"], p["run_id"], done["started_at"], done["finished_at"])
    module.exit_json(changed=True, praxis_home=home, removed_staging=done["removed_staging"], session=session)


def adopted(module, p, home):
    found = install.inspect(p["project_dir"], p["praxis_home_name"], p["commit"], p["installs"], "adopt")
    if found["action"] == "refuse":
        module.fail_json(msg=found["refusal"], status=found["status"])
    result = dict(changed=found["action"] == "adopt", praxis_home=home, installed_commit=found["installed_commit"],
                  reports={})
    if found["action"] != "adopt":
        module.exit_json(**result)
    commit, manifest = found["installed_commit"], found["adopt_manifest"] or {}
    if module._diff:
        match = found["match"] or {}
        result["diff"] = dict(before="", after_header="%s (adopted)" % home, after=(
            "%s/VERSION.txt  commit=%s\n%s/%s  base manifest: %d files of the install of %s (%s)\n"
            % (home, commit, home, install.BASE_MANIFEST, len(manifest), commit[:12],
               "exact match" if match.get("exact") else "closest match: %s file(s) differ" % match.get("differing"))))
    if module.check_mode:
        module.exit_json(**result)
    _check_lock(module, p, home, "%s is not adopted" % home)
    path = lock.lock_path(home)
    lock.acquire(path, _owner(p), **_judged(p))
    try:
        session = {"session_id": p["session_id"], "run_id": p["run_id"], "started_at": install.now_iso()}
        result.update(install.adopt(home, commit, manifest, p["source_path"] or "", session))
    finally:
        lock.release(path, p["session_id"])
    module.exit_json(**result)


STATES = {"inspected": inspected, "started": started, "undone": undone, "completed": completed, "adopted": adopted}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", required=True, choices=list(STATES)),
            project_dir=dict(type="path", required=True),
            praxis_home_name=dict(type="str", default=".praxis-os"),
            mode=dict(type="str", choices=list(install.MODES), default="install"),
            commit=dict(type="str"),
            installs=dict(type="dict", default={}),
            source_path=dict(type="str"),
            session_id=dict(type="str"),
            run_id=dict(type="str"),
            run=dict(type="dict"),
            controller=dict(type="str"),
            host=dict(type="str"),
            lock_stale_after=dict(type="int", default=86400),
            break_lock=dict(type="bool", default=False),
            python=dict(type="path"),
            staging=dict(type="list", elements="path", default=[]),
            server_mode=dict(type="str", choices=["auto", "none", "process", "systemd"], default="auto"),
            systemd_unit=dict(type="str"),
            systemd_scope=dict(type="str", choices=["system", "user"], default="system"),
        ),
        required_if=[("state", "inspected", ("commit",)), ("state", "started", ("commit", "session_id")),
                     ("state", "completed", ("session_id",)), ("state", "undone", ("session_id",)),
                     ("state", "adopted", ("commit", "session_id"))],
        supports_check_mode=True,
    )
    p = module.params
    if not p["systemd_unit"] and p["server_mode"] == "systemd":
        module.fail_json(msg="server mode systemd needs praxis_systemd_unit; set it or choose another praxis_server_mode")
    home = os.path.join(p["project_dir"], p["praxis_home_name"])
    try:
        STATES[p["state"]](module, p, home)
    except (install.InstallError, procutil.ProcessError, ValueError, OSError, RuntimeError) as exc:
        module.fail_json(msg="praxis_install %s failed for %s: %s" % (p["state"], p["project_dir"], exc))


if __name__ == "__main__":
    main()
