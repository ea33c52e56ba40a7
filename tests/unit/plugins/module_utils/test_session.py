"""session: recording a finished phase from a phase module, with the session and lock checks."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import session
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states


@pytest.fixture
def home(tmp_path):
    path = tmp_path / ".praxis-os"
    path.mkdir()
    return str(path)


def start(home, status="in_progress"):
    document = states.new_session("b" * 40, controller="alice@ctl", host="web1")
    document["status"] = status
    states.save(states.facts_path(home), document)
    locks.acquire(locks.lock_path(home), locks.make_owner(document["session_id"], "b" * 40, "alice@ctl"))
    return document["session_id"]


def saved(home):
    with open(states.facts_path(home)) as handle:
        return json.load(handle)


def test_record_phase_saves_evidence_backup_path_and_duration(home):
    sid = start(home)
    after = session.record_phase(home, sid, "backup", {"files": 3}, backup_path="/b/1")
    assert after == saved(home)
    assert after["completed_phases"] == ["backup"] and after["backup_path"] == "/b/1"
    assert after["phases"]["backup"]["evidence"] == {"files": 3}
    assert after["phases"]["backup"]["duration_s"] is not None  # measured from the session's last activity


def test_record_phase_in_check_mode_writes_nothing(home):
    sid = start(home)
    before = saved(home)
    after = session.record_phase(home, None, "content", {}, check=True)
    assert after["completed_phases"] == ["content"] and saved(home) == before


@pytest.mark.parametrize("case, words", [
    ("none", "no upgrade session is recorded"),
    ("other_id", "was asked for"),
    ("finished", "already completed"),
    ("lock_taken", "no longer holds the upgrade lock"),
])
def test_record_phase_refusals(home, case, words):
    if case != "none":
        sid = start(home, "completed" if case == "finished" else "in_progress")
    if case == "lock_taken":
        locks.acquire(locks.lock_path(home), locks.make_owner("THIEF", "c" * 40, "bob@elsewhere"), break_lock=True)
    with pytest.raises(session.SessionError, match=words):
        session.record_phase(home, "OTHER" if case == "other_id" else None, "server", {})


class FakeModule:
    """Just what record_for reads: params, check_mode and fail_json."""

    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self.failed = params, check_mode, None

    def fail_json(self, msg):
        self.failed = msg
        raise SystemExit(1)


def test_record_for_records_only_when_asked_and_not_in_check_mode(home):
    sid = start(home)
    assert session.record_for(FakeModule({"praxis_home": home, "record_phase": None}), {}) is None
    assert session.record_for(FakeModule({"praxis_home": home, "record_phase": "server"}, check_mode=True), {}) is None
    assert saved(home)["completed_phases"] == []
    recorded = session.record_for(FakeModule({"praxis_home": home, "record_phase": "server", "session_id": sid}),
                                  {"pip_ran": True})
    assert recorded["phases"]["server"]["evidence"] == {"pip_ran": True}


def test_record_for_fails_the_task_with_the_reason(home):
    module = FakeModule({"praxis_home": home, "record_phase": "validate", "session_id": None})
    with pytest.raises(SystemExit):
        session.record_for(module, {})
    assert "validate phase finished but could not be recorded" in module.failed


def test_the_session_end_removes_temp_files_of_interrupted_record_writes(home):
    """A run killed between an atomic write's temp file and its rename (seen: the facts file, killed at 75 % of
    an upgrade) leaves `.<name>.<8 random>.tmp`; the session's end removes those of our records, and only those."""
    home = Path(home)
    project = home.parent
    ours = [home / ".cache" / "facts.d" / ".praxis_upgrade.fact.w7ry0xdb.tmp", home / ".VERSION.txt.a1b2c3d4.tmp",
            home / ".cache" / ".upgrade-summary-20261130T184200Z.json.zz_9abcd.tmp",
            home / "..upgrade-lock.99999999.0a1b2c3d.tmp", home / "standards" / "..rebuild_index.abcdefgh.tmp",
            project / "..gitignore.QWERTYUI.tmp", project / ".cursor" / ".mcp.json.upstream.12345678.tmp"]
    theirs = [project / ".notes.tmp", home / ".VERSION.txt.tmp", home / "standards" / ".mine.md.abcdefgh.tmp",
              home / ("..upgrade-lock.%d.0a1b2c3d.tmp" % os.getpid()),  # a live run taking the lock right now
              home / ".cache" / "facts.d" / ".other.fact.abcdefgh.tmp"]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    found = session.stale_write_temps(str(home))
    assert sorted(found) == sorted(str(p.relative_to(project)) for p in ours)
    state = {"temp_paths": []}
    assert sorted(session.remove_temp_paths(str(home), state, check=True)) == sorted(found)
    assert all(p.exists() for p in ours)  # check mode removes nothing
    session.remove_temp_paths(str(home), state)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
