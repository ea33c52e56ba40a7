"""The session as a write-ahead state machine: every edge of state.TRANSITIONS (allowed and refused), the
rollback announcement (`rolling_back`) and its end, records journalled once, temporary paths journalled."""
from __future__ import annotations

import datetime
import itertools

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.module_utils.state import (
    TRANSITIONS,
    TransitionError,
    begin_records,
    begin_rollback,
    check_transition,
    finish,
    finish_rollback,
    mark_phase,
    new_session,
)

T0 = datetime.datetime(2026, 11, 24, 10, 15, 0, tzinfo=datetime.timezone.utc)
STATUSES = (None,) + states.STATUSES
EVENTS = sorted({event for _status, event in TRANSITIONS})


def at(seconds: int) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def session_in(status):
    """A session document in `status` (None: no session)."""
    if status is None:
        return None
    doc = new_session("b" * 40, installed_commit="a" * 40, session_id="S1", now=T0)
    for phase in ("preflight", "backup", "content"):
        doc = mark_phase(doc, phase, now=at(1))
    doc["backup_path"] = "/h/.backups/2026-11-24-101500"
    if status == "in_progress":
        return doc
    if status == "rolling_back":
        return begin_rollback(doc, doc["backup_path"], "server: boom", now=at(2))
    if status == "completed":
        for phase in ("server", "validate", "cleanup"):
            doc = mark_phase(doc, phase, now=at(2))
        return finish(doc, "completed", now=at(3))
    if status == "rolled_back":
        return finish_rollback(begin_rollback(doc, doc["backup_path"], "x", now=at(2)), {}, now=at(3))
    return finish(doc, status, "boom", now=at(3))


EDGES = list(itertools.product(STATUSES, EVENTS))


@pytest.mark.parametrize("status,event", EDGES, ids=["%s-%s" % edge for edge in EDGES])
def test_every_edge_is_allowed_exactly_as_the_table_says(status, event):
    state = session_in(status)
    expected = TRANSITIONS.get((status, event))
    if expected is None:
        with pytest.raises(TransitionError) as err:
            check_transition(state, event)
        assert "Next:" in str(err.value) and event in str(err.value)
    else:
        assert check_transition(state, event) == expected


def test_rolling_back_is_written_with_backup_and_undone_phases_and_clears_completed():
    doc = session_in("in_progress")
    announced = begin_rollback(doc, doc["backup_path"], "server: boom", run_id="R2", now=at(5))
    assert announced["status"] == "rolling_back" and announced["completed_phases"] == []
    assert announced["rollback"]["undoing"] == ["backup", "content"]
    assert announced["rollback"]["backup_path"] == doc["backup_path"]
    assert announced["rollback"]["from_status"] == "in_progress" and announced["rollback"]["run_id"] == "R2"
    assert doc["status"] == "in_progress"  # pure: the input is untouched
    assert states.next_phase(announced) == "preflight"  # nothing counts as done any more
    assert states.is_interrupted(announced) and not states.resumable(announced, "b" * 40)


def test_a_completed_upgrade_being_rolled_back_no_longer_claims_its_phases():
    done = session_in("completed")
    announced = begin_rollback(done, done["backup_path"], "operator", now=at(5))
    assert announced["completed_phases"] == [] and "cleanup" in announced["rollback"]["undoing"]
    ended = finish_rollback(announced, {"healthy_after": True}, now=at(9))
    assert ended["status"] == "rolled_back" and ended["completed_phases"] == []
    assert ended["rollback"]["evidence"] == {"healthy_after": True}
    assert ended["rollback"]["finished_at"] == ended["finished_at"] == "2026-11-24T10:15:09Z"


def test_resuming_a_rollback_keeps_the_recorded_backup():
    announced = session_in("rolling_back")
    again = begin_rollback(announced, "/other/backup", "second try", now=at(9))
    assert again == announced
    assert states.rollback_backup(again) == "/h/.backups/2026-11-24-101500"
    assert states.rollback_backup(session_in("in_progress")) is None


def test_rollback_without_any_session_records_one():
    announced = begin_rollback(None, "/h/.backups/x", "operator", run_id="R", now=T0)
    assert announced["status"] == "rolling_back" and announced["rollback"]["from_status"] is None


def test_phase_done_refused_while_rolling_back():
    with pytest.raises(TransitionError, match="rolling_back"):
        mark_phase(session_in("rolling_back"), "server", now=at(9))


def test_completion_needs_the_records():
    doc = session_in("in_progress")
    for phase in ("server", "validate"):
        doc = mark_phase(doc, phase, now=at(2))
    with pytest.raises(TransitionError, match="records"):
        finish(doc, "completed")


def test_records_are_journalled_once_with_one_stamp_and_only_after_validate():
    doc = session_in("in_progress")
    with pytest.raises(TransitionError, match="validate"):
        begin_records(doc)
    for phase in ("server", "validate"):
        doc = mark_phase(doc, phase, now=at(2))
    first = begin_records(doc, now=at(10))
    entry = states.journal_get(first, states.RECORDS_OP)
    assert entry == {"op": "records", "stamp": "2026-11-24T10:15:10Z", "session_id": "S1"}
    assert begin_records(first, now=at(99)) == first  # a resumed run keeps the stamp
    rolled = begin_rollback(first, doc["backup_path"], "x")
    assert states.journal_get(rolled, states.RECORDS_OP) is None


def test_temp_paths_are_journalled_without_duplicates():
    doc = states.with_temp_paths(session_in("in_progress"), [".cache/upgrade", "mcp_server.new-S1"])
    doc = states.with_temp_paths(doc, ["mcp_server.new-S1", "mcp_server.old-S1"])
    assert doc["temp_paths"] == [".cache/upgrade", "mcp_server.new-S1", "mcp_server.old-S1"]


def test_blocking_message_only_for_an_unfinished_upgrade_to_another_target():
    doc = session_in("in_progress")
    assert states.blocking_message(doc, "b" * 40, "/f") is None
    assert "playbooks/rollback.yml" in states.blocking_message(doc, "d" * 40, "/f")
    assert states.blocking_message(session_in("rolling_back"), "d" * 40, "/f") is None  # finished first
    assert states.blocking_message(session_in("completed"), "d" * 40, "/f") is None
