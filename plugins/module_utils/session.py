# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record a finished phase in the session's facts file, checking the session still owns the lock.

The phase modules (praxis_backup, praxis_content, praxis_server, praxis_health) call this right after
their work succeeds (option `record_phase`), so a phase costs one task instead of two; praxis_state
`phase_done` is the same call for anything else.
"""

from __future__ import annotations

from typing import Optional

from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states


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
    return after


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
