"""praxis_state: session start/resume, lock rules, phases, final states, check and diff mode."""
from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import lock as locks
from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.modules import praxis_state

TARGET = "b" * 40
OTHER = "c" * 40


def snapshot(root) -> dict:
    """Every path below root with its bytes: equal snapshots mean nothing was written."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            found[os.path.relpath(path, root)] = open(path, "rb").read() if os.path.isfile(path) else None
    return found


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "project" / ".praxis-os"
    path.mkdir(parents=True)
    return str(path)


@pytest.fixture
def state_of(run_module, home):
    def run(state, check_mode=False, diff=False, **args):
        args.setdefault("controller", "alice@ctl")
        args.setdefault("host", "web1")
        return run_module(praxis_state, dict(praxis_home=home, state=state, **args), check_mode=check_mode, diff=diff)
    return run


def facts(home):
    return states.load(states.facts_path(home))


def lock_of(home):
    return locks.read_lock(locks.lock_path(home))


def put_lock(home, session="FOREIGN", controller="bob@other", age=60):
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    owner = locks.make_owner(session, OTHER, controller, "web1", "run-0", states.iso(started))
    with open(locks.lock_path(home), "w") as handle:
        json.dump(owner, handle)
    return owner


def test_started_creates_session_and_lock(state_of, home):
    result, failed = state_of("started", target_commit=TARGET, run_id="run-1", installed_commit="a" * 40, diff=True)
    assert not failed and result["changed"]
    assert result["resumed"] is False and result["lock_action"] == "acquired" and result["lock_taken_over"] is None
    sid = result["session_id"]
    assert result["session"] == facts(home)
    assert facts(home)["session_id"] == sid and facts(home)["status"] == "in_progress"
    assert lock_of(home)["session_id"] == sid and lock_of(home)["controller"] == "alice@ctl"
    assert result["next_phase"] == "backup"  # preflight is recorded as the session begins
    assert facts(home)["completed_phases"] == ["preflight"]
    assert result["diff"]["prepared"] == "session: no session -> %s in_progress (done: preflight); lock: acquired\n" % sid


def test_started_again_resumes_same_session_without_change(state_of, home):
    first, failed = state_of("started", target_commit=TARGET, run_id="run-1")
    assert not failed, first
    again, failed = state_of("started", target_commit=TARGET, run_id="run-1")
    assert not failed and again["resumed"] and again["session_id"] == first["session_id"]
    assert again["changed"] is False and again["lock_action"] == "ours"


def test_resume_after_interruption_keeps_phases_and_records_new_run(state_of, home):
    first, failed = state_of("started", target_commit=TARGET, run_id="run-1")
    assert not failed, first
    state_of("phase_done", phase="preflight")
    state_of("phase_done", phase="backup", backup_path="/b/1")
    resumed, failed = state_of("started", target_commit=TARGET, run_id="run-2")
    assert not failed and resumed["resumed"] and resumed["changed"]
    assert resumed["session"]["completed_phases"] == ["preflight", "backup"]
    assert resumed["session"]["run_id"] == "run-2" and resumed["next_phase"] == "content"
    assert resumed["session_id"] == first["session_id"]


def test_interrupted_session_for_another_target_is_refused(state_of, home):
    state_of("started", target_commit=TARGET)
    before = snapshot(home)
    result, failed = state_of("started", target_commit=OTHER)
    assert failed and "playbooks/rollback.yml" in result["msg"] and OTHER in result["msg"]
    assert snapshot(home) == before


def test_resume_with_wrong_session_id_is_refused(state_of, home):
    state_of("started", target_commit=TARGET)
    result, failed = state_of("started", target_commit=TARGET, session_id="20260101T000000Z-000000")
    assert failed and "20260101T000000Z-000000" in result["msg"]


def test_foreign_live_lock_fails_with_who_since_and_next_step(state_of, home):
    owner = put_lock(home)
    result, failed = state_of("started", target_commit=TARGET)
    assert failed
    for fact in ("FOREIGN", "bob@other", "web1", owner["started_at"], "praxis_break_lock=true", "wait"):
        assert fact in result["msg"]
    assert result["lock"]["session_id"] == "FOREIGN"
    assert facts(home) is None and lock_of(home) == owner


def test_same_session_from_another_controller_is_not_resumed_while_live(state_of, home):
    state_of("started", target_commit=TARGET, controller="alice@ctl")
    result, failed = state_of("started", target_commit=TARGET, controller="bob@other")
    assert failed and "alice@ctl" in result["msg"]


def test_stale_lock_by_age_is_taken_over_and_reported(state_of, home):
    owner = put_lock(home, age=7200)
    result, failed = state_of("started", target_commit=TARGET, lock_stale_after=3600)
    assert not failed and result["lock_action"] == "taken_over"
    assert result["lock_taken_over"] == owner
    assert lock_of(home)["session_id"] == result["session_id"]


def test_lock_of_finished_session_is_stale(state_of, home):
    first, failed = state_of("started", target_commit=TARGET)
    assert not failed, first
    state_of("phase_done", phase="cleanup")
    state_of("completed", release_lock=False)
    assert lock_of(home)["session_id"] == first["session_id"]
    second, failed = state_of("started", target_commit=OTHER, controller="bob@other")
    assert not failed and second["lock_taken_over"]["session_id"] == first["session_id"]
    assert second["session_id"] != first["session_id"] and not second["resumed"]


def test_break_lock_takes_a_live_lock(state_of, home):
    put_lock(home)
    result, failed = state_of("started", target_commit=TARGET, break_lock=True)
    assert not failed and result["lock_taken_over"]["session_id"] == "FOREIGN"


def test_corrupt_lock_fails_unless_broken(state_of, home):
    with open(locks.lock_path(home), "w") as handle:
        handle.write("{")
    result, failed = state_of("started", target_commit=TARGET)
    assert failed and "corrupt" in result["msg"] and "praxis_break_lock=true" in result["msg"]
    result, failed = state_of("started", target_commit=TARGET, break_lock=True, check_mode=True)
    assert not failed and result["lock_taken_over"] == {"corrupt": True}
    result, failed = state_of("started", target_commit=TARGET, break_lock=True)
    assert not failed and lock_of(home)["session_id"] == result["session_id"]


def test_corrupt_state_file_fails_with_next_step(state_of, home):
    path = states.facts_path(home)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        handle.write("not json")
    result, failed = state_of("started", target_commit=TARGET)
    assert failed and path in result["msg"] and "move it aside" in result["msg"]
    assert lock_of(home) is None


def test_missing_installation_fails(run_module, tmp_path):
    result, failed = run_module(praxis_state, dict(praxis_home=str(tmp_path / "nope"), state="started",
                                                   target_commit=TARGET))
    assert failed and "does not exist" in result["msg"]


def test_started_requires_target(state_of):
    result, failed = state_of("started")
    assert failed and "target_commit" in result["msg"]


def test_check_mode_writes_nothing_but_reports(state_of, home):
    before = snapshot(home)
    result, failed = state_of("started", target_commit=TARGET, check_mode=True, diff=True)
    assert not failed and result["changed"] and result["lock_action"] == "acquired"
    assert "-> %s in_progress" % result["session_id"] in result["diff"]["prepared"]
    assert "lock: acquired" in result["diff"]["prepared"]
    assert snapshot(home) == before

    put_lock(home, age=10 * 86400)
    before = snapshot(home)
    result, failed = state_of("started", target_commit=TARGET, check_mode=True)
    assert not failed and result["lock_action"] == "taken_over" and result["lock_taken_over"]["session_id"] == "FOREIGN"
    assert snapshot(home) == before

    put_lock(home)
    result, failed = state_of("started", target_commit=TARGET, check_mode=True)
    assert failed and "FOREIGN" in result["msg"]


def test_check_mode_of_resume_and_final_writes_nothing(state_of, home):
    state_of("started", target_commit=TARGET)
    before = snapshot(home)
    resumed, failed = state_of("started", target_commit=TARGET, check_mode=True)
    assert not failed, resumed
    assert resumed["resumed"] and resumed["lock_action"] == "ours"
    phase, failed = state_of("phase_done", phase="backup", check_mode=True)
    assert not failed and phase["session"]["completed_phases"] == ["preflight", "backup"]
    done, failed = state_of("failed", check_mode=True)
    assert not failed and done["lock_action"] == "released" and done["session"]["status"] == "failed"
    assert snapshot(home) == before


def test_phase_done_records_phase_evidence_backup(state_of, home):
    started, failed = state_of("started", target_commit=TARGET)
    assert not failed, started
    result, failed = state_of("phase_done", session_id=started["session_id"], phase="backup",
                              evidence={"files": 42}, phase_started_at=states.iso(), backup_path="/p/.backups/x",
                              diff=True)
    assert not failed and result["changed"]
    saved = facts(home)
    assert saved["completed_phases"] == ["preflight", "backup"] and saved["backup_path"] == "/p/.backups/x"
    assert saved["phases"]["backup"]["evidence"] == {"files": 42}
    assert saved["phases"]["backup"]["duration_s"] is not None
    assert "in_progress -> %s in_progress (done: preflight, backup)" % started["session_id"] in result["diff"]["prepared"]
    assert lock_of(home)["session_id"] == started["session_id"]  # kept during the run


def test_phase_done_refusals(state_of, home):
    result, failed = state_of("phase_done", phase="backup")
    assert failed and "state=started" in result["msg"]
    state_of("started", target_commit=TARGET)
    result, failed = state_of("phase_done", phase="backup", phase_started_at="tuesday")
    assert failed and "ISO-8601" in result["msg"]
    result, failed = state_of("phase_done", phase="teleport")
    assert failed and "teleport" in result["msg"]
    put_lock(home, session="THIEF")
    result, failed = state_of("phase_done", phase="backup")
    assert failed and "THIEF" in result["msg"] and "no longer holds" in result["msg"]
    assert facts(home)["completed_phases"] == ["preflight"]


def test_phase_done_on_finished_session_is_refused(state_of, home):
    state_of("started", target_commit=TARGET)
    state_of("failed", reason="x")
    result, failed = state_of("phase_done", phase="backup")
    assert failed and "already failed" in result["msg"]


def test_corrupt_lock_during_phase_fails(state_of, home):
    state_of("started", target_commit=TARGET)
    with open(locks.lock_path(home), "w") as handle:
        handle.write("")
    result, failed = state_of("phase_done", phase="backup")
    assert failed and "corrupt" in result["msg"]


@pytest.mark.parametrize("final", ["completed", "failed", "rolled_back"])
def test_final_states_close_session_and_release_lock(state_of, home, final):
    started, failed = state_of("started", target_commit=TARGET)
    assert not failed, started
    if final == "completed":
        state_of("phase_done", phase="cleanup")
    if final == "rolled_back":
        state_of("rolling_back", reason="why not")
    result, failed = state_of(final, reason="why not", diff=True)
    assert not failed and result["changed"] and result["lock_action"] == "released"
    saved = facts(home)
    assert saved["status"] == final and saved["reason"] == "why not" and saved["finished_at"]
    assert lock_of(home) is None
    again, failed = state_of(final)
    assert not failed and again["changed"] is False and again["lock_action"] == "none"
    assert again["session_id"] == started["session_id"]


def put_backup(home, name):
    path = os.path.join(home, ".backups", name)
    os.makedirs(path)
    with open(os.path.join(path, "MANIFEST.json"), "w") as handle:
        handle.write('{"timestamp": "2026-01-01T00:00:00Z", "files": {}}')
    return path


def completable(state_of, backup_path):
    state_of("started", target_commit=TARGET)
    state_of("phase_done", phase="backup", backup_path=backup_path)
    state_of("phase_done", phase="cleanup")


@pytest.mark.parametrize("check_mode", [False, True])
def test_completed_prunes_old_backups_but_never_the_sessions_own(state_of, home, check_mode):
    paths = [put_backup(home, "2026-01-0%d-000000" % day) for day in range(1, 6)]
    completable(state_of, paths[0])  # the session's own backup is the oldest of all
    result, failed = state_of("completed", keep_backups=2, check_mode=check_mode)
    assert not failed and result["changed"] and result["prune_error"] is None
    assert result["pruned"] == ["2026-01-02-000000", "2026-01-03-000000"]
    left = sorted(os.listdir(os.path.join(home, ".backups")))
    if check_mode:
        assert left == [os.path.basename(p) for p in paths]
    else:
        assert left == ["2026-01-01-000000", "2026-01-04-000000", "2026-01-05-000000"]
        assert facts(home)["status"] == "completed" and lock_of(home) is None


def test_completed_without_keep_backups_prunes_nothing(state_of, home):
    paths = [put_backup(home, "2026-01-0%d-000000" % day) for day in range(1, 4)]
    completable(state_of, paths[-1])
    result, failed = state_of("completed")
    assert not failed and "pruned" not in result
    assert len(os.listdir(os.path.join(home, ".backups"))) == 3


def test_a_prune_failure_is_reported_and_the_session_completes(state_of, home):
    completable(state_of, put_backup(home, "2026-01-01-000000"))
    result, failed = state_of("completed", keep_backups=0)
    assert not failed and result["pruned"] == [] and "at least 1" in result["prune_error"]
    assert facts(home)["status"] == "completed" and lock_of(home) is None and result["lock_action"] == "released"


def test_final_leaves_a_foreign_lock_and_warns(state_of, home):
    state_of("started", target_commit=TARGET)
    put_lock(home, session="THIEF")
    result, failed = state_of("failed", reason="x")
    assert not failed and result["lock_action"] == "kept"
    assert "THIEF" in json.dumps(result["warnings"])  # 2.19 warnings are structured events
    assert lock_of(home)["session_id"] == "THIEF"


def test_final_with_corrupt_lock_records_status_and_warns(state_of, home):
    state_of("started", target_commit=TARGET)
    with open(locks.lock_path(home), "w") as handle:
        handle.write("{")
    result, failed = state_of("failed", reason="x")
    assert not failed and result["lock_action"] == "kept" and facts(home)["status"] == "failed"
    assert "corrupt" in json.dumps(result["warnings"])


def test_rolled_back_without_recorded_session_is_refused(state_of, home):
    result, failed = state_of("rolled_back", reason="restored named backup", backup_path="/p/.backups/b1")
    assert failed and "no upgrade session is recorded" in result["msg"] and "Next:" in result["msg"]
    assert facts(home) is None


def test_rolled_back_needs_rolling_back_first(state_of, home):
    first, failed = state_of("started", target_commit=TARGET)
    assert not failed, first
    result, failed = state_of("rolled_back", reason="operator")
    assert failed and "cannot take 'rolled_back'" in result["msg"]
    assert facts(home)["status"] == "in_progress"


def test_final_for_other_session_while_one_runs_is_refused(state_of, home):
    state_of("started", target_commit=TARGET)
    result, failed = state_of("failed", session_id="20261124T120000Z-abcdef")
    assert failed and "20261124T120000Z-abcdef" in result["msg"]
    assert facts(home)["status"] == "in_progress"


def test_state_write_failure_releases_fresh_lock(state_of, home):
    blocker = os.path.join(home, ".cache")
    with open(blocker, "w") as handle:
        handle.write("a file where a directory belongs")
    result, failed = state_of("started", target_commit=TARGET)
    assert failed and "cannot write the session state" in result["msg"]
    assert lock_of(home) is None


def test_default_host_is_the_machine(run_module, home):
    result, failed = run_module(praxis_state, dict(praxis_home=home, state="started", target_commit=TARGET))
    assert not failed and result["session"]["host"] and lock_of(home)["host"] == result["session"]["host"]


def test_completed_records_the_cleanup_phase_and_releases_the_lock(state_of, home):
    started, failed = state_of("started", target_commit=TARGET)
    assert not failed
    refused, failed = state_of("completed", session_id=started["session_id"])
    assert failed and "records are written" in refused["msg"] and facts(home)["status"] == "in_progress"
    state_of("phase_done", phase="cleanup")
    done, failed = state_of("completed", session_id=started["session_id"])
    assert not failed and done["lock_action"] == "released"
    assert facts(home)["completed_phases"] == ["preflight", "cleanup"] and facts(home)["status"] == "completed"
    assert done["next_phase"] is None


# --- rolling_back: write-ahead, resumable, backups of this installation only --------------------

def make_backup(home, name="2026-11-24-101500", praxis_home=None):
    from ansible_collections.praxis.upgrade.plugins.module_utils import backup as bk
    work = os.path.join(home, "workflows")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "w.md"), "w") as handle:
        handle.write("w\n")
    made = bk.create(home, os.path.join(home, ".backups"), ["workflows"], venv=None)
    if praxis_home:  # pretend it was made of another installation
        manifest = os.path.join(made["path"], "MANIFEST.json")
        doc = json.load(open(manifest))
        doc["praxis_home"] = praxis_home
        json.dump(doc, open(manifest, "w"))
    return made["path"]


def test_rolling_back_is_recorded_before_any_restore_and_resumes_with_the_same_backup(state_of, home):
    started, failed = state_of("started", target_commit=TARGET)
    path = make_backup(home)
    state_of("phase_done", phase="backup", backup_path=path)
    state_of("phase_done", phase="content")
    first, failed = state_of("rolling_back", reason="server: boom", server_mode="none")
    assert not failed, first
    assert first["backup_path"] == path and first["restore"] and first["failed_phase"] == "server"
    assert first["undoing"] == ["backup", "content"] and not first["resumed_rollback"]
    saved = facts(home)
    assert saved["status"] == "rolling_back" and saved["completed_phases"] == []
    assert lock_of(home)["session_id"] == started["session_id"]
    again, failed = state_of("rolling_back", reason="operator", backup_name="2020-01-01-000000")
    assert not failed and again["resumed_rollback"] and again["backup_path"] == path  # the recorded one wins
    refused, failed = state_of("started", target_commit=TARGET)
    assert failed and "interrupted" in refused["msg"] and "rollback.yml" in refused["msg"]
    done, failed = state_of("rolled_back", evidence={"healthy_after": True})
    assert not failed and facts(home)["status"] == "rolled_back" and lock_of(home) is None


def test_rolling_back_before_a_backup_existed_restores_nothing(state_of, home):
    state_of("started", target_commit=TARGET)
    result, failed = state_of("rolling_back", reason="backup: disk full")
    assert not failed and result["backup_path"] is None and result["restore"] is False


@pytest.mark.parametrize("name,words", [("/elsewhere/.backups/2026-11-24-101500", "not a backup name"),
                                        ("../2026-11-24-101500", "not a backup name"),
                                        ("MADE", "belongs to the installation")])
def test_rollback_refuses_foreign_backups_changing_nothing(state_of, home, name, words):
    made = make_backup(home, praxis_home="/somewhere/else/.praxis-os")
    name = os.path.basename(made) if name == "MADE" else name
    before = snapshot(home)
    result, failed = state_of("rolling_back", reason="operator", backup_name=name)
    assert failed and words in result["msg"] and "Next:" in result["msg"]
    assert snapshot(home) == before  # no state written, no lock left


def test_closing_removes_the_journalled_temporary_paths_only(state_of, home):
    started, failed = state_of("started", target_commit=TARGET)
    sid = started["session_id"]
    for rel in (".cache/upgrade/x", "mcp_server.new-%s" % sid):
        os.makedirs(os.path.join(home, rel))
    os.makedirs(os.path.join(home, "mcp_server"))
    state_of("rolling_back", reason="x")
    done, failed = state_of("rolled_back")
    assert not failed and sorted(done["removed_temp_paths"]) == [".cache/upgrade", "mcp_server.new-%s" % sid]
    assert os.path.isdir(os.path.join(home, "mcp_server"))
