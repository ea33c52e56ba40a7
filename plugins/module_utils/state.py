# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Session state: the facts file `.praxis-os/.cache/facts.d/praxis_upgrade.fact`.

One JSON document per installation describing the last (or current) upgrade session: which phases
are done with their evidence, the journal of in-flight swaps, and the final status. It is written
atomically after every change, so an interrupted run can be resumed from the first incomplete phase.
The functions that transform a state return a new dict and never touch the input (diff mode needs
the before and the after).
"""

from __future__ import annotations

import copy
import datetime
import os
from typing import Any, Dict, List, Optional

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import atomic_write_json, read_json

SCHEMA = 1
PHASES = ("preflight", "backup", "content", "server", "validate", "cleanup")
STATUSES = ("in_progress", "rolling_back", "completed", "failed", "rolled_back")
FINAL_STATUSES = ("completed", "failed", "rolled_back")
OPEN_STATUSES = ("in_progress", "rolling_back")
RECORDS_OP = "records"

# The session as a write-ahead state machine: (status before, event) -> status after. Every edge is
# saved in the facts file *before* what it announces is done (see docs/ARCHITECTURE.md, "Session").
# `None` stands for "no session recorded yet".
TRANSITIONS = {
    (None, "start"): "in_progress",
    ("completed", "start"): "in_progress",
    ("failed", "start"): "in_progress",
    ("rolled_back", "start"): "in_progress",
    ("in_progress", "resume"): "in_progress",
    ("in_progress", "phase_done"): "in_progress",
    ("in_progress", "records"): "in_progress",
    ("in_progress", "complete"): "completed",
    ("in_progress", "fail"): "failed",
    (None, "rollback"): "rolling_back",
    ("in_progress", "rollback"): "rolling_back",
    ("failed", "rollback"): "rolling_back",
    ("completed", "rollback"): "rolling_back",
    ("rolled_back", "rollback"): "rolling_back",
    ("rolling_back", "rollback"): "rolling_back",
    ("rolling_back", "rolled_back"): "rolled_back",
}


class TransitionError(ValueError):
    """An event that the session's status does not allow; the message says what to run instead."""


def check_transition(state: Optional[State], event: str) -> str:
    """The status `event` leads to from `state`; TransitionError (with the next step) when not allowed."""
    status = state["status"] if state else None
    after = TRANSITIONS.get((status, event))
    if after is not None:
        return after
    if status == "rolling_back":
        hint = ("its rollback from backup %s was interrupted; run playbooks/rollback.yml (or re-run "
                "playbooks/upgrade.yml) to finish it first" % ((state or {}).get("rollback") or {}).get("backup_path"))
    elif status == "in_progress":
        hint = "re-run playbooks/upgrade.yml to finish it, or playbooks/rollback.yml to undo it"
    else:
        hint = "start a new upgrade with playbooks/upgrade.yml"
    raise TransitionError("session %s is %s, so it cannot take '%s'. Next: %s"
                          % ((state or {}).get("session_id"), status or "not recorded", event, hint))


FACTS_REL = ".cache/facts.d/praxis_upgrade.fact"
FACTS_MODE = 0o644
ROLLBACK_HINT = "playbooks/rollback.yml"

State = Dict[str, Any]


# --- time ---------------------------------------------------------------------------------------

def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso(moment: Optional[datetime.datetime] = None) -> str:
    """UTC ISO-8601 with a `Z` suffix, second precision: `2026-11-24T10:15:00Z`."""
    moment = moment or utc_now()
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime.datetime:
    """Parse a timestamp written by `iso` (also accepts `+00:00` and fractional seconds)."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a timestamp: %r" % (text,))
    value = text[:-1] + "+00:00" if text.endswith("Z") else text
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def new_session_id(now: Optional[datetime.datetime] = None) -> str:
    """`YYYYMMDDTHHMMSSZ-<6 hex>`: sortable by start time, unique across hosts and retries."""
    moment = (now or utc_now()).astimezone(datetime.timezone.utc)
    return "%s-%s" % (moment.strftime("%Y%m%dT%H%M%SZ"), os.urandom(3).hex())


# --- documents ----------------------------------------------------------------------------------

def facts_path(praxis_home: str) -> str:
    return os.path.join(praxis_home, *FACTS_REL.split("/"))


def new_session(
    target_commit: Optional[str],
    installed_commit: Optional[str] = None,
    target_describe: Optional[str] = None,
    source_path: Optional[str] = None,
    controller: Optional[str] = None,
    host: Optional[str] = None,
    run_id: Optional[str] = None,
    session_id: Optional[str] = None,
    backup_path: Optional[str] = None,
    now: Optional[datetime.datetime] = None,
) -> State:
    """A fresh `in_progress` session (not saved)."""
    moment = now or utc_now()
    stamp = iso(moment)
    return {
        "schema": SCHEMA,
        "session_id": session_id or new_session_id(moment),
        "run_id": run_id,
        "status": "in_progress",
        "installed_commit": installed_commit,
        "target_commit": target_commit,
        "target_describe": target_describe,
        "source_path": source_path,
        "controller": controller,
        "host": host,
        "backup_path": backup_path,
        "completed_phases": [],
        "phases": {},
        "journal": [],
        "started_at": stamp,
        "updated_at": stamp,
        "finished_at": None,
        "reason": None,
    }


def _corrupt(path: str, why: str) -> ValueError:
    return ValueError(
        "session state file %s is corrupt (%s); move it aside (mv %s %s.corrupt) and re-run, "
        "or restore the installation with %s if an upgrade was interrupted" % (path, why, path, path, ROLLBACK_HINT)
    )


def validate(document: object, path: str) -> State:
    """Check the shape of a loaded state document; raise ValueError naming what is wrong."""
    if not isinstance(document, dict):
        raise _corrupt(path, "not a JSON object")
    if document.get("schema") != SCHEMA:
        raise _corrupt(path, "unknown schema %r, expected %d" % (document.get("schema"), SCHEMA))
    if not isinstance(document.get("session_id"), str) or not document["session_id"]:
        raise _corrupt(path, "no session_id")
    if document.get("status") not in STATUSES:
        raise _corrupt(path, "status %r is not one of %s" % (document.get("status"), ", ".join(STATUSES)))
    phases = document.get("completed_phases")
    if not isinstance(phases, list) or any(p not in PHASES for p in phases):
        raise _corrupt(path, "completed_phases %r is not a list of %s" % (phases, ", ".join(PHASES)))
    if not isinstance(document.get("phases"), dict):
        raise _corrupt(path, "phases is not a mapping")
    journal = document.get("journal")
    if not isinstance(journal, list) or any(not isinstance(e, dict) or not e.get("op") for e in journal):
        raise _corrupt(path, "journal is not a list of entries with an 'op'")
    return document


def load(path: str) -> Optional[State]:
    """The saved state, or None when there is none; ValueError (with the next step) when corrupt."""
    if not os.path.exists(path):
        return None
    try:
        document = read_json(path, "session state file")
    except ValueError as exc:
        raise _corrupt(path, "not valid JSON: %s" % (exc.__cause__ or exc)) from exc
    return validate(document, path)


def save(path: str, state: State, now: Optional[datetime.datetime] = None) -> State:
    """Stamp `updated_at` and write the state atomically (mode 0644); return the saved document."""
    saved = copy.deepcopy(state)
    saved["updated_at"] = iso(now)
    atomic_write_json(path, saved, FACTS_MODE)
    return saved


# --- transitions (pure) -------------------------------------------------------------------------

def mark_phase(
    state: State,
    phase: str,
    evidence: Optional[dict] = None,
    started_at: Optional[str] = None,
    now: Optional[datetime.datetime] = None,
) -> State:
    """Record `phase` as done with its evidence and timing; return the new state."""
    if phase not in PHASES:
        raise ValueError("unknown phase %r; phases are %s" % (phase, ", ".join(PHASES)))
    check_transition(state, "phase_done")
    moment = now or utc_now()
    finished = iso(moment)
    duration = None
    if started_at:
        duration = round(max(0.0, (moment - parse_iso(started_at)).total_seconds()), 3)
    result = copy.deepcopy(state)
    result["phases"][phase] = {
        "started_at": started_at,
        "finished_at": finished,
        "duration_s": duration,
        "evidence": copy.deepcopy(evidence) if evidence else {},
    }
    done = set(result["completed_phases"]) | {phase}
    result["completed_phases"] = [p for p in PHASES if p in done]
    return result


def last_activity(state: State) -> str:
    """When the session last finished something: the start of the phase that follows it."""
    finished = [p["finished_at"] for p in state["phases"].values() if p.get("finished_at")]
    return max(finished) if finished else state["started_at"]


def finish(
    state: State, status: str, reason: Optional[str] = None, now: Optional[datetime.datetime] = None,
    _checked: bool = False,
) -> State:
    """Close the session with a final status (`completed`, `failed`, `rolled_back`)."""
    if status not in FINAL_STATUSES:
        raise ValueError("final status must be one of %s, not %r" % (", ".join(FINAL_STATUSES), status))
    if not _checked:
        check_transition(state, {"completed": "complete", "failed": "fail", "rolled_back": "rolled_back"}[status])
    if status == "completed" and "cleanup" not in state["completed_phases"]:
        raise TransitionError("session %s cannot be completed before its records are written (completed: %s). "
                              "Next: re-run playbooks/upgrade.yml" % (state["session_id"],
                                                                      ", ".join(state["completed_phases"])))
    result = copy.deepcopy(state)
    result["status"] = status
    result["reason"] = reason
    result["finished_at"] = iso(now)
    return result


def begin_rollback(
    state: Optional[State],
    backup_path: Optional[str],
    reason: Optional[str],
    run_id: Optional[str] = None,
    now: Optional[datetime.datetime] = None,
) -> State:
    """`rolling_back`: written before the first restore step. Names the phases being undone and the backup.

    `completed_phases` is emptied here, so no later run can take a session that is being (or was)
    rolled back for a completed upgrade. Resuming an interrupted rollback keeps its backup and phases.
    """
    check_transition(state, "rollback")
    moment = now or utc_now()
    if state is None:
        result = new_session(None, run_id=run_id, now=moment)
    else:
        result = copy.deepcopy(state)
    if result["status"] == "rolling_back":
        return result  # resumed: the recorded backup and phases stay authoritative
    result["rollback"] = {
        "backup_path": backup_path,
        "reason": reason,
        "undoing": [p for p in result["completed_phases"] if p != "preflight"],
        "from_status": state["status"] if state else None,
        "run_id": run_id,
        "started_at": iso(moment),
        "finished_at": None,
        "evidence": {},
    }
    result["status"] = "rolling_back"
    result["completed_phases"] = []
    result["finished_at"] = None
    result["reason"] = reason
    result["journal"] = [e for e in result["journal"] if e.get("op") != RECORDS_OP]
    return result


def finish_rollback(state: State, evidence: Optional[dict] = None, reason: Optional[str] = None,
                    now: Optional[datetime.datetime] = None) -> State:
    """`rolled_back`: the restore, restart and probe are done; the evidence says how it went."""
    check_transition(state, "rolled_back")
    result = finish(dict(state, status="in_progress"), "rolled_back", reason or state.get("reason"), now=now,
                    _checked=True)
    result["completed_phases"] = []
    result["journal"] = []
    result["rollback"] = dict(result.get("rollback") or {}, finished_at=result["finished_at"],
                              evidence=copy.deepcopy(evidence or {}))
    return result


def rollback_backup(state: Optional[State]) -> Optional[str]:
    """The backup an interrupted rollback (`rolling_back`) is restoring, else None."""
    if state and state["status"] == "rolling_back":
        return (state.get("rollback") or {}).get("backup_path")
    return None


def begin_records(state: State, now: Optional[datetime.datetime] = None) -> State:
    """Announce the session's records (VERSION.txt, logs, base manifest, summaries) with one stamp.

    A resumed run finds the entry and writes the same records under the same stamp, so each record is
    written once per session. Only after `validate`: records never claim an unvalidated upgrade.
    """
    check_transition(state, "records")
    if "validate" not in state["completed_phases"]:
        raise TransitionError("session %s has not completed validate (completed: %s), so its records cannot be "
                              "written. Next: re-run playbooks/upgrade.yml"
                              % (state["session_id"], ", ".join(state["completed_phases"]) or "none"))
    if journal_get(state, RECORDS_OP):
        return copy.deepcopy(state)
    return with_journal(state, {"op": RECORDS_OP, "stamp": iso(now), "session_id": state["session_id"]})


def with_temp_paths(state: State, rels: List[str]) -> State:
    """Journal temporary paths (relative to the installation) before anything creates them."""
    result = copy.deepcopy(state)
    known = list(result.get("temp_paths") or [])
    result["temp_paths"] = known + [rel for rel in rels if rel not in known]
    return result


def next_phase(state: Optional[State]) -> Optional[str]:
    """The first phase not yet completed (None when all are done); `preflight` without a state."""
    done = set(state["completed_phases"]) if state else set()
    for phase in PHASES:
        if phase not in done:
            return phase
    return None


def is_interrupted(state: Optional[State]) -> bool:
    """An upgrade or a rollback that did not finish (`in_progress` or `rolling_back`)."""
    return bool(state) and state["status"] in OPEN_STATUSES


def resumable(state: Optional[State], target_commit: Optional[str]) -> bool:
    """An interrupted upgrade (not a rollback) to `target_commit`: the next upgrade run continues it."""
    return bool(state) and state["status"] == "in_progress" and state.get("target_commit") == target_commit


def blocking_message(state: Optional[State], target_commit: Optional[str], where: str) -> Optional[str]:
    """Why an upgrade to `target_commit` cannot start from `state` (None when it can)."""
    if state and state["status"] == "in_progress" and target_commit and state.get("target_commit") != target_commit:
        return interrupted_message(state, target_commit, where)
    return None


def interrupted_message(state: State, target_commit: Optional[str], where: str) -> str:
    """Why a new upgrade to another commit is refused while `state` is unfinished, and what to do."""
    return (
        "an interrupted upgrade session %s (to %s, started %s, completed phases: %s, backup %s) is "
        "recorded in %s, but this run targets %s; run %s to restore the backup of that session, or "
        "re-run the upgrade with the source at %s to finish it"
        % (
            state["session_id"],
            state.get("target_commit"),
            state.get("started_at"),
            ", ".join(state["completed_phases"]) or "none",
            state.get("backup_path") or "none",
            where,
            target_commit,
            ROLLBACK_HINT,
            state.get("target_commit"),
        )
    )


# --- journal of in-flight operations ------------------------------------------------------------

def _journal_entry(entry: dict) -> dict:
    if not isinstance(entry, dict) or not isinstance(entry.get("op"), str) or not entry["op"]:
        raise ValueError("journal entry %r needs a non-empty 'op'" % (entry,))
    return copy.deepcopy(entry)


def with_journal(state: State, entry: dict) -> State:
    """Replace the journal entry of the same `op` (or append it); return the new state."""
    entry = _journal_entry(entry)
    result = copy.deepcopy(state)
    result["journal"] = [e for e in result["journal"] if e.get("op") != entry["op"]] + [entry]
    return result


def without_journal(state: State, op: str) -> State:
    result = copy.deepcopy(state)
    result["journal"] = [e for e in result["journal"] if e.get("op") != op]
    return result


def journal_get(state: Optional[State], op: str) -> Optional[dict]:
    for entry in (state or {}).get("journal", []):
        if entry.get("op") == op:
            return entry
    return None


def _load_existing(path: str) -> State:
    state = load(path)
    if state is None:
        raise ValueError(
            "no upgrade session recorded in %s; start one first (praxis.upgrade.praxis_state state=started)" % path
        )
    return state


def journal_set(path: str, entry: dict) -> State:
    """Load the state at `path`, record `entry` (replacing the same `op`), save; return it."""
    return save(path, with_journal(_load_existing(path), entry))


def journal_clear(path: str, op: str) -> State:
    """Load the state at `path`, drop every entry of `op`, save; return it."""
    return save(path, without_journal(_load_existing(path), op))
