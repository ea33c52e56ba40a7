"""praxis_content's action plugin: it ships the controller's archive (`src`) to the connection's temp dir and hands the
module that path; in check mode it ships nothing and drops `src`; a missing archive fails before any module runs; the
temp dir is removed in every case. Runs in a child python (see test_praxis_run_report.py for why)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict

ACTION = """
import json, sys
from unittest import mock
from ansible_collections.praxis.upgrade.plugins.action import praxis_content as action
args, check_mode = json.loads(sys.argv[1]), sys.argv[2] == "check"
task = mock.MagicMock(args=args, async_val=0, check_mode=check_mode)
connection = mock.MagicMock()
connection._shell.tmpdir = "/remote/tmp/ansible-tmp-1"
connection._shell.join_path = lambda *parts: "/".join(parts)
plugin = action.ActionModule(task=task, connection=connection, play_context=mock.MagicMock(),
                             loader=None, templar=None, shared_loader_obj=None)
calls = []
plugin._transfer_file = lambda local, remote: calls.append(["transfer", local, remote])
plugin._fixup_perms2 = lambda paths: calls.append(["fixup"] + list(paths))
plugin._remove_tmp_path = lambda path: calls.append(["remove", path])
def module(module_name, module_args, task_vars):
    calls.append(["module", module_name, module_args])
    return {"changed": True}
plugin._execute_module = module
with mock.patch("ansible.plugins.action.ActionBase.run", return_value={}):
    result = plugin.run(task_vars={})
print(json.dumps({"result": result, "calls": calls}))
"""


def run_action(args: Dict[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-c", ACTION, json.dumps(args), "check" if check_mode else "run"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ships_the_archive_and_hands_the_module_its_temp_path(tmp_path: Any) -> None:
    archive = tmp_path / "praxis-source-abc.tar.gz"
    archive.write_bytes(b"archive")
    out = run_action({"src": str(archive), "archive": "/p/.praxis-os/.cache/praxis-source-abc.tar.gz", "commit": "abc"})
    remote = "/remote/tmp/ansible-tmp-1/praxis-source-abc.tar.gz"
    assert out["calls"][0] == ["transfer", str(archive), remote]
    assert out["calls"][1] == ["fixup", "/remote/tmp/ansible-tmp-1", remote]
    name, args = out["calls"][2][1:]
    assert name == "praxis.upgrade.praxis_content" and args["src"] == remote and args["commit"] == "abc"
    assert out["calls"][-1] == ["remove", "/remote/tmp/ansible-tmp-1"] and out["result"]["changed"] is True


def test_check_mode_ships_nothing_and_drops_src(tmp_path: Any) -> None:
    out = run_action({"src": str(tmp_path / "absent.tar.gz"), "archive": "/p/a.tar.gz"}, check_mode=True)
    kinds = [call[0] for call in out["calls"]]
    assert kinds == ["module", "remove"] and "src" not in out["calls"][0][2]


def test_a_missing_archive_fails_naming_it_before_any_module_runs(tmp_path: Any) -> None:
    out = run_action({"src": str(tmp_path / "absent.tar.gz"), "archive": "/p/a.tar.gz"})
    assert out["result"]["failed"] is True and "absent.tar.gz does not exist on the controller" in out["result"]["msg"]
    assert [call[0] for call in out["calls"]] == ["remove"]
    out = run_action({"src": str(tmp_path / "absent.tar.gz")})
    assert out["result"]["failed"] is True and "archive is not" in out["result"]["msg"]
