"""state: session documents, atomic save/load, corruption, phases, final status, journal."""
from __future__ import annotations

import datetime
import json
import os
import re
import stat

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import fsutil
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.module_utils.state import (
    PHASES,
    finish,
    journal_clear,
    journal_get,
    journal_set,
    load,
    mark_phase,
    new_session,
    next_phase,
    save,
)

T0 = datetime.datetime(2026, 11, 24, 10, 15, 0, tzinfo=datetime.timezone.utc)
ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


@pytest.fixture
def facts(tmp_path):
    return str(tmp_path / ".praxis-os" / ".cache" / "facts.d" / "praxis_upgrade.fact")


@pytest.fixture
def session():
    return new_session("b" * 40, installed_commit="a" * 40, target_describe="v2.0.0", source_path="/src",
                       controller="alice@ctl", host="web1", run_id="run-1", now=T0)


# --- ids and time --------------------------------------------------------------------------------

def test_session_id_format_and_uniqueness():
    ids = {states.new_session_id(T0) for attempt in range(200)}
    assert len(ids) == 200
    assert all(ID_RE.match(i) and i.startswith("20261124T101500Z-") for i in ids)
    assert ID_RE.match(states.new_session_id())


@pytest.mark.parametrize("text", ["2026-11-24T10:15:00Z", "2026-11-24T10:15:00+00:00", "2026-11-24T11:15:00+01:00",
                                  "2026-11-24T10:15:00.000000Z", "2026-11-24T10:15:00"])
def test_parse_iso_accepts_utc_forms(text):
    assert states.parse_iso(text) == T0


@pytest.mark.parametrize("text", ["", None, "yesterday", 5])
def test_parse_iso_refuses_garbage(text):
    with pytest.raises((ValueError, TypeError)):
        states.parse_iso(text)


def test_iso_is_utc_z_seconds():
    assert states.iso(T0) == "2026-11-24T10:15:00Z"
    assert states.iso(datetime.datetime(2026, 11, 24, 11, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))) \
        == "2026-11-24T10:15:00Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", states.iso())


# --- documents -----------------------------------------------------------------------------------

def test_new_session_has_the_documented_shape(session):
    assert set(session) == {
        "schema", "session_id", "run_id", "status", "installed_commit", "target_commit", "target_describe",
        "source_path", "controller", "host", "backup_path", "completed_phases", "phases", "journal",
        "started_at", "updated_at", "finished_at", "reason",
    }
    assert session["status"] == "in_progress" and session["schema"] == 1
    assert ID_RE.match(session["session_id"])
    assert session["started_at"] == "2026-11-24T10:15:00Z" and session["finished_at"] is None
    assert new_session("c", session_id="given")["session_id"] == "given"


def test_facts_path(tmp_path):
    assert states.facts_path(str(tmp_path)) == str(tmp_path / ".cache" / "facts.d" / "praxis_upgrade.fact")


def test_load_missing_is_none(facts):
    assert load(facts) is None


def test_save_then_load_round_trip_with_mode_and_stamp(facts, session):
    saved = save(facts, session, now=at(30))
    assert saved["updated_at"] == "2026-11-24T10:15:30Z"
    assert session["updated_at"] == "2026-11-24T10:15:00Z"  # input untouched
    assert load(facts) == saved
    assert stat.S_IMODE(os.stat(facts).st_mode) == 0o644
    assert json.load(open(facts)) == saved  # plain JSON, readable by setup's fact_path


def test_interrupted_save_keeps_previous_state(facts, session, monkeypatch):
    save(facts, session, now=at(1))
    changed = mark_phase(session, "preflight", now=at(2))

    def failing_replace(*args):
        raise OSError(28, "No space left")

    monkeypatch.setattr(fsutil.os, "replace", failing_replace)
    with pytest.raises(OSError):
        save(facts, changed, now=at(3))
    monkeypatch.undo()
    assert load(facts)["completed_phases"] == []
    assert [n for n in os.listdir(os.path.dirname(facts)) if n.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "mutate,why",
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: "[1]", "not a JSON object"),
        (lambda d: dict(d, schema=2), "unknown schema"),
        (lambda d: dict(d, session_id=""), "no session_id"),
        (lambda d: dict(d, status="exploded"), "status"),
        (lambda d: dict(d, completed_phases=["backup", "teleport"]), "completed_phases"),
        (lambda d: dict(d, completed_phases="backup"), "completed_phases"),
        (lambda d: dict(d, phases=[]), "phases is not a mapping"),
        (lambda d: dict(d, journal={}), "journal"),
        (lambda d: dict(d, journal=[{"step": "staged"}]), "journal"),
    ],
)
def test_load_corrupt_names_file_problem_and_next_step(facts, session, mutate, why):
    os.makedirs(os.path.dirname(facts))
    document = mutate(session)
    with open(facts, "w") as handle:
        handle.write(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(ValueError) as err:
        load(facts)
    message = str(err.value)
    assert facts in message and why in message
    assert "move it aside" in message and "playbooks/rollback.yml" in message


# --- transitions ---------------------------------------------------------------------------------

def test_mark_phase_records_evidence_timing_and_order(session):
    evidence = {"files": 12, "path": "/x"}
    one = mark_phase(session, "backup", evidence, started_at="2026-11-24T10:15:00Z", now=at(1.5))
    two = mark_phase(one, "preflight", now=at(2))
    assert session["completed_phases"] == [] and session["phases"] == {}  # pure
    assert two["completed_phases"] == ["preflight", "backup"]  # PHASES order, whatever the call order
    assert two["phases"]["backup"] == {"started_at": "2026-11-24T10:15:00Z", "finished_at": "2026-11-24T10:15:01Z",
                                       "duration_s": 1.5, "evidence": evidence}
    assert two["phases"]["preflight"]["duration_s"] is None and two["phases"]["preflight"]["evidence"] == {}
    evidence["files"] = 99
    assert two["phases"]["backup"]["evidence"]["files"] == 12  # evidence copied, not shared


def test_mark_phase_again_overwrites_once(session):
    first = mark_phase(session, "content", {"n": 1}, now=at(1))
    again = mark_phase(first, "content", {"n": 2}, now=at(2))
    assert again["completed_phases"] == ["content"]
    assert again["phases"]["content"]["evidence"] == {"n": 2}


def test_mark_phase_refuses_unknown_phase_and_bad_start(session):
    with pytest.raises(ValueError, match="unknown phase"):
        mark_phase(session, "deploy")
    with pytest.raises(ValueError):
        mark_phase(session, "backup", started_at="not a time")


def test_clock_skew_never_gives_negative_duration(session):
    done = mark_phase(session, "backup", started_at="2026-11-24T10:16:00Z", now=at(0))
    assert done["phases"]["backup"]["duration_s"] == 0.0


@pytest.mark.parametrize("status", ["completed", "failed", "rolled_back"])
def test_finish(session, status):
    if status == "completed":
        session = mark_phase(session, "cleanup", now=at(1))  # records written first
    if status == "rolled_back":
        session = states.begin_rollback(session, "/b/1", "because", now=at(1))
    done = finish(session, status, "because", now=at(9))
    assert (done["status"], done["reason"], done["finished_at"]) == (status, "because", "2026-11-24T10:15:09Z")
    assert session["status"] in ("in_progress", "rolling_back")


@pytest.mark.parametrize("status", ["in_progress", "done", ""])
def test_finish_refuses_non_final(session, status):
    with pytest.raises(ValueError, match="final status"):
        finish(session, status)


def test_next_phase_walks_phases(session):
    assert next_phase(None) == "preflight"
    current = session
    for phase in PHASES:
        assert next_phase(current) == phase
        current = mark_phase(current, phase, now=at(1))
    assert next_phase(current) is None
    skipped = mark_phase(session, "preflight", now=at(1))
    skipped = mark_phase(skipped, "content", now=at(1))
    assert next_phase(skipped) == "backup"  # first incomplete, not after the last done


def test_is_interrupted_and_message(session):
    assert states.is_interrupted(session)
    assert not states.is_interrupted(None)
    assert not states.is_interrupted(finish(session, "failed"))
    assert states.is_interrupted(states.begin_rollback(session, None, "x"))
    message = states.interrupted_message(mark_phase(session, "backup", now=at(1)), "d" * 40, "/f")
    for fact in (session["session_id"], "b" * 40, "d" * 40, "backup", "playbooks/rollback.yml", "/f"):
        assert fact in message


# --- journal -------------------------------------------------------------------------------------

SWAP = {"op": "swap", "step": "staged", "live": "/h/mcp_server", "new": "/h/mcp_server.new", "old": "/h/mcp_server.old"}


def test_journal_set_replaces_same_op_and_clear_removes_it(facts, session):
    save(facts, session)
    journal_set(facts, SWAP)
    journal_set(facts, {"op": "pip", "step": "running"})
    saved = journal_set(facts, dict(SWAP, step="old_moved"))
    assert [e["op"] for e in saved["journal"]] == ["pip", "swap"]
    assert journal_get(load(facts), "swap")["step"] == "old_moved"
    cleared = journal_clear(facts, "swap")
    assert journal_get(cleared, "swap") is None and journal_get(load(facts), "pip")["step"] == "running"
    assert journal_clear(facts, "never-there")["journal"] == [{"op": "pip", "step": "running"}]


def test_journal_get_without_state():
    assert journal_get(None, "swap") is None


def test_journal_needs_a_session(facts):
    with pytest.raises(ValueError, match="state=started"):
        journal_set(facts, SWAP)
    with pytest.raises(ValueError, match="state=started"):
        journal_clear(facts, "swap")


@pytest.mark.parametrize("entry", [{}, {"op": ""}, {"op": 3}, "swap", None])
def test_journal_refuses_entries_without_op(facts, session, entry):
    save(facts, session)
    with pytest.raises(ValueError, match="'op'"):
        journal_set(facts, entry)
    assert load(facts)["journal"] == []


def test_journal_entry_is_copied(session):
    entry = dict(SWAP)
    result = states.with_journal(session, entry)
    entry["step"] = "mutated"
    assert result["journal"][0]["step"] == "staged"
    assert states.without_journal(result, "swap")["journal"] == []
