# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record a finished phase in the session's facts file, checking the session still owns the lock.

The phase modules (praxis_backup, praxis_content, praxis_server, praxis_health) call this right after
their work succeeds (option `record_phase`), so a phase costs one task instead of two; praxis_state
`phase_done` is the same call for anything else.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils import backup as backups
from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError,
    check_relpath,
    remove_path,
    write_temp_target,
)


class SessionError(ValueError):
    """The phase cannot be recorded; the message says why and what to do."""


def checked_session(praxis_home: str, session_id: Optional[str]) -> dict:
    """The in-progress session `session_id` (or the recorded one), still holding the upgrade lock."""
    path = states.facts_path(praxis_home)
    before = states.load(path)
    if before is None:
        raise SessionError("no upgrade session is recorded in %s; start one with praxis_state state=started first"
                           % path)
    if session_id and session_id != before["session_id"]:
        raise SessionError("session %s was asked for, but %s records session %s (%s); re-run the playbook "
                           "without a session id, or inspect that file" % (session_id, path, before["session_id"],
                                                                           before["status"]))
    if before["status"] != "in_progress":
        raise SessionError("session %s in %s is already %s; start a new session with state=started"
                           % (before["session_id"], path, before["status"]))
    lock_file = locks.lock_path(praxis_home)
    current = locks.read_lock(lock_file)
    if current is not None and current.get("session_id") != before["session_id"]:
        raise SessionError("session %s no longer holds the upgrade lock %s: it is held by %s (it was broken or "
                           "taken over); stop this run and check what the other session did before re-running"
                           % (before["session_id"], lock_file, locks.describe_owner(current)))
    return before


def record_phase(praxis_home: str, session_id: Optional[str], phase: str, evidence: Optional[dict] = None,
                 backup_path: Optional[str] = None, started_at: Optional[str] = None, check: bool = False) -> dict:
    """Mark `phase` done with its evidence; return the new session (not saved in check mode)."""
    before = checked_session(praxis_home, session_id)
    after = states.mark_phase(before, phase, evidence, started_at or states.last_activity(before))
    if backup_path:
        after["backup_path"] = backup_path
    if not check:
        after = states.save(states.facts_path(praxis_home), after)
        locks.heartbeat(locks.lock_path(praxis_home), after["session_id"])
    return after


def session_temp_paths(target_commit: Optional[str], session_id: str) -> List[str]:
    """Every temporary path an upgrade session may create (relative to the installation), journalled
    when the session starts, before any of them exists: the shipped archive, the unpacked source, the
    staged and the moved-aside server trees."""
    rels = [".cache/upgrade", "mcp_server.new-%s" % session_id, "mcp_server.old-%s" % session_id]
    if target_commit:
        rels.insert(0, ".cache/praxis-source-%s.tar.gz" % target_commit)
    return rels


# The records and state this product writes atomically (fsutil.write_temp_target names their temp files), by
# directory relative to the project. A run killed between the temp file and the rename leaves the temp file;
# the session's end removes it.
WRITE_TARGETS = {
    "": (r"\.gitignore", r"\.cursorrules(\.upstream)?"),
    ".cursor": (r"mcp\.json(\.upstream)?",),
    "{home}": (r"VERSION\.txt", r"UPDATE_LOG\.txt", r"INSTALLATION_SUMMARY\.md", r"\.install-journal\.json",
               r"\.upgrade-lock\.\d+"),
    "{home}/.cache": (r"base-manifest\.json", r"upgrade-summary-[0-9TZ]+\.(json|md)"),
    "{home}/.cache/facts.d": (r"praxis_upgrade\.fact",),
    "{home}/standards": (r"\.rebuild_index",),
}


def _lock_attempt_alive(entry: str) -> bool:
    """A lock temp file (`..upgrade-lock.<pid>.<hex>.tmp`) of a process still running: another run trying to
    take the lock right now, whose temp file is not ours to remove."""
    match = re.match(r"^\.\.upgrade-lock\.(\d+)\.", entry)
    if not match:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def stale_write_temps(praxis_home: str) -> List[str]:
    """Temp files an interrupted atomic write of one of our records left (paths relative to the project)."""
    home = os.path.abspath(praxis_home)
    project, name = os.path.split(home)
    found = []
    for where, targets in sorted(WRITE_TARGETS.items()):
        rel_dir = where.replace("{home}", name)
        target = re.compile(r"^(%s)$" % "|".join(targets))
        directory = os.path.join(project, rel_dir) if rel_dir else project
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for entry in sorted(names):
            path = os.path.join(directory, entry)
            if target.match(write_temp_target(entry) or "") and os.path.isfile(path) and not os.path.islink(path) \
                    and not _lock_attempt_alive(entry):
                found.append(os.path.join(rel_dir, entry) if rel_dir else entry)
    return found


def remove_temp_paths(praxis_home: str, state: dict, check: bool = False) -> List[str]:
    """Remove the journalled temporary paths that exist (relative, inside the installation only), and the
    temp files interrupted atomic writes of our records left (`stale_write_temps`, relative to the project)."""
    home = os.path.abspath(praxis_home)
    removed = []
    for rel in stale_write_temps(home):
        removed.append(rel)
        if not check:
            os.unlink(os.path.join(os.path.dirname(home), rel))
    for rel in state.get("temp_paths") or []:
        try:
            path = os.path.join(home, check_relpath(rel))
        except UnsafePathError:
            continue  # never remove outside the installation, whatever the file says
        if rel.split("/")[0] in ("mcp_server", "venv", "standards", "workflows", "specs", "workspace"):
            continue
        if os.path.lexists(path):
            removed.append(rel)
            if not check:
                remove_path(path)
    return removed


def rollback_target(praxis_home: str, state: Optional[dict], backup_name: Optional[str]) -> Tuple[Optional[str], str]:
    """Which backup a rollback restores, and why: (absolute path or None when nothing changed yet, reason).

    An interrupted rollback (`rolling_back`) finishes with its recorded backup; else the operator's
    `backup_name` (a name in this installation's `.backups/`); else the backup of the interrupted or
    failing upgrade session (None when it had not made one: nothing was changed yet); else the newest.
    """
    root = os.path.join(os.path.abspath(praxis_home), ".backups")
    recorded = states.rollback_backup(state)
    if recorded:
        return recorded, "the interrupted rollback of session %s restores %s" % (state["session_id"], recorded)
    if backup_name:
        return backups.resolve(root, backups.check_name(backup_name)), "backup %s was asked for" % backup_name
    if state and state["status"] == "in_progress":
        if state.get("backup_path"):
            return state["backup_path"], "the backup of session %s" % state["session_id"]
        made = backups.session_backup(root, state["session_id"])
        if made:
            return made["path"], "the backup session %s made before it was interrupted" % state["session_id"]
        return None, "session %s changed nothing before its backup was complete" % state["session_id"]
    return backups.resolve(root, None), "the newest complete backup"


def record_for(module, evidence: dict, backup_path: Optional[str] = None) -> Optional[dict]:
    """For a phase module: record `module.params['record_phase']` (if set, and not in check mode).

    Returns the new session, or None when nothing was to be recorded. Fails the task when the session
    cannot take the record (another session took the lock, the facts file is corrupt).
    """
    phase = module.params.get("record_phase")
    if not phase or module.check_mode:
        return None
    try:
        return record_phase(module.params["praxis_home"], module.params.get("session_id"), phase, evidence,
                            backup_path)
    except (SessionError, ValueError, OSError) as exc:
        module.fail_json(msg="the %s phase finished but could not be recorded in the session: %s" % (phase, exc))
    return None  # not reached: fail_json exits
