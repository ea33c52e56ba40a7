#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: praxis_state
short_description: Start, resume, record and finish a prAxIs OS upgrade session (state file and lock)
version_added: "1.0.0"
description:
  - Keeps the session state of an upgrade in C(<praxis_home>/.cache/facts.d/praxis_upgrade.fact)
    (JSON, written atomically; read back by M(ansible.builtin.setup) as C(ansible_local.praxis_upgrade))
    and the upgrade lock C(<praxis_home>/.upgrade-lock).
  - O(state=started) takes the lock (created exclusively) and starts a session, or resumes the
    interrupted C(in_progress) session when it targets the same commit. A stale lock (its session is
    recorded as finished, or older than O(lock_stale_after)) is taken over and reported; a live lock
    of another session fails the task with who holds it and since when.
  - O(state=phase_done) records a completed phase with its evidence and timing (and refreshes the lock's heartbeat).
  - O(state=rolling_back) is written before a rollback restores anything - it names the backup and the phases
    being undone and empties C(completed_phases). It resolves the backup (an interrupted rollback's recorded
    one first, else O(backup_name), else the session's, else the newest), checks that it belongs to this
    installation and verifies it; a refused backup changes nothing. A run that finds C(rolling_back) finishes
    that rollback (RV(resumed_rollback)).
  - O(state=completed) needs the C(cleanup) phase recorded (the records written by M(praxis.upgrade.praxis_report)).
  - O(state=completed), O(state=failed) and O(state=rolled_back) close the session, remove the temporary paths
    the session journalled, and release the lock.
  - O(state=completed) with O(keep_backups) then prunes the backups beyond that count (never the session's own),
    before the lock is released. A prune failure is only a warning (RV(prune_error)), the session stays completed.
  - The lock names the run (O(run)); a lock of another run that can still be alive is never shared or resumed.
author:
  - praxis.upgrade contributors (@praxis-upgrade)
notes:
  - Runs through an action plugin on the controller; when the lock's run is on this controller but the target
    is another machine, the plugin checks that run's process on the controller and passes O(gone_runs).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  praxis_home:
    description: Path of the installation's C(.praxis-os) directory.
    type: path
    required: true
  state:
    description: What to record.
    type: str
    choices: [started, phase_done, rolling_back, completed, failed, rolled_back]
    required: true
  run:
    description:
      - Identity of the C(ansible-playbook) run (lookup P(praxis.upgrade.praxis_controller#lookup)) -
        C(run_key), C(controller_host), C(controller_pid), C(controller_start), C(boot_id). Recorded in the lock.
    type: dict
  gone_runs:
    description: Run keys the controller checked and found gone (set by the action plugin, not by hand).
    type: list
    elements: str
    default: []
  server_mode:
    description:
      - With O(state=rolling_back), the server mode asked for (C(praxis_server_mode)); C(auto), or any value when an
        interrupted rollback is finished, gives the mode recorded before the upgrade (RV(server_mode)).
    type: str
  backup_name:
    description:
      - With O(state=rolling_back), the backup to restore, as a name in C(<praxis_home>/.backups/)
        (C(praxis_backup_name)). A value with C(/) or C(..) is refused.
    type: str
  session_id:
    description:
      - Session to act on. With O(state=started) and no interrupted session, the id of the new session
        (generated as C(YYYYMMDDTHHMMSSZ-<6 hex>) when omitted).
      - For the other states it must match the recorded session when given.
    type: str
  run_id:
    description: Controller run id shared by every host of one C(ansible-playbook) run.
    type: str
  installed_commit:
    description: Commit installed before the upgrade (recorded in a new session).
    type: str
  target_commit:
    description: Commit the upgrade installs. Required with O(state=started).
    type: str
  target_describe:
    description: C(git describe) of the target commit.
    type: str
  source_path:
    description: Controller path of the source checkout (recorded only).
    type: str
  controller:
    description:
      - Who drives the upgrade, for example C(user@controller-host). Recorded in the lock and the session.
      - An interrupted session is resumed only from the same controller while its lock is live.
    type: str
  host:
    description: Name of the target recorded in the lock; defaults to the target's host name.
    type: str
  phase:
    description: Phase completed, for O(state=phase_done).
    type: str
    choices: [preflight, backup, content, server, validate, cleanup]
  evidence:
    description: What proves the phase (counts, paths, checksums), stored with it.
    type: dict
    default: {}
  phase_started_at:
    description: UTC ISO-8601 start of the phase, to record its duration.
    type: str
  reason:
    description: Why the session ended this way (recorded with final states).
    type: str
  backup_path:
    description: Absolute path of the backup of this session, recorded when given.
    type: path
  lock_stale_after:
    description: Age in seconds after which a lock is stale (C(praxis_lock_stale_after)).
    type: int
    default: 86400
  break_lock:
    description: Take the lock even when another live session holds it, or when it is corrupt.
    type: bool
    default: false
  release_lock:
    description:
      - Release the lock (only if it belongs to this session).
      - Defaults to true for O(state=completed), O(state=failed) and O(state=rolled_back), false otherwise.
    type: bool
  keep_backups:
    description:
      - With O(state=completed), keep this many complete backups in C(<praxis_home>/.backups) (C(praxis_keep_backups),
        at least 1) and remove older ones; the session's own backup is never removed.
      - Omitted, nothing is pruned.
    type: int
attributes:
  check_mode:
    support: full
    details: Computes the session, lock decision and diff without writing anything.
  diff_mode:
    support: full
    details: Shows the state document before and after.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Start (or resume) the upgrade session and take the lock
  praxis.upgrade.praxis_state:
    praxis_home: "{{ praxis_project_dir }}/.praxis-os"
    state: started
    run_id: "{{ praxis_run_id }}"
    installed_commit: "{{ preflight.installed_commit }}"
    target_commit: "{{ source.commit }}"
    target_describe: "{{ source.describe }}"
    controller: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    lock_stale_after: "{{ praxis_lock_stale_after }}"
    break_lock: "{{ praxis_break_lock }}"
  register: session

- name: Record the backup phase
  praxis.upgrade.praxis_state:
    praxis_home: "{{ praxis_project_dir }}/.praxis-os"
    state: phase_done
    session_id: "{{ session.session_id }}"
    phase: backup
    phase_started_at: "{{ backup_started_at }}"
    backup_path: "{{ backup.path }}"
    evidence:
      files: "{{ backup.file_count }}"

- name: Announce a rollback before restoring anything (resolves and verifies the backup)
  praxis.upgrade.praxis_state:
    praxis_home: "{{ praxis_project_dir }}/.praxis-os"
    state: rolling_back
    backup_name: 2026-11-24-101500
    reason: requested by the operator
    run: "{{ lookup('praxis.upgrade.praxis_controller') }}"
  register: rollback

- name: Close the session as rolled back
  praxis.upgrade.praxis_state:
    praxis_home: "{{ praxis_project_dir }}/.praxis-os"
    state: rolled_back
    session_id: "{{ session.session_id }}"
    reason: "content phase failed: {{ ansible_failed_result.msg | default('unknown') }}"

- name: Complete the session, prune backups beyond three, release the lock
  praxis.upgrade.praxis_state:
    praxis_home: "{{ praxis_project_dir }}/.praxis-os"
    state: completed
    session_id: "{{ session.session_id }}"
    keep_backups: 3
"""

RETURN = r"""
session:
  description: The whole session state document after the change (what would be written in check mode).
  returned: always
  type: dict
session_id:
  description: Id of the session acted on.
  returned: always
  type: str
  sample: 20261124T101500Z-3f9a1c
resumed:
  description: Whether O(state=started) resumed an interrupted session instead of starting one.
  returned: always
  type: bool
lock_taken_over:
  description: Previous owner of a stale (or broken) lock that was taken over, else null.
  returned: always
  type: dict
lock_action:
  description:
    - What happened to the lock, one of C(acquired), C(ours) (already held by this session),
      C(taken_over), C(released), C(kept) (not ours, or release not asked) or C(none) (no lock).
  returned: always
  type: str
next_phase:
  description: First phase not yet completed, or null when all are.
  returned: always
  type: str
lock:
  description: Owner of the lock (C(session_id), C(run_id), C(started_at), C(heartbeat_at), C(controller), C(host),
    C(target_commit), C(run_key), C(controller_host), C(controller_pid), C(controller_start)) that blocked this run.
  returned: when a lock held by another run makes the task fail
  type: dict
controller_check:
  description: The run to check on the controller (the action plugin does), when this target cannot tell.
  returned: when a lock of another run of this controller blocks the task on a remote target
  type: dict
backup_path:
  description: With O(state=rolling_back), the verified backup to restore, or null when nothing was changed yet.
  returned: state is rolling_back
  type: str
server_mode:
  description: With O(state=rolling_back), the server mode to stop and start the server in.
  returned: state is rolling_back
  type: str
restore:
  description: With O(state=rolling_back), whether there is a backup to restore (false when nothing was changed yet).
  returned: state is rolling_back
  type: bool
backup_reason:
  description: Why that backup was chosen.
  returned: state is rolling_back
  type: str
resumed_rollback:
  description: With O(state=rolling_back), whether an interrupted rollback was found and is being finished.
  returned: state is rolling_back
  type: bool
failed_phase:
  description: With O(state=rolling_back) of an upgrade in progress, the first phase it had not completed.
  returned: state is rolling_back
  type: str
undoing:
  description: Phases the rollback undoes.
  returned: state is rolling_back
  type: list
  elements: str
removed_temp_paths:
  description: Journalled temporary paths removed when the session closed.
  returned: state is completed, failed or rolled_back
  type: list
  elements: str
pruned:
  description: Backups removed by O(keep_backups) (would be removed, in check mode).
  returned: state is completed and O(keep_backups) is set
  type: list
  elements: str
  sample: ["2026-11-20-093000"]
prune_error:
  description: Why pruning failed (the session is completed all the same), else null.
  returned: state is completed and O(keep_backups) is set
  type: str
"""

import copy
import os
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.praxis.upgrade.plugins.module_utils import backup as backups
from ansible_collections.praxis.upgrade.plugins.module_utils import faults
from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import session
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states

FINAL = ("completed", "failed", "rolled_back")


def _same(before, after):
    """Equal apart from the `updated_at` stamp that every save refreshes."""
    if before is None:
        return False
    return _unstamped(before) == _unstamped(after)


def _unstamped(document):
    return {key: value for key, value in document.items() if key != "updated_at"}


class Session:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.home = self.p["praxis_home"]
        self.facts = states.facts_path(self.home)
        self.lock = locks.lock_path(self.home)
        self.now = states.utc_now()
        self.run_identity = self.p["run"] or None
        self.result = dict(changed=False, resumed=False, lock_taken_over=None, lock_action="none")
        self.acquired = False

    def fail(self, msg):
        if self.acquired and not self.module.check_mode:
            try:  # a refusal after taking the lock leaves it as it was: free
                locks.release(self.lock, self.acquired)
            except (ValueError, OSError):
                pass
        self.module.fail_json(msg=msg, **self.result)

    def load(self):
        try:
            return states.load(self.facts)
        except ValueError as exc:
            self.fail(str(exc))

    def check_session_id(self, before):
        given = self.p["session_id"]
        if given and before and given != before["session_id"]:
            self.fail("session %s was asked for, but %s records session %s (%s). Next: re-run the playbook "
                      "without a session id, or inspect that file"
                      % (given, self.facts, before["session_id"], before["status"]))

    # --- the lock --------------------------------------------------------------------------------
    def owner(self, session_id, target):
        return locks.make_owner(session_id, target, self.p["controller"], self.p["host"], self.p["run_id"],
                                states.iso(self.now), self.run_identity)

    def lock_for(self, session_id, target, before):
        """Take (or keep) the lock for this run; fail naming the holder when another live run has it.
        In check mode only `locks.plan` (what acquire would do) runs."""
        take = locks.plan if self.module.check_mode else locks.acquire
        try:
            action, previous = take(self.lock, self.owner(session_id, target), stale_after=self.p["lock_stale_after"],
                                    now=self.now, session_record=before, break_lock=self.p["break_lock"],
                                    gone_runs=self.p["gone_runs"])
        except locks.LockHeld as exc:
            self.held(exc.owner, str(exc))
        except (ValueError, OSError) as exc:
            self.fail("cannot take the upgrade lock %s: %s" % (self.lock, exc))
        if action == "ours":
            previous = None
        if action in ("acquired", "taken_over"):
            self.acquired = session_id
        self.result.update(lock_action=action, lock_taken_over=previous)

    def held(self, current, message):
        self.result["lock"] = current
        if locks.needs_controller_check(current, self.run_identity, locks.boot_id()):
            self.result["controller_check"] = {key: current.get(key) for key in locks.RUN_KEYS}
        self.fail(message)

    def rekey_lock(self, session_id, target):
        """After a resume decided the session id under the lock, the lock names that session."""
        if self.module.check_mode:
            return
        current = locks.read_lock(self.lock)
        if current is not None and current.get("session_id") != session_id:
            locks.atomic_write_json(self.lock, dict(current, session_id=session_id, target_commit=target),
                                    locks.LOCK_MODE)
            self.acquired = session_id if self.acquired else self.acquired

    # --- started ---------------------------------------------------------------------------------
    def refuse_open_rollback(self, before):
        if before and before["status"] == "rolling_back":
            self.fail("the rollback of session %s from backup %s was interrupted; it must finish before any "
                      "upgrade. Next: run playbooks/rollback.yml (or re-run playbooks/upgrade.yml, which finishes "
                      "it first)" % (before["session_id"], states.rollback_backup(before)))

    def started(self, before):
        target = self.p["target_commit"]
        blocked = states.blocking_message(before, target, self.facts)
        if blocked:
            self.fail(blocked)
        planned = before["session_id"] if states.resumable(before, target) else (
            self.p["session_id"] or states.new_session_id(self.now))
        self.refuse_open_rollback(before)
        self.lock_for(planned, target, before)
        before = self.load()  # what the facts say now that this run holds the lock
        self.refuse_open_rollback(before)
        blocked = states.blocking_message(before, target, self.facts)
        if blocked:
            self.fail(blocked)
        if states.resumable(before, target):
            self.check_session_id(before)
            after = copy.deepcopy(before)
            for key in ("run_id", "controller", "host", "target_describe", "source_path"):
                if self.p[key] is not None:
                    after[key] = self.p[key]
            self.result["resumed"] = True
        else:
            try:
                states.check_transition(before, "start")
            except states.TransitionError as exc:
                self.fail(str(exc))
            after = states.new_session(
                target, installed_commit=self.p["installed_commit"], target_describe=self.p["target_describe"],
                source_path=self.p["source_path"], controller=self.p["controller"], host=self.p["host"],
                run_id=self.p["run_id"], session_id=planned if planned != (before or {}).get("session_id") else None,
                now=self.now)
            # preflight changed nothing, so its evidence is recorded when the session begins
            after = states.mark_phase(after, "preflight", self.p["evidence"], self.p["phase_started_at"],
                                      now=self.now)
        # write-ahead: every temporary path this session may create is journalled before it exists
        after = states.with_temp_paths(after, session.session_temp_paths(target, after["session_id"]))
        self.rekey_lock(after["session_id"], target)
        return after

    # --- phase_done ------------------------------------------------------------------------------
    def phase_done(self, before):
        try:
            session.checked_session(self.home, self.p["session_id"])
        except (session.SessionError, ValueError) as exc:
            self.fail(str(exc))
        try:
            after = states.mark_phase(before, self.p["phase"], self.p["evidence"],
                                      self.p["phase_started_at"] or states.last_activity(before), now=self.now)
        except ValueError as exc:
            self.fail("cannot record phase %s: %s; pass phase_started_at as UTC ISO-8601 like 2026-11-24T10:15:00Z"
                      % (self.p["phase"], exc))
        if self.p["backup_path"]:
            after["backup_path"] = self.p["backup_path"]
        if not self.module.check_mode:
            locks.heartbeat(self.lock, after["session_id"], self.now)
        return after

    # --- rolling_back ----------------------------------------------------------------------------
    def rolling_back(self, before):
        self.check_session_id(before)
        if before is not None and before["status"] != "rolling_back":
            try:
                states.check_transition(before, "rollback")
            except states.TransitionError as exc:
                self.fail(str(exc))
        sid = before["session_id"] if before else (self.p["session_id"] or states.new_session_id(self.now))
        self.lock_for(sid, (before or {}).get("target_commit"), before)
        before = self.load()
        try:
            path, why = session.rollback_target(self.home, before, self.p["backup_name"])
            if path:
                backups.check_restorable(path, self.home)
        except backups.BackupError as exc:
            self.fail(str(exc))
        resumed = bool(before and before["status"] == "rolling_back")
        asked = self.p["backup_name"]
        if resumed and asked and os.path.basename(path or "") != asked:
            self.module.warn("an interrupted rollback to %s is finished first; backup %s was not restored. Next: "
                             "run playbooks/rollback.yml -e praxis_backup_name=%s again" % (path, asked, asked))
        after = states.begin_rollback(before, path, self.p["reason"], self.p["run_id"], now=self.now)
        if before is None:
            after["session_id"] = sid
        failed_phase = states.next_phase(before) if before and before["status"] == "in_progress" else None
        recorded_mode = ((((before or {}).get("phases") or {}).get("preflight") or {}).get("evidence") or {}).get(
            "server_mode")
        mode = self.p["server_mode"]
        if recorded_mode and (resumed or mode in (None, "auto")):
            mode = recorded_mode  # the mode the server had before the upgrade, not what a crash left running
        self.result["server_mode"] = mode or "auto"
        self.result.update(backup_path=path, restore=bool(path), backup_reason=why, resumed_rollback=resumed,
                           undoing=after["rollback"]["undoing"], failed_phase=failed_phase)
        return after

    # --- final states ----------------------------------------------------------------------------
    def final(self, before):
        status = self.p["state"]
        if before is None:
            self.fail("no upgrade session is recorded in %s, so none can be closed as %s. Next: start one with "
                      "playbooks/upgrade.yml" % (self.facts, status))
        self.check_session_id(before)
        if before["status"] == status:
            return copy.deepcopy(before)  # already closed this way: nothing to do
        try:
            if status == "rolled_back":
                after = states.finish_rollback(before, self.p["evidence"], self.p["reason"], now=self.now)
            else:
                after = states.finish(before, status, self.p["reason"], now=self.now)
        except states.TransitionError as exc:
            self.fail(str(exc))
        if self.p["backup_path"]:
            after["backup_path"] = self.p["backup_path"]
        if status == "rolled_back":
            faults.fault_point("rollback.before_record")
        return after

    def prune(self, after):
        """Backups beyond keep_backups, never this session's; a failure is a warning (the session stands)."""
        try:
            done = backups.prune(os.path.join(self.home, ".backups"), self.p["keep_backups"],
                                 [after.get("backup_path") or ""], check=self.module.check_mode)
        except (backups.BackupError, ValueError) as exc:
            self.result.update(pruned=[], prune_error=str(exc))
            return
        except OSError as exc:
            self.result.update(pruned=[], prune_error="cannot remove %s: %s" % (exc.filename, exc.strerror or exc))
            return
        self.result.update(pruned=done["removed"], prune_error=None)

    def release(self, session_id):
        try:
            current = locks.read_lock(self.lock)
        except ValueError as exc:
            self.module.warn("the upgrade lock was not released: %s" % exc)
            return "kept"
        if current is None:
            return "none"
        if current.get("session_id") != session_id:
            self.module.warn("the upgrade lock %s is held by %s, not by session %s; it was left in place"
                             % (self.lock, locks.describe_owner(current), session_id))
            return "kept"
        if not self.module.check_mode:
            locks.release(self.lock, session_id)
        return "released"

    # --- driver ----------------------------------------------------------------------------------
    def run(self):
        if not os.path.isdir(self.home) or os.path.islink(self.home):
            self.fail("installation directory %s does not exist (or is a symlink); check praxis_project_dir and "
                      "praxis_home_name" % self.home)
        before = self.load()
        kind = self.p["state"]
        handler = {"started": self.started, "phase_done": self.phase_done, "rolling_back": self.rolling_back}
        after = handler.get(kind, self.final)(before)
        diff_before = before
        lock_changed = self.result["lock_action"] in ("acquired", "taken_over")

        release = self.p["release_lock"]
        if release is None:
            release = kind in FINAL
        state_changed = not _same(diff_before, after)
        if state_changed and not self.module.check_mode:
            try:
                after = states.save(self.facts, after, now=self.now)
            except OSError as exc:
                self.fail("cannot write the session state %s: %s. Next: check free space and permissions of %s"
                          % (self.facts, exc, self.home))
        self.acquired = False  # from here on the lock is this run's, recorded in the facts file
        if kind == "rolling_back":
            faults.fault_point("rollback.started")
        if kind in FINAL:
            self.result["removed_temp_paths"] = session.remove_temp_paths(self.home, after, self.module.check_mode)
        if kind == "completed" and self.p["keep_backups"] is not None:
            self.prune(after)
        if release:
            action = self.release(after["session_id"])
            self.result["lock_action"] = action
            lock_changed = lock_changed or action == "released"
        self.result.update(
            changed=(state_changed or lock_changed or bool(self.result.get("removed_temp_paths"))
                     or bool(self.result.get("pruned"))),
            session=after,
            session_id=after["session_id"],
            next_phase=states.next_phase(after) if after["status"] == "in_progress" else None,
        )
        if self.module._diff:
            self.result["diff"] = dict(prepared=session_diff_text(diff_before, after, self.result.get("lock_action")))
        self.module.exit_json(**self.result)


def session_diff_text(before, after, lock_action):
    """The session transition as one readable --diff line (the facts file's JSON is an internal record)."""
    was = "%s %s" % (before["session_id"], before["status"]) if before else "no session"
    text = "session: %s -> %s %s" % (was, after["session_id"], after["status"])
    if after.get("completed_phases"):
        text += " (done: %s)" % ", ".join(after["completed_phases"])
    if lock_action:
        text += "; lock: %s" % lock_action
    return text + "\n"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            praxis_home=dict(type="path", required=True),
            state=dict(type="str", required=True,
                       choices=["started", "phase_done", "rolling_back", "completed", "failed", "rolled_back"]),
            session_id=dict(type="str"),
            run_id=dict(type="str"),
            run=dict(type="dict"),
            gone_runs=dict(type="list", elements="str", default=[]),
            backup_name=dict(type="str"),
            server_mode=dict(type="str"),
            installed_commit=dict(type="str"),
            target_commit=dict(type="str"),
            target_describe=dict(type="str"),
            source_path=dict(type="str"),
            controller=dict(type="str"),
            host=dict(type="str"),
            phase=dict(type="str", choices=list(states.PHASES)),
            evidence=dict(type="dict", default={}),
            phase_started_at=dict(type="str"),
            reason=dict(type="str"),
            backup_path=dict(type="path"),
            lock_stale_after=dict(type="int", default=locks.DEFAULT_STALE_AFTER),
            break_lock=dict(type="bool", default=False),
            release_lock=dict(type="bool"),
            keep_backups=dict(type="int"),
        ),
        required_if=[("state", "started", ("target_commit",)), ("state", "phase_done", ("phase",))],
        supports_check_mode=True,
    )
    if module.params["host"] is None:
        module.params["host"] = socket.gethostname()
    Session(module).run()


if __name__ == "__main__":
    main()
