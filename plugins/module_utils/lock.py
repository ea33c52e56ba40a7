# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The upgrade lock `.praxis-os/.upgrade-lock`: one run per installation at a time.

The lock is created complete and exclusively (written to a temporary file, then hard-linked: link()
fails when the lock exists), so of two runs racing for a free lock exactly one wins. Its
JSON names the session and the *run* holding it: `run_key`, `controller_host`, `controller_pid` and
`controller_start` (the ansible-playbook process and its start time, in clock ticks since boot) and
`boot_id` (the controller's kernel boot), plus `heartbeat_at`, refreshed at every phase.

Classification of a lock for the run that wants it (`lock_status`):

- `free`    no lock.
- `ours`    it names this very run (same `run_key`).
- `stale`   its session is recorded finished in the facts file; or its run is provably gone (same
            controller machine: the pid is dead or runs a newer process; same controller host on a
            newer boot); or its last heartbeat is older than `stale_after` seconds.
- `foreign` anything else: the run can be alive. Never resumed, never shared.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
from typing import Any, Dict, Iterable, Optional, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import atomic_write_json, fsync_dir
from ansible_collections.praxis.upgrade.plugins.module_utils.procutil import is_stopped, proc_start_time
from ansible_collections.praxis.upgrade.plugins.module_utils.state import FINAL_STATUSES, iso, parse_iso, utc_now

LOCK_NAME = ".upgrade-lock"
LOCK_MODE = 0o644
RUN_KEYS = ("run_key", "controller_host", "controller_pid", "controller_start", "boot_id")
OWNER_KEYS = ("session_id", "run_id", "started_at", "heartbeat_at", "controller", "host", "target_commit") + RUN_KEYS
DEFAULT_STALE_AFTER = 86400
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
BREAK_HINT = ("Next: wait for that run to finish (or stop it), then re-run; re-run with -e praxis_break_lock=true "
              "only if you are sure no upgrade is running there")

Owner = Dict[str, Any]
Run = Dict[str, Any]


class LockHeld(RuntimeError):
    """The lock belongs to another run that can still be alive."""

    def __init__(self, path: str, owner: Owner, reason: str) -> None:
        self.path = path
        self.owner = owner
        self.reason = reason
        super().__init__(held_message(path, owner, reason))


# --- the run: which ansible-playbook process holds a lock ---------------------------------------

def boot_id(path: str = BOOT_ID_PATH) -> Optional[str]:
    try:
        with open(path, "r", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def start_ticks(pid: int) -> Optional[int]:
    """Start time of a running `pid` in clock ticks since boot, None when it is gone or has exited.

    procutil's /proc readers are the one rule for "is this process still the one we saw"; a run's
    liveness is that rule applied to the ansible-playbook process recorded in the lock."""
    return None if is_stopped(pid) else proc_start_time(pid)


def process_identity(pid: int) -> Run:
    """The identity of process `pid` on this machine, as recorded in a lock (see module docstring)."""
    host = socket.gethostname()
    start = start_ticks(pid)
    boot = boot_id()
    return {"controller_host": host, "controller_pid": pid, "controller_start": start, "boot_id": boot,
            "run_key": "%s:%s:%s:%s" % (host, boot, pid, start)}


def run_alive_here(run: Run, local_boot: Optional[str]) -> Optional[bool]:
    """Whether the run's process is alive, when this machine can tell (its boot id is ours); else None."""
    pid, start = run.get("controller_pid"), run.get("controller_start")
    if not run.get("boot_id") or run.get("boot_id") != local_boot or not isinstance(pid, int) or start is None:
        return None
    return start_ticks(pid) == start


def holder_gone(lock: Owner, me: Optional[Run], local_boot: Optional[str],
                gone_runs: Iterable[str] = ()) -> Optional[str]:
    """Why the run holding `lock` is provably gone, or None when it can be alive (or nobody can tell here)."""
    key = lock.get("run_key")
    if not key:
        return None
    if key in set(gone_runs):
        return "its run %s was checked on its controller: process %s is gone" % (key, lock.get("controller_pid"))
    alive = run_alive_here(lock, local_boot)
    if alive is False:
        return "its ansible-playbook process %s (started at tick %s) on %s no longer runs" % (
            lock.get("controller_pid"), lock.get("controller_start"), lock.get("controller_host"))
    if (me and me.get("controller_host") and me.get("controller_host") == lock.get("controller_host")
            and me.get("boot_id") and lock.get("boot_id") and me["boot_id"] != lock["boot_id"]):
        return "its controller %s has rebooted since (boot %s, now %s)" % (
            lock.get("controller_host"), lock["boot_id"], me["boot_id"])
    return None


def needs_controller_check(lock: Optional[Owner], me: Optional[Run], local_boot: Optional[str]) -> bool:
    """A lock of another run on *our* controller machine that this (remote) target cannot check."""
    return bool(lock and me and lock.get("run_key") and lock.get("run_key") != me.get("run_key")
                and lock.get("boot_id") and lock.get("boot_id") == me.get("boot_id")
                and lock.get("boot_id") != local_boot)


# --- the lock file ------------------------------------------------------------------------------

def lock_path(praxis_home: str) -> str:
    return os.path.join(praxis_home, LOCK_NAME)


def describe_owner(owner: Owner) -> str:
    run = ""
    if owner.get("controller_pid") is not None:
        run = ", ansible-playbook pid %s on %s" % (owner.get("controller_pid"), owner.get("controller_host"))
    return "run %s of session %s (controller %s%s, host %s, target %s) since %s, last heartbeat %s" % (
        owner.get("run_id") or "unknown",
        owner.get("session_id"),
        owner.get("controller") or "unknown",
        run,
        owner.get("host") or "unknown",
        owner.get("target_commit") or "unknown",
        owner.get("started_at"),
        owner.get("heartbeat_at") or owner.get("started_at"),
    )


def held_message(path: str, owner: Owner, reason: str) -> str:
    return "the upgrade lock %s is held by %s (%s). %s" % (path, describe_owner(owner), reason, BREAK_HINT)


def _corrupt(path: str, why: str) -> ValueError:
    return ValueError(
        "upgrade lock %s is corrupt (%s). Next: if no upgrade is running on this installation, re-run with "
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
    for key in ("started_at", "heartbeat_at"):
        if key == "heartbeat_at" and owner.get(key) is None:
            continue
        try:
            parse_iso(owner.get(key))
        except ValueError as exc:
            raise _corrupt(path, "%s %r is not a timestamp" % (key, owner.get(key))) from exc
    return owner


def lock_status(
    lock: Optional[Owner],
    session_id: Optional[str] = None,
    controller: Optional[str] = None,
    stale_after: int = DEFAULT_STALE_AFTER,
    now: Optional[datetime.datetime] = None,
    session_record: Optional[dict] = None,
    run: Optional[Run] = None,
    local_boot: Optional[str] = None,
    gone_runs: Iterable[str] = (),
) -> Tuple[str, str]:
    """Classify `lock` for the run `run` (session `session_id`): (free|ours|stale|foreign, reason).

    `session_record` is the state from the facts file. `local_boot` is this machine's boot id (read
    when not given). A lock without run identity (written by an older version) is ours only for the
    same session from the same controller, else judged by its age.
    """
    if lock is None:
        return "free", "no lock is held"
    holder = lock.get("session_id")
    my_key = (run or {}).get("run_key")
    if my_key and lock.get("run_key") == my_key:
        return "ours", "the lock belongs to this run %s" % my_key
    if not lock.get("run_key") and session_id and holder == session_id and not (
            controller and lock.get("controller") and lock.get("controller") != controller):
        return "ours", "the lock belongs to this session %s" % session_id
    if session_record and session_record.get("session_id") == holder:
        status = session_record.get("status")
        if status in FINAL_STATUSES:
            return "stale", "its session %s is recorded as %s at %s" % (holder, status,
                                                                        session_record.get("finished_at"))
    gone = holder_gone(lock, run, local_boot if local_boot is not None else boot_id(), gone_runs)
    if gone:
        return "stale", gone
    moment = now or utc_now()
    beat = lock.get("heartbeat_at") or lock["started_at"]
    age = (moment - parse_iso(beat)).total_seconds()
    if age > stale_after:
        return "stale", "its last heartbeat was %d s ago, more than the stale limit of %d s" % (age, stale_after)
    if lock.get("run_key"):
        whose = "another run that can still be alive"
    elif controller and lock.get("controller") and lock.get("controller") != controller:
        whose = "another controller"
    else:
        whose = "another session"
    return "foreign", "held by %s, last heartbeat %d s ago; stale only after %d s" % (whose, max(age, 0), stale_after)


def make_owner(
    session_id: str,
    target_commit: Optional[str],
    controller: Optional[str] = None,
    host: Optional[str] = None,
    run_id: Optional[str] = None,
    started_at: Optional[str] = None,
    run: Optional[Run] = None,
) -> Owner:
    stamp = started_at or iso()
    owner = {
        "session_id": session_id,
        "run_id": run_id,
        "started_at": stamp,
        "heartbeat_at": stamp,
        "controller": controller,
        "host": host,
        "target_commit": target_commit,
    }
    for key in RUN_KEYS:
        if run and run.get(key) is not None:
            owner[key] = run[key]
    return owner


def _create_exclusive(path: str, owner: Owner) -> bool:
    """Create the lock, complete, in one atomic step; False when it already exists.

    The JSON is written and fsynced to a private temporary file first, then hard-linked to the lock
    path: link() fails with EEXIST like O_CREAT|O_EXCL, but a racing reader never sees an empty or
    half-written lock (as it could between an O_EXCL create and its write)."""
    data = (json.dumps(owner, indent=2, sort_keys=True) + "\n").encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, ".%s.%d.%s.tmp" % (os.path.basename(path), os.getpid(), os.urandom(4).hex()))
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, LOCK_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
    finally:
        os.unlink(temp)  # the lock (if made) is the other name of the same file
    fsync_dir(directory)
    return True


def plan(
    path: str,
    owner: Owner,
    stale_after: int = DEFAULT_STALE_AFTER,
    now: Optional[datetime.datetime] = None,
    session_record: Optional[dict] = None,
    break_lock: bool = False,
    local_boot: Optional[str] = None,
    gone_runs: Iterable[str] = (),
) -> Tuple[str, Optional[Owner]]:
    """What taking the lock for `owner` means now, without touching it: (`acquired`|`ours`|`taken_over`,
    the lock as it is). A live foreign lock without `break_lock` raises LockHeld, a corrupt one ValueError
    (with `break_lock`: `taken_over` of `{"corrupt": True}`). `acquire` acts on this; check mode reports it."""
    try:
        current = read_lock(path)
    except ValueError:
        if not break_lock:
            raise
        return "taken_over", {"corrupt": True}
    if current is None:
        return "acquired", None
    status, reason = lock_status(current, owner.get("session_id"), owner.get("controller"), stale_after, now,
                                 session_record, {key: owner.get(key) for key in RUN_KEYS}, local_boot, gone_runs)
    if status == "ours":
        return "ours", current
    if status == "foreign" and not break_lock:
        raise LockHeld(path, current, reason)
    return "taken_over", current


def acquire(path: str, owner: Owner, **judged: Any) -> Tuple[str, Optional[Owner]]:
    """Take the lock for `owner`; return (`acquired`|`ours`|`taken_over`, previous owner or None).

    A free lock is created exclusively; otherwise `plan` (same keyword arguments) judges the lock: our
    own is rewritten with `owner` (a fresh heartbeat); a stale one, a corrupt one (with `break_lock`) or
    a live foreign one (with `break_lock`) is replaced atomically and its previous owner returned.
    """
    for _attempt in range(3):
        if _create_exclusive(path, owner):
            return "acquired", None
        action, current = plan(path, owner, **judged)
        if action == "acquired":
            continue  # released between our attempt and the read: try again
        if action == "ours":
            if current != owner:
                atomic_write_json(path, dict(owner, started_at=(current or {}).get("started_at", owner["started_at"])),
                                  LOCK_MODE)
            return "ours", None
        atomic_write_json(path, owner, LOCK_MODE)
        return "taken_over", current
    raise RuntimeError("could not take the upgrade lock %s: it keeps appearing and vanishing. Next: re-run" % path)


def heartbeat(path: str, session_id: str, now: Optional[datetime.datetime] = None) -> bool:
    """Refresh `heartbeat_at` of the lock if it belongs to `session_id`; True when refreshed."""
    current = read_lock(path)
    if current is None or current.get("session_id") != session_id:
        return False
    atomic_write_json(path, dict(current, heartbeat_at=iso(now)), LOCK_MODE)
    return True


def release(path: str, session_id: str) -> bool:
    """Remove the lock if it belongs to `session_id`; True if removed, False if missing or not ours."""
    current = read_lock(path)
    if current is None or current.get("session_id") != session_id:
        return False
    os.unlink(path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True
