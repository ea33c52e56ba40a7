"""praxis_run_report: the action plugin (what runs) and its module stub (what ansible-doc shows, and what
would run without the action plugin) write the same report and agree on `changed`, as documented.

The action plugin runs in a child python: importing controller code switches ansible.module_utils into
controller mode for the whole process (module warnings then go to the display, not the result), which
would change what the module tests running in the same pytest process see."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from typing import Any, Dict

import pytest
import yaml

from ansible_collections.praxis.upgrade.plugins.modules import praxis_run_report as stub
from tests.unit.plugins.modules.module_args import patch_module_args

ACTION = """
import json, sys
from unittest import mock
from ansible_collections.praxis.upgrade.plugins.action import praxis_run_report as action
task = mock.MagicMock(args=json.loads(sys.argv[1]), async_val=0, check_mode=False)
plugin = action.ActionModule(task=task, connection=mock.MagicMock(), play_context=mock.MagicMock(),
                             loader=None, templar=None, shared_loader_obj=None)
print(json.dumps(plugin.run(task_vars={})))
"""


def args_for(report_dir: Any, host: str) -> Dict[str, Any]:
    return dict(report_dir=str(report_dir), run_id="20261124T101500Z-3f9a1c2", host=host,
                hosts=["web1", "web2"], source={"commit": "3f9a1c2" * 5, "describe": "v2.0.0"},
                row={"outcome": "completed"})


def run_action(args: Dict[str, Any]) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-c", ACTION, json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_stub(args: Dict[str, Any]) -> Dict[str, Any]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        stub.main()
    return json.loads(out.getvalue())


def test_stub_and_action_agree_on_changed_and_report(tmp_path: Any) -> None:
    by_action = run_action(args_for(tmp_path / "a", "web1"))
    by_stub = run_stub(args_for(tmp_path / "b", "web1"))
    assert not by_stub.get("failed") and not by_action.get("failed"), (by_stub, by_action)
    assert by_action["changed"] is False and by_stub["changed"] is False
    assert "C(changed) is always false" in " ".join(yaml.safe_load(stub.DOCUMENTATION)["description"])
    reports = [json.loads(open(result["json"]).read()) for result in (by_action, by_stub)]
    for report in reports:
        assert [row.pop("recorded_at") for row in report["hosts"]]  # a timestamp: differs between the runs
    assert reports[0] == reports[1]
    assert reports[0]["hosts"] == [{"check_mode": False, "host": "web1", "outcome": "completed"}]
