# -*- coding: utf-8 -*-
"""praxis_report with a session: the records are written once per session, whenever a run dies."""
from __future__ import annotations

import datetime
import json
import os

from ansible_collections.praxis.upgrade.plugins.module_utils import state as states
from ansible_collections.praxis.upgrade.plugins.modules import praxis_report, praxis_state

TARGET = "b" * 40
SOURCE = {"commit": TARGET, "describe": "v2.0.0", "path": "/src/praxis-os"}


def test_a_rerun_after_the_cleanup_record_writes_the_same_records(run_module, tmp_path, monkeypatch):
    home = tmp_path / ".praxis-os"
    home.mkdir()
    common = {"praxis_home": str(home)}
    started, failed = run_module(praxis_state, dict(common, state="started", target_commit=TARGET))
    assert not failed, started
    for phase in ("backup", "content", "server", "validate"):
        result, failed = run_module(praxis_state, dict(common, state="phase_done", phase=phase))
        assert not failed, result
    args = dict(common, session_id=started["session_id"], source=SOURCE, manifest={"a.md": "0" * 64},
                record_phase="cleanup")
    first, failed = run_module(praxis_report, args)
    assert not failed, first
    assert "cleanup" in first["session"]["completed_phases"]
    # the run dies before praxis_state completed; the re-run comes later (another second, another stamp)
    later = states.utc_now() + datetime.timedelta(seconds=5)
    monkeypatch.setattr(states, "utc_now", lambda: later)
    second, failed = run_module(praxis_report, args)
    assert not failed, second
    assert second["reports"] == first["reports"]
    assert len(list((home / ".cache").glob("upgrade-summary-*.json"))) == 1
    assert (home / "UPDATE_LOG.txt").read_text().count("session=%s" % started["session_id"]) == 1
    with open(second["reports"]["json"]) as handle:
        assert json.load(handle)["finished_at"] == first["summary"]["finished_at"]
    done, failed = run_module(praxis_state, dict(common, state="completed"))
    assert not failed and done["session"]["status"] == "completed", done
    assert not os.path.exists(os.path.join(str(home), ".upgrade-lock"))
