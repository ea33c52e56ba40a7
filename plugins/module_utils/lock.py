# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The upgrade lock `.praxis-os/.upgrade-lock`: one upgrade per installation at a time.

The lock is created with O_CREAT|O_EXCL, so of two sessions racing for a free lock exactly one wins.
Its JSON names the owner (`session_id, run_id, started_at, controller, host, target_commit`). A lock
is *stale* when its session is recorded as finished in the facts file or it is older than
`stale_after` seconds; a stale lock (or any lock, with `break_lock`) is taken over by replacing it
atomically, and the previous owner is returned so that it can be reported.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
from typing import Any, Dict, Optional, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import atomic_write_json, fsync_dir
from ansible_collections.praxis.upgrade.plugins.module_utils.state import FINAL_STATUSES, iso, parse_iso, utc_now

LOCK_NAME = ".upgrade-lock"
LOCK_MODE = 0o644
OWNER_KEYS = ("session_id", "run_id", "started_at", "controller", "host", "target_commit")
DEFAULT_STALE_AFTER = 86400
BREAK_HINT = "wait for it to finish, or re-run with -e praxis_break_lock=true if you are sure no upgrade is running there"

Owner = Dict[str, Any]


class LockHeld(RuntimeError):
    """The lock belongs to another live session."""

    def __init__(self, path: str, owner: Owner, reason: str) -> None:
        self.path = path
        self.owner = owner
        self.reason = reason
        super().__init__(held_message(path, owner, reason))


def lock_path(praxis_home: str) -> str:
    return os.path.join(praxis_home, LOCK_NAME)


def describe_owner(owner: Owner) -> str:
    return "session %s (controller %s, host %s, target %s) since %s" % (
        owner.get("session_id"),
        owner.get("controller") or "unknown",
        owner.get("host") or "unknown",
        owner.get("target_commit") or "unknown",
        owner.get("started_at"),
    )


def held_message(path: str, owner: Owner, reason: str) -> str:
    return "the upgrade lock %s is held by %s (%s); %s" % (path, describe_owner(owner), reason, BREAK_HINT)


def _corrupt(path: str, why: str) -> ValueError:
    return ValueError(
        "upgrade lock %s is corrupt (%s); if no upgrade is running on this installation, re-run with "
        "-e praxis_break_lock=true (or remove the file)" % (path, why)
    )


def read_lock(path: str) -> Optional[Owner]:
    """The lock owner, None when there is no lock; ValueError (with the next step) when corrupt."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _corrupt(path, "not valid JSON: %s" % exc) from exc
    if not isinstance(owner, dict):
        raise _corrupt(path, "not a JSON object")
    if not isinstance(owner.get("session_id"), str) or not owner["session_id"]:
        raise _corrupt(path, "no session_id")
    try:
        parse_iso(owner.get("started_at"))
    except ValueError as exc:
        raise _corrupt(path, "started_at %r is not a timestamp" % (owner.get("started_at"),)) from exc
    return owner


def lock_status(
    lock: Optional[Owner],
    session_id: Optional[str],
    controller: Optional[str] = None,
    stale_after: int = DEFAULT_STALE_AFTER,
    now: Optional[datetime.datetime] = None,
    session_record: Optional[dict] = None,
) -> Tuple[str, str]:
    """Classify `lock` for the session `session_id` that wants it: (free|ours|stale|foreign, reason).

    `session_record` is the state from the facts file (the last session on this installation). The
    same session driven from another `controller` is not ours: a second operator must not join a
    live run; it becomes ours only once stale (or broken).
    """
    if lock is None:
        return "free", "no lock is held"
    holder = lock.get("session_id")
    other_controller = bool(controller and lock.get("controller") and lock.get("controller") != controller)
    if session_id and holder == session_id and not other_controller:
        return "ours", "the lock belongs to this session %s" % session_id
    if session_record and session_record.get("session_id") == holder:
        status = session_record.get("status")
        if status in FINAL_STATUSES:
            return "stale", "its session %s is recorded as %s at %s" % (
                holder,
                status,
                session_record.get("finished_at"),
            )
    moment = now or utc_now()
    age = (moment - parse_iso(lock["started_at"])).total_seconds()
    if age > stale_after:
        return "stale", "it was taken %d s ago, more than the stale limit of %d s" % (age, stale_after)
    if holder == session_id:
        whose = "the same session driven from controller %s" % lock.get("controller")
    elif other_controller:
        whose = "another controller"
    else:
        whose = "another session"
    return "foreign", "held by %s for %d s, stale only after %d s" % (whose, max(age, 0), stale_after)


def make_owner(
    session_id: str,
    target_commit: Optional[str],
    controller: Optional[str] = None,
    host: Optional[str] = None,
    run_id: Optional[str] = None,
    started_at: Optional[str] = None,
) -> Owner:
    return {
        "session_id": session_id,
        "run_id": run_id,
        "started_at": started_at or iso(),
        "controller": controller,
        "host": host,
        "target_commit": target_commit,
    }


def _create_exclusive(path: str, owner: Owner) -> bool:
    """Create the lock with O_EXCL; False when it already exists."""
    data = (json.dumps(owner, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, LOCK_MODE)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        os.unlink(path)  # never leave a half-written lock behind
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True


def acquire(
    path: str,
    owner: Owner,
    stale_after: int = DEFAULT_STALE_AFTER,
    now: Optional[datetime.datetime] = None,
    session_record: Optional[dict] = None,
    break_lock: bool = False,
) -> Tuple[str, Optional[Owner]]:
    """Take the lock for `owner`; return (`acquired`|`ours`|`taken_over`, previous owner or None).

    A free lock is created exclusively; our own lock is kept as is; a stale lock, a corrupt one (with
    `break_lock`) or a live foreign one (with `break_lock`) is replaced atomically and its previous
    owner returned. A live foreign lock without `break_lock` raises LockHeld, a corrupt one ValueError.
    """
    for _attempt in range(3):
        if _create_exclusive(path, owner):
            return "acquired", None
        try:
            current = read_lock(path)
        except ValueError:
            if not break_lock:
                raise
            current, status = {"corrupt": True}, "broken"
        else:
            if current is None:
                continue  # released between our attempt and the read: try again
            status, reason = lock_status(
                current, owner.get("session_id"), owner.get("controller"), stale_after, now, session_record
            )
        if status == "ours":
            return "ours", None
        if status == "foreign" and not break_lock:
            raise LockHeld(path, current, reason)
        atomic_write_json(path, owner, LOCK_MODE)
        return "taken_over", current
    raise RuntimeError("could not take the upgrade lock %s: it keeps appearing and vanishing; re-run" % path)


def release(path: str, session_id: str) -> bool:
    """Remove the lock if it belongs to `session_id`; True if removed, False if missing or not ours."""
    current = read_lock(path)
    if current is None or current.get("session_id") != session_id:
        return False
    os.unlink(path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True
