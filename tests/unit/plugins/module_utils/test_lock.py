"""lock: exclusive creation, status classification (free/ours/stale/foreign), takeover, release."""
from __future__ import annotations

import datetime
import json
import multiprocessing
import os

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils.lock import (
    LockHeld,
    acquire,
    lock_status,
    make_owner,
    read_lock,
    release,
)

NOW = datetime.datetime(2026, 11, 24, 10, 15, 0, tzinfo=datetime.timezone.utc)
DAY = 86400


def ago(seconds: int) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def owner(session="S1", controller="alice@ctl", started=None, target="c0ffee"):
    return make_owner(session, target, controller, "web1", "run-1", started or ago(60))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / ".upgrade-lock")


# --- read_lock -----------------------------------------------------------------------------------

def test_read_lock_missing_is_none(path):
    assert read_lock(path) is None


def test_read_lock_round_trip(path):
    acquire(path, owner(), now=NOW)
    assert read_lock(path) == owner()


@pytest.mark.parametrize(
    "content,why",
    [(b"", "not valid JSON"), (b"{half", "not valid JSON"), (b"\xff\xfe", "not valid JSON"),
     (b"[]", "not a JSON object"), (b'{"started_at": "2026-11-24T10:00:00Z"}', "no session_id"),
     (b'{"session_id": "", "started_at": "2026-11-24T10:00:00Z"}', "no session_id"),
     (b'{"session_id": "S"}', "not a timestamp"), (b'{"session_id": "S", "started_at": "yesterday"}', "not a timestamp")],
)
def test_read_lock_corrupt_says_what_to_do(path, content, why):
    with open(path, "wb") as handle:
        handle.write(content)
    with pytest.raises(ValueError) as err:
        read_lock(path)
    message = str(err.value)
    assert path in message and why in message and "praxis_break_lock=true" in message


# --- lock_status (pure) --------------------------------------------------------------------------

def test_status_free_without_lock():
    assert lock_status(None, "S1", now=NOW)[0] == "free"


def test_status_ours_for_same_session():
    assert lock_status(owner(), "S1", "alice@ctl", DAY, NOW) == ("ours", "the lock belongs to this session S1")
    assert lock_status(owner(controller=None), "S1", "bob@ctl", DAY, NOW)[0] == "ours"
    assert lock_status(owner(), "S1", None, DAY, NOW)[0] == "ours"


def test_status_same_session_from_another_controller_is_foreign_until_stale():
    status, reason = lock_status(owner(), "S1", "bob@other", DAY, NOW)
    assert status == "foreign" and "another controller" in reason
    assert lock_status(owner(started=ago(DAY + 1)), "S1", "bob@other", DAY, NOW)[0] == "stale"


@pytest.mark.parametrize("final", ["completed", "failed", "rolled_back"])
def test_status_stale_when_its_session_is_recorded_finished(final):
    record = {"session_id": "S1", "status": final, "finished_at": ago(5)}
    status, reason = lock_status(owner(started=ago(10)), "S2", "alice@ctl", DAY, NOW, record)
    assert status == "stale" and final in reason and "S1" in reason


def test_status_not_stale_when_record_is_of_another_session_or_in_progress():
    other = {"session_id": "S0", "status": "completed", "finished_at": ago(5)}
    running = {"session_id": "S1", "status": "in_progress"}
    assert lock_status(owner(), "S2", "alice@ctl", DAY, NOW, other)[0] == "foreign"
    assert lock_status(owner(), "S2", "alice@ctl", DAY, NOW, running)[0] == "foreign"


@pytest.mark.parametrize("age,expected", [(0, "foreign"), (DAY - 1, "foreign"), (DAY, "foreign"),
                                          (DAY + 1, "stale"), (10 * DAY, "stale")])
def test_status_by_age(age, expected):
    assert lock_status(owner(started=ago(age)), "S2", "alice@ctl", DAY, NOW)[0] == expected


def test_status_foreign_reasons_name_who():
    assert "another run" not in lock_status(owner(), "S2", "bob@x", DAY, NOW)[1]
    assert "another controller" in lock_status(owner(), "S2", "bob@x", DAY, NOW)[1]
    assert "another session" in lock_status(owner(), "S2", "alice@ctl", DAY, NOW)[1]
    assert "another session" in lock_status(owner(), None, None, DAY, NOW)[1]


def test_status_lock_from_the_future_is_foreign():
    future = (NOW + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert lock_status(owner(started=future), "S2", None, DAY, NOW)[0] == "foreign"


# --- acquire -------------------------------------------------------------------------------------

def test_acquire_free_creates_lock_exclusively_with_mode(path):
    assert acquire(path, owner(), now=NOW) == ("acquired", None)
    assert oct(os.stat(path).st_mode & 0o777) == oct(locks.LOCK_MODE)
    assert json.loads(open(path).read())["session_id"] == "S1"


def test_acquire_ours_keeps_lock_untouched(path):
    acquire(path, owner(), now=NOW)
    before = os.stat(path)
    assert acquire(path, owner(), now=NOW) == ("ours", None)
    after = os.stat(path)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_acquire_foreign_live_raises_lock_held_with_who_and_since(path):
    acquire(path, owner(), now=NOW)
    with pytest.raises(LockHeld) as err:
        acquire(path, owner("S2", "bob@other"), now=NOW)
    message = str(err.value)
    for fact in ("S1", "alice@ctl", "web1", "c0ffee", ago(60), "praxis_break_lock=true", "wait"):
        assert fact in message
    assert err.value.owner["session_id"] == "S1"
    assert read_lock(path)["session_id"] == "S1"  # untouched


def test_acquire_stale_by_age_takes_over_and_returns_previous(path):
    acquire(path, owner(started=ago(2 * DAY)), now=NOW)
    action, previous = acquire(path, owner("S2"), now=NOW)
    assert action == "taken_over" and previous["session_id"] == "S1"
    assert read_lock(path)["session_id"] == "S2"


def test_acquire_stale_by_record_takes_over(path):
    acquire(path, owner(), now=NOW)
    record = {"session_id": "S1", "status": "rolled_back", "finished_at": ago(1)}
    assert acquire(path, owner("S2"), now=NOW, session_record=record)[0] == "taken_over"


def test_acquire_break_lock_takes_live_foreign_lock(path):
    acquire(path, owner(), now=NOW)
    action, previous = acquire(path, owner("S2", "bob@other"), now=NOW, break_lock=True)
    assert action == "taken_over" and previous["controller"] == "alice@ctl"
    assert read_lock(path)["session_id"] == "S2"


def test_acquire_corrupt_lock_refused_unless_broken(path, tmp_path):
    with open(path, "w") as handle:
        handle.write("{garbage")
    with pytest.raises(ValueError, match="corrupt"):
        acquire(path, owner("S2"), now=NOW)
    assert open(path).read() == "{garbage"
    action, previous = acquire(path, owner("S2"), now=NOW, break_lock=True)
    assert (action, previous) == ("taken_over", {"corrupt": True})
    assert read_lock(path)["session_id"] == "S2"
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []


def test_acquire_retries_when_lock_vanishes_between_create_and_read(path, monkeypatch):
    acquire(path, owner(), now=NOW)
    real_read = locks.read_lock
    calls = []

    def vanishing(p):
        calls.append(p)
        if len(calls) == 1:
            os.unlink(p)  # the holder released it right after our O_EXCL attempt failed
            return None
        return real_read(p)

    monkeypatch.setattr(locks, "read_lock", vanishing)
    assert acquire(path, owner("S2"), now=NOW) == ("acquired", None)
    assert real_read(path)["session_id"] == "S2"


def test_acquire_gives_up_when_lock_keeps_flickering(path, monkeypatch):
    monkeypatch.setattr(locks, "_create_exclusive", lambda p, o: False)
    monkeypatch.setattr(locks, "read_lock", lambda p: None)
    with pytest.raises(RuntimeError, match="re-run"):
        acquire(path, owner(), now=NOW)


def test_failed_write_leaves_no_half_lock(path, monkeypatch):
    def broken_write(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(locks.os, "write", broken_write)
    with pytest.raises(OSError):
        acquire(path, owner(), now=NOW)
    monkeypatch.undo()
    assert not os.path.exists(path)


def test_acquire_in_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        acquire(str(tmp_path / "absent" / ".upgrade-lock"), owner(), now=NOW)


def _race(path, session, queue):
    try:
        queue.put((session, acquire(path, owner(session), now=NOW)[0]))
    except LockHeld:
        queue.put((session, "held"))


def test_only_one_of_many_racing_processes_wins(path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, "S%d" % i, queue)) for i in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(10)
    outcomes = dict(queue.get(timeout=5) for proc in procs)
    winners = [s for s, outcome in outcomes.items() if outcome == "acquired"]
    assert len(winners) == 1
    assert set(outcomes.values()) == {"acquired", "held"}
    assert read_lock(path)["session_id"] == winners[0]


# --- release -------------------------------------------------------------------------------------

def test_release_ours_removes(path):
    acquire(path, owner(), now=NOW)
    assert release(path, "S1") is True
    assert not os.path.exists(path)


def test_release_missing_is_noop(path):
    assert release(path, "S1") is False


def test_release_foreign_keeps_lock(path):
    acquire(path, owner(), now=NOW)
    assert release(path, "S2") is False
    assert read_lock(path)["session_id"] == "S1"


def test_release_corrupt_raises(path):
    with open(path, "w") as handle:
        handle.write("")
    with pytest.raises(ValueError):
        release(path, "S1")
    assert os.path.exists(path)


def test_helpers(tmp_path):
    assert locks.lock_path(str(tmp_path)) == str(tmp_path / ".upgrade-lock")
    made = make_owner("S", "t")
    assert set(made) == set(locks.OWNER_KEYS) - set(locks.RUN_KEYS) and made["started_at"].endswith("Z")
    assert set(make_owner("S", "t", run=locks.process_identity(os.getpid()))) == set(locks.OWNER_KEYS)
    assert "unknown" in locks.describe_owner({"session_id": "S", "started_at": ago(1)})


# --- the run holding the lock: alive, gone, rebooted, heartbeat ----------------------------------

def _run(pid, start, boot="BOOT", host="ctl"):
    return {"run_key": "%s:%s:%s:%s" % (host, boot, pid, start), "controller_host": host, "controller_pid": pid,
            "controller_start": start, "boot_id": boot}


def test_process_identity_names_this_process():
    me = locks.process_identity(os.getpid())
    assert me["controller_pid"] == os.getpid() and me["controller_start"] == locks.start_ticks(os.getpid())
    assert me["boot_id"] == locks.boot_id() and str(os.getpid()) in me["run_key"]


def test_a_live_run_of_this_machine_is_foreign_and_named():
    holder = make_owner("S1", "c0ffee", "alice@ctl", "web1", "run-1", ago(10),
                        run=locks.process_identity(os.getpid()))
    me = _run(999999, 1, boot=locks.boot_id())
    status, reason = lock_status(holder, "S2", "alice@ctl", DAY, NOW, run=me)
    assert status == "foreign" and "can still be alive" in reason
    message = locks.held_message("/l", holder, reason)
    assert "ansible-playbook pid %d" % os.getpid() in message and ago(10) in message and "Next:" in message


def test_a_dead_run_of_this_machine_is_stale_at_once():
    child = multiprocessing.Process(target=int)
    child.start()
    child.join()
    gone = dict(locks.process_identity(os.getpid()), controller_pid=child.pid, run_key="ctl:x:%d:1" % child.pid)
    holder = make_owner("S1", "c0ffee", "alice@ctl", "web1", "run-1", ago(10), run=gone)
    status, reason = lock_status(holder, "S1", "alice@ctl", DAY, NOW, run=_run(1, 1, boot=locks.boot_id()))
    assert status == "stale" and "no longer runs" in reason


def test_a_reused_pid_is_not_the_holder():
    reused = dict(locks.process_identity(os.getpid()))
    reused["controller_start"] = reused["controller_start"] - 1  # same pid, another process
    holder = make_owner("S1", "c0ffee", run=reused, started_at=ago(10))
    assert lock_status(holder, "S1", None, DAY, NOW, run=_run(1, 1))[0] == "stale"


def test_same_run_is_ours_and_other_runs_of_the_same_session_are_not():
    me = _run(4242, 77)
    holder = make_owner("S1", "c0ffee", run=me, started_at=ago(10))
    assert lock_status(holder, "S1", None, DAY, NOW, run=me, local_boot="OTHER")[0] == "ours"
    other = _run(4243, 78)
    assert lock_status(holder, "S1", None, DAY, NOW, run=other, local_boot="OTHER")[0] == "foreign"


def test_remote_target_cannot_check_a_run_of_our_controller_until_told():
    holder = make_owner("S1", "c0ffee", run=_run(4242, 77), started_at=ago(10))
    me = _run(5000, 1)
    assert locks.needs_controller_check(holder, me, "TARGET-BOOT")
    assert lock_status(holder, "S1", None, DAY, NOW, run=me, local_boot="TARGET-BOOT")[0] == "foreign"
    status, reason = lock_status(holder, "S1", None, DAY, NOW, run=me, local_boot="TARGET-BOOT",
                                 gone_runs=[holder["run_key"]])
    assert status == "stale" and "checked on its controller" in reason


def test_a_rebooted_controller_proves_its_old_runs_gone():
    holder = make_owner("S1", "c0ffee", run=_run(4242, 77, boot="OLD"), started_at=ago(10))
    status, reason = lock_status(holder, "S1", None, DAY, NOW, run=_run(5000, 1, boot="NEW"), local_boot="T")
    assert status == "stale" and "rebooted" in reason


def test_other_controller_is_foreign_until_its_heartbeat_is_stale(path):
    holder = make_owner("S1", "c0ffee", run=_run(4242, 77, boot="B1", host="other"), started_at=ago(DAY * 2))
    holder["heartbeat_at"] = ago(60)
    me = _run(5000, 1, boot="B2")
    assert lock_status(holder, "S2", None, DAY, NOW, run=me, local_boot="B3")[0] == "foreign"
    holder["heartbeat_at"] = ago(DAY + 1)
    status, reason = lock_status(holder, "S2", None, DAY, NOW, run=me, local_boot="B3")
    assert status == "stale" and "heartbeat" in reason


def test_heartbeat_refreshes_only_our_lock(path):
    acquire(path, owner(started=ago(600)), now=NOW)
    assert locks.heartbeat(path, "S1", now=NOW) and read_lock(path)["heartbeat_at"] == "2026-11-24T10:15:00Z"
    assert not locks.heartbeat(path, "S2", now=NOW)
    os.unlink(path)
    assert not locks.heartbeat(path, "S1")


def test_acquire_ours_refreshes_the_owner_and_keeps_started_at(path):
    me = _run(4242, 77)
    first = make_owner("S1", "c0ffee", run=me, started_at=ago(600))
    acquire(path, first, now=NOW)
    later = make_owner("S1", "c0ffee", run=me, started_at=ago(5))
    assert acquire(path, later, now=NOW, local_boot="X") == ("ours", None)
    assert read_lock(path)["started_at"] == ago(600) and read_lock(path)["heartbeat_at"] == ago(5)


def test_a_lock_is_never_visible_before_its_content_is_written(path, monkeypatch):
    """A racing run reads the lock it lost to: it must never see an empty or half-written file."""
    real_write = os.write
    visible_while_writing = []

    def spy(fd, data):
        visible_while_writing.append(os.path.exists(path))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    acquire(path, owner(), now=NOW)
    assert visible_while_writing and not any(visible_while_writing)
    assert read_lock(path)["session_id"] == "S1"
    assert sorted(os.listdir(os.path.dirname(path))) == [os.path.basename(path)]  # no temporary file left
