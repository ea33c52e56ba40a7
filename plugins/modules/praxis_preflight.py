#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_preflight
short_description: Check that a prAxIs OS installation can be upgraded, changing nothing
version_added: "1.0.0"
description:
  - Read-only facts and checks of one installation before an upgrade (phase C(preflight)).
  - The project directory exists and is absolute; C(<project>/.praxis-os) is a real directory inside the
    project (a symlink to another project's installation is refused, naming both paths) and an installation
    (C(mcp_server/) plus C(VERSION.txt) or C(venv/)); the installed commit (C(commit=) line of
    C(VERSION.txt), else the base manifest); the venv python runs; free disk is at least twice what
    the upgrade writes plus what the backup copies; no live lock of another session; the last session
    in the facts file is readable and not an interrupted upgrade to another commit; the framework trees
    hold no symlink leaving the installation and no name that is not printable UTF-8 (each is named); the
    base manifest, when present, is valid.
  - The action plugin of the same name first checks every C(praxis_*) variable the host sees against the
    operator table (README, C(plugins/module_utils/inputs.py)) on the controller; a bad value or an unknown
    C(praxis_*) name (a likely typo) fails before this module runs.
  - All checks that can be made are made; the task fails listing every problem with the next step.
  - Never changes anything, so it runs for real in check mode.
  - Sets C(ansible_local.praxis_upgrade) from the session facts file, as C(ansible.builtin.setup) with
    C(fact_path) would, so a play needs no separate fact-gathering task.
  - With O(probe), when every check passed, it also probes the installed server over MCP exactly as
    M(praxis.upgrade.praxis_health) with C(fail_on_unhealthy=false) would (over C(http) when this project's server
    runs, else a fresh C(stdio) server spawned and stopped again) and returns the result as RV(health), so the
    play needs no separate probe task. An unhealthy server does not fail the task.
author:
  - praxis.upgrade contributors (@praxis-upgrade)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  project_dir:
    description: Absolute path of the project holding the installation (C(praxis_project_dir)).
    type: path
    required: true
  praxis_home_name:
    description: Name of the installation directory inside the project.
    type: str
    default: .praxis-os
  target_commit:
    description:
      - Commit the upgrade would install.
      - Omit it for a plain status check (as C(playbooks/status.yml) does); RV(up_to_date) is then false.
    type: str
  server_mode:
    description: Requested server mode (C(praxis_server_mode)); resolved into RV(server_mode) per SPEC 5.
    type: str
    choices: [auto, none, process, systemd]
    default: auto
  systemd_unit:
    description: systemd unit running the server, for C(systemd) mode (C(praxis_systemd_unit)).
    type: str
    default: ""
  check_disk:
    description: Whether to check free disk space (a status check does not need it).
    type: bool
    default: true
  controller:
    description: Who drives the upgrade (C(user@host)); an interrupted session is resumed only from the same controller.
    type: str
  bytes_to_write:
    description: Size in bytes of what the upgrade writes (from the controller's source information).
    type: int
    default: 0
  files_to_write:
    description: Number of files the upgrade writes (the source's file count), for the block-rounded disk estimate.
    type: int
    default: 0
  lock_stale_after:
    description: Age in seconds after which a lock is stale.
    type: int
    default: 86400
  break_lock:
    description: Do not fail on a live lock of another session or a corrupt lock (it will be taken over).
    type: bool
    default: false
  run:
    description:
      - Identity of this C(ansible-playbook) run (lookup P(praxis.upgrade.praxis_controller#lookup)); a lock of
        another run is judged alive or gone from it (SPEC 4).
    type: dict
  session_id:
    description: Session that wants to resume; defaults to the interrupted session for the same target, if any.
    type: str
  python_timeout:
    description: Seconds the venv python may take to start.
    type: int
    default: 30
  workflows:
    description:
      - The entries of C(workflows/) the upgrade owns (RV(praxis.upgrade.praxis_source#module:workflows)). The tree
        checks and the backup's disk estimate look only at them (and those the base manifest lists), never at the
        operator's own workflows. Unset, all of C(workflows/).
    type: list
    elements: str
  source_installs:
    description:
      - Installs of the source's history (RV(praxis.upgrade.praxis_source#module:installs)). Without a base
        manifest, the installed commit is identified by matching the installed trees against them; when
        none matches (a shallow or one-commit source), preflight refuses.
    type: dict
  probe:
    description: Probe the installed server over MCP after the checks (RV(health)).
    type: bool
    default: false
  server_env:
    description: Extra environment of a C(stdio) probe's server (C(praxis_server_env)), as O(praxis.upgrade.praxis_health#module:env).
    type: dict
    default: {}
  health_timeout:
    description: Seconds the O(probe) may take (C(praxis_health_timeout)).
    type: float
    default: 60
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Check the installation before upgrading it
  praxis.upgrade.praxis_preflight:
    project_dir: "{{ praxis_project_dir }}"
    praxis_home_name: "{{ praxis_home_name }}"
    target_commit: "{{ source.commit }}"
    controller: "{{ praxis_controller }}"
    bytes_to_write: "{{ source.bytes }}"
    lock_stale_after: "{{ praxis_lock_stale_after }}"
    break_lock: "{{ praxis_break_lock }}"
    probe: true
    health_timeout: "{{ praxis_health_timeout }}"
  register: preflight

- name: Skip the upgrade when the installation is already there
  ansible.builtin.meta: end_host
  when: preflight.up_to_date
"""

RETURN = r"""
ansible_facts:
  description:
    - C(ansible_local.praxis_upgrade), the last session from the facts file, exactly as
      C(ansible.builtin.setup) with C(fact_path=<praxis_home>/.cache/facts.d) would set it.
  returned: success
  type: dict
started_at:
  description: When preflight began on the target (UTC ISO-8601, the target's clock); the upgrade records it as
    the start of the C(preflight) phase and the run report's timeline starts this host's row there.
  returned: always
  type: str
  sample: "2026-11-24T10:15:00Z"
server_mode:
  description: Resolved server mode (C(none), C(process) or C(systemd)).
  returned: always
  type: str
  sample: process
server_mode_reason:
  description: Why that mode was chosen.
  returned: always
  type: str
server_pid:
  description: Verified pid of this project's running server (alive, in this project, running mcp_server), else null.
  returned: always
  type: int
health:
  description:
    - With O(probe), the MCP probe of the installed server, else null. Its keys are those of the result of
      M(praxis.upgrade.praxis_health), for example C(healthy), C(tools), C(errors), C(response_time_ms), C(transport),
      C(url) and C(pid).
  returned: always
  type: dict
  sample: {"healthy": true, "tools": ["search_standards", "get_server_info"], "errors": [], "transport": "http"}
ide_server_pid:
  description:
    - Pid of this project's server when an IDE launched it (C(--transport stdio) or C(dual)); it belongs to the
      editor and is never stopped or replaced, so the upgrade runs in server mode C(none) for this host. Else null.
  returned: always
  type: int
praxis_home:
  description: Absolute path of the installation.
  returned: always
  type: str
installed:
  description: Whether the directory is a prAxIs OS installation.
  returned: always
  type: bool
installed_commit:
  description:
    - Installed commit from C(VERSION.txt) (or the base manifest); without a base manifest, the commit
      whose install matches the installed trees (O(source_installs)); null when unknown.
  returned: always
  type: str
installed_commit_source:
  description: Where RV(installed_commit) came from (C(VERSION.txt or base manifest), or matched in the source's history).
  returned: always
  type: str
installed_commit_match:
  description: The history match (C(commit), C(exact), C(differing), C(files)) when the commit was identified by matching.
  returned: always
  type: dict
installed_requirements_key:
  description: Requirement-set key of C(mcp_server/requirements.txt) (comments, blank lines and order do not count).
  returned: when the file exists
  type: str
installed_requirements_sha256:
  description: SHA-256 of C(mcp_server/requirements.txt), null when absent.
  returned: always
  type: str
venv_python:
  description: Path of the venv interpreter.
  returned: always
  type: str
venv_python_version:
  description: C(sys.version) reported by the venv interpreter, null when it does not run.
  returned: always
  type: str
disk_free_bytes:
  description: Bytes available to the user on the file system of the installation.
  returned: always
  type: int
disk_needed_bytes:
  description:
    - Bytes the upgrade needs free, counted in allocated blocks (C(st_blocks), sizes rounded up to the file
      system's block) with a margin of 2 - 2 x (backup copies + venv snapshot directories and manifests +
      staging (archive, unpacked source, staged mcp_server, content writes) + records).
  returned: always
  type: int
backup_bytes:
  description: Bytes the backup's copies allocate (framework trees, records, base manifest, C(.gitignore)).
  returned: always
  type: int
disk_estimate:
  description: The parts of RV(disk_needed_bytes) (C(backup_bytes), C(venv_snapshot_bytes), C(staging_bytes),
    C(index_bytes) - the search index built beside the live one, C(records_bytes), C(needed_bytes), C(margin)).
  returned: when the disk is checked
  type: dict
lock:
  description: Owner of the upgrade lock, or null.
  returned: always
  type: dict
lock_status:
  description:
    - C(free), C(ours), C(stale), C(foreign), C(broken) (corrupt, only with O(break_lock)) or C(unverified)
      (another run of this controller, checked on the controller when the session starts).
  returned: always
  type: str
lock_reason:
  description: Why the lock has that status.
  returned: always
  type: str
last_session:
  description: Session state document of the last upgrade session, or null.
  returned: always
  type: dict
resume:
  description: Whether an interrupted (C(in_progress)) session for this target exists and will be resumed.
  returned: always
  type: bool
resume_session_id:
  description: Id of that session, or null.
  returned: always
  type: str
completed_phases:
  description: Phases that session has completed (empty when not resuming).
  returned: always
  type: list
  elements: str
up_to_date:
  description: Installed commit equals O(target_commit) and no session is in progress.
  returned: always
  type: bool
server_state:
  description: Contents of C(.mcp_server_state.json), or null when absent or unreadable.
  returned: always
  type: dict
problems:
  description: Every check that failed, with its next step (empty on success).
  returned: always
  type: list
  elements: str
warnings_found:
  description: Things worth knowing that do not stop the upgrade (for example an unreadable server state file).
  returned: always
  type: list
  elements: str
"""

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils import backup
from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import mcp_client
from ansible_collections.praxis.upgrade.plugins.module_utils import procutil
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.module_utils import target_checks
from ansible_collections.praxis.upgrade.plugins.module_utils import installs
from ansible_collections.praxis.upgrade.plugins.module_utils.install import recorded_commit
from ansible_collections.praxis.upgrade.plugins.module_utils.requirements import requirements_file_key
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import sha256_file


def installed_commit(home):
    """Last `commit=` line of VERSION.txt, else the commit of the base manifest, else None (one rule: install.py)."""
    return recorded_commit(home)


def python_version(python, timeout):
    """(sys.version, None) when the interpreter runs, else (None, why)."""
    if not os.path.exists(python):
        return None, "%s does not exist" % python
    try:
        proc = subprocess.run([python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, "%s did not answer within %d s" % (python, timeout)
    except OSError as exc:
        return None, "%s cannot be run: %s" % (python, exc)
    if proc.returncode != 0:
        return None, "%s exited with %d: %s" % (python, proc.returncode, (proc.stderr or "").strip()[-300:])
    return proc.stdout.strip(), None


class Preflight:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.problems = []
        self.notes = []
        self.facts = dict(
            started_at=states.iso(),  # when this host's run began (its phase timeline starts here)
            praxis_home=None, installed=False, installed_commit=None, installed_requirements_sha256=None,
            venv_python=None, venv_python_version=None, disk_free_bytes=None, disk_needed_bytes=None,
            backup_bytes=None, lock=None, lock_status=None, lock_reason=None, last_session=None, resume=False,
            resume_session_id=None, completed_phases=[], up_to_date=False, server_state=None,
            server_mode=None, server_mode_reason=None, server_pid=None, ide_server_pid=None, health=None,
        )

    def stop(self, msg):
        self.facts.update(problems=[msg], warnings_found=self.notes, changed=False)
        self.module.fail_json(msg=msg, **self.facts)

    def locate(self):
        project = self.p["project_dir"]
        if not os.path.isabs(project):
            self.stop("project_dir %s is not absolute; set praxis_project_dir to the absolute path of the project"
                      % project)
        if not os.path.isdir(project):
            self.stop("project directory %s does not exist on this host; check praxis_project_dir for it in the "
                      "inventory" % project)
        home = os.path.join(project, self.p["praxis_home_name"])
        self.facts["praxis_home"] = home
        foreign = target_checks.home_problem(project, home) if os.path.lexists(home) else None
        if foreign:
            self.stop(foreign)
        if not os.path.isdir(home):
            self.stop("%s has no %s directory, so prAxIs OS is not installed there; install it first or fix "
                      "praxis_project_dir / praxis_home_name" % (project, self.p["praxis_home_name"]))
        # mcp_server/ may be moved aside by a swap a crash interrupted: the resumed session finishes it
        has_server = os.path.isdir(os.path.join(home, "mcp_server")) or self.swap_in_flight(home)
        has_record = os.path.isfile(os.path.join(home, "VERSION.txt")) or os.path.isdir(os.path.join(home, "venv"))
        if not (has_server and has_record):
            self.stop("%s is not a prAxIs OS installation (it needs mcp_server/ and VERSION.txt or venv/); "
                      "install prAxIs OS there first or fix praxis_project_dir / praxis_home_name" % home)
        self.facts["installed"] = True
        return home

    @staticmethod
    def swap_in_flight(home):
        """Whether an interrupted session's journal records an mcp_server swap still in flight."""
        try:
            last = states.load(states.facts_path(home))
        except ValueError:
            return False
        return states.is_interrupted(last) and states.journal_get(last, "swap") is not None

    def versions(self, home):
        # docs-made installs (no base manifest, no VERSION.txt): commit matched in the source's history
        found, problems = installs.preflight_facts(home, self.p["source_installs"], installed_commit(home))
        self.facts.update(found)
        self.problems.extend(problems)
        requirements = os.path.join(home, "mcp_server", "requirements.txt")
        if os.path.isfile(requirements):
            self.facts["installed_requirements_sha256"] = sha256_file(requirements)
            self.facts["installed_requirements_key"] = requirements_file_key(requirements)
        python = os.path.join(home, "venv", "bin", "python")
        self.facts["venv_python"] = python
        version, why = python_version(python, self.p["python_timeout"])
        self.facts["venv_python_version"] = version
        if why:
            self.problems.append(
                "the venv python of %s does not work (%s); recreate it: python3 -m venv %s && %s -m pip install "
                "-r %s" % (home, why, os.path.join(home, "venv"), python, requirements))

    def disk(self, home):
        stats = os.statvfs(home)
        free = stats.f_bavail * stats.f_frsize
        need = target_checks.disk_need(home, os.path.dirname(home), self.p["bytes_to_write"],
                                       self.p["files_to_write"], stats.f_frsize,
                                       paths=self.owned(home, target_checks.DEFAULT_PATHS))
        self.facts.update(disk_free_bytes=free, disk_needed_bytes=need["needed_bytes"],
                          backup_bytes=need["backup_bytes"], disk_estimate=need)
        if free < need["needed_bytes"]:
            self.problems.append(target_checks.disk_message(home, need, free))

    def owned(self, home, paths):
        """`paths` with workflows/ narrowed to what the upgrade owns there (the backup's rule)."""
        try:
            return backup.owned_paths(home, paths, self.p["workflows"])
        except backup.BackupError as exc:
            self.problems.append(str(exc))
            return list(paths)

    def trees(self, home):
        """Framework trees and the base manifest, checked now rather than after the lock is taken."""
        self.problems.extend(target_checks.tree_problems(home, self.owned(home, target_checks.FRAMEWORK_TREES)))
        base = target_checks.base_manifest_problem(home)
        if base:
            self.problems.append(base)

    def session(self, home):
        path = states.facts_path(home)
        try:
            last = states.load(path)
        except ValueError as exc:
            self.problems.append(str(exc))
            return None
        self.facts["last_session"] = last
        target = self.p["target_commit"]
        blocked = states.blocking_message(last, target, path)
        if blocked:
            self.problems.append(blocked)
        elif target and states.resumable(last, target):
            self.facts.update(resume=True, resume_session_id=last["session_id"],
                              completed_phases=list(last["completed_phases"]))
        self.facts["up_to_date"] = bool(target) and self.facts["installed_commit"] == target and not states.is_interrupted(last)
        return last

    def lock(self, home, last):
        path = locks.lock_path(home)
        try:
            current = locks.read_lock(path)
        except ValueError as exc:
            self.facts.update(lock_status="broken", lock_reason=str(exc))
            if self.p["break_lock"]:
                self.notes.append("%s; it will be taken over (break_lock)" % exc)
            else:
                self.problems.append(str(exc))
            return
        session_id = self.p["session_id"] or self.facts["resume_session_id"]
        status, reason = locks.lock_status(current, session_id, self.p["controller"], self.p["lock_stale_after"],
                                           session_record=last, run=self.p["run"])
        if status == "foreign" and locks.needs_controller_check(current, self.p["run"], locks.boot_id()):
            # another run of this controller, which only the controller can check: praxis_state does
            self.notes.append("the upgrade lock %s is held by %s, a run of this controller; it is checked on the "
                              "controller when the session starts" % (path, locks.describe_owner(current)))
            status = "unverified"
        self.facts.update(lock=current, lock_status=status, lock_reason=reason)
        if status == "foreign":
            message = locks.held_message(path, current, reason)
            if self.p["break_lock"]:
                self.notes.append("%s; it will be broken (break_lock)" % message)
            else:
                self.problems.append(message)
        elif status == "stale":
            self.notes.append("the upgrade lock %s of %s is stale (%s); it will be taken over"
                              % (path, locks.describe_owner(current), reason))

    def server_state(self, home):
        try:
            self.facts["server_state"] = procutil.read_server_state(home)
        except ValueError as exc:
            self.notes.append("%s; the server will be treated as not running from it" % exc)

    def server_mode(self, home):
        if self.facts["server_state"] is None and os.path.exists(procutil.state_file_path(home)):
            # corrupt state file (already warned about): no pid can be verified from it
            requested = self.p["server_mode"]
            mode = "systemd" if self.p["systemd_unit"] and requested == "auto" else requested
            mode = "none" if mode == "auto" else mode
            self.facts.update(server_mode=mode, server_mode_reason="the server state file is unreadable")
            return
        try:
            mode, reason = procutil.resolve_mode(self.p["server_mode"], self.p["systemd_unit"], home)
            found = procutil.classify_server(home)
        except ValueError as exc:
            self.problems.append(str(exc))
            return
        self.facts.update(server_mode=mode, server_mode_reason=reason, server_pid=found["pid"],
                          ide_server_pid=found["pid"] if found["kind"] == "ide" else None)

    def run(self):
        home = self.locate()
        self.versions(home)
        self.trees(home)
        if self.p["check_disk"]:
            self.disk(home)
        last = self.session(home)
        self.lock(home, last)
        self.server_state(home)
        self.server_mode(home)
        for note in self.notes:
            self.module.warn(note)
        self.facts.update(changed=False, problems=self.problems, warnings_found=self.notes)
        # what setup with fact_path=<home>/.cache/facts.d would give, without a second task
        self.facts["ansible_facts"] = {"ansible_local": {"praxis_upgrade": self.facts["last_session"] or {}}}
        if self.problems:
            self.module.fail_json(
                msg="preflight of %s found %d problem(s): %s" % (home, len(self.problems), " | ".join(self.problems)),
                **self.facts)
        if self.p["probe"]:
            self.probe(home)
        self.module.exit_json(**self.facts)

    def probe(self, home):
        """The server's health before the upgrade (tools before), as praxis_health would report it."""
        self.facts["health"] = mcp_client.probe_server("http" if self.facts["server_pid"] else "stdio", praxis_home=home,
                                                       extra_env=self.p["server_env"], timeout=self.p["health_timeout"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            praxis_home_name=dict(type="str", default=".praxis-os"),
            target_commit=dict(type="str"),
            server_mode=dict(type="str", default="auto", choices=["auto", "none", "process", "systemd"]),
            systemd_unit=dict(type="str", default=""),
            check_disk=dict(type="bool", default=True),
            controller=dict(type="str"),
            bytes_to_write=dict(type="int", default=0),
            files_to_write=dict(type="int", default=0),
            lock_stale_after=dict(type="int", default=locks.DEFAULT_STALE_AFTER),
            break_lock=dict(type="bool", default=False),
            session_id=dict(type="str"),
            run=dict(type="dict"),
            python_timeout=dict(type="int", default=30),
            source_installs=dict(type="dict"),
            workflows=dict(type="list", elements="str"),
            probe=dict(type="bool", default=False),
            server_env=dict(type="dict", default={}),
            health_timeout=dict(type="float", default=60.0),
        ),
        supports_check_mode=True,
    )
    Preflight(module).run()


if __name__ == "__main__":
    main()
