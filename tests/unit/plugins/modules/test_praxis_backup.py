# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""praxis_backup through main(): every state, check mode, diff mode, failures with a next step."""
from __future__ import annotations

import os

from ansible_collections.praxis.upgrade.plugins.modules import praxis_backup
from ansible_collections.praxis.upgrade.tests.unit.plugins.module_utils.test_backup import (
    make_install,
    simulate_upgrade,
    snapshot_tree,
    write,
)


def args(home, **extra):
    return dict(praxis_home=home, **extra)


def test_present_check_mode_writes_nothing_then_creates(tmp_path, run_module):
    project, home = make_install(tmp_path)
    before = snapshot_tree(project, skip=(), mtimes=True)
    planned, failed = run_module(praxis_backup, args(home), check_mode=True)
    assert not failed and planned["changed"] and planned["path"] is None
    assert snapshot_tree(project, skip=(), mtimes=True) == before
    assert not os.path.exists(os.path.join(home, ".backups"))

    result, failed = run_module(praxis_backup, args(home, session_id="s1"))
    assert not failed, result
    assert result["changed"] and result["verified"]
    assert (planned["file_count"], planned["bytes"], planned["venv_files"]) == \
        (result["file_count"], result["bytes"], result["venv_files"]) == (planned["file_count"], planned["bytes"], 5)
    assert result["file_count"] == 11  # 10 under .praxis-os (default paths) + the project .gitignore
    assert result["paths"]["UPDATE_LOG.txt"] == "absent" and result["venv_linked"] is True
    assert os.path.isfile(os.path.join(result["path"], "MANIFEST.json"))
    assert os.path.isfile(os.path.join(result["path"], "project", ".gitignore"))


def test_verified_and_tampered(tmp_path, run_module):
    project, home = make_install(tmp_path)
    created, failed = run_module(praxis_backup, args(home))
    assert not failed, created
    result, failed = run_module(praxis_backup, args(home, state="verified"))
    assert not failed and result["changed"] is False and result["verified"] and result["name"] == created["name"]
    write(os.path.join(created["path"], "files", "config.json"), "tampered\n")
    result, failed = run_module(praxis_backup, args(home, state="verified", backup=created["name"]))
    assert failed and result["changed"] is False and result["changed_files"] == ["files/config.json"]
    assert "failed verification: 1 changed, e.g. files/config.json" in result["msg"]
    assert "praxis_backup_name=" in result["msg"]
    result, failed = run_module(praxis_backup, args(home, state="restored"))
    assert failed and "failed verification" in result["msg"]


def test_restored_check_diff_then_real(tmp_path, run_module):
    project, home = make_install(tmp_path)
    original = snapshot_tree(project)
    created, failed = run_module(praxis_backup, args(home, project_files=[".gitignore", ".cursorrules"]))
    assert not failed, created
    simulate_upgrade(project, home)
    upgraded = snapshot_tree(project, mtimes=True)
    planned, failed = run_module(praxis_backup, args(home, state="restored", backup=created["path"]),
                                 check_mode=True, diff=True)
    assert not failed and planned["changed"] and planned["venv_restored"]
    assert snapshot_tree(project, mtimes=True) == upgraded
    diff = planned["diff"]
    assert diff["before"]["files/mcp_server/server.py"] == "differs from the backup"
    assert diff["after"]["files/mcp_server/newpkg/"] == "absent"
    assert diff["after"]["venv"] == "as in the snapshot"
    result, failed = run_module(praxis_backup, args(home, state="restored"))
    assert not failed and result["changed"] and result["verified"]
    assert (result["restored"], result["removed"]) == (planned["restored"], planned["removed"])
    restored = snapshot_tree(project)
    assert restored == original  # bytecode included

    again, failed = run_module(praxis_backup, args(home, state="restored"))
    assert not failed and again["changed"] is False and again["unchanged"] == created["file_count"] + 1  # + the pyc


def test_restored_without_venv_leaves_venv(tmp_path, run_module):
    project, home = make_install(tmp_path)
    run_module(praxis_backup, args(home))
    write(os.path.join(home, "venv", "added.py"), "x\n")
    result, failed = run_module(praxis_backup, args(home, state="restored", venv=False))
    assert not failed and result["changed"] is False and result["venv_restored"] is False
    assert os.path.exists(os.path.join(home, "venv", "added.py"))


def test_pruned_check_and_real(tmp_path, run_module):
    project, home = make_install(tmp_path)
    names = [run_module(praxis_backup, args(home, venv=False))[0]["name"] for attempt in range(4)]
    planned, failed = run_module(praxis_backup, args(home, state="pruned", keep=2, protect=[names[0]]),
                                 check_mode=True)
    assert not failed and planned["changed"] and planned["pruned"] == [names[1]]
    assert sorted(os.listdir(os.path.join(home, ".backups"))) == sorted(names)
    result, failed = run_module(praxis_backup, args(home, state="pruned", keep=2, protect=[names[0]]))
    assert not failed and result["pruned"] == [names[1]] and result["kept"] == [names[0]] + names[2:]
    result, failed = run_module(praxis_backup, args(home, state="pruned", keep=2, protect=[names[0]]))
    assert not failed and result["changed"] is False


def test_errors_are_clear(tmp_path, run_module):
    project, home = make_install(tmp_path)
    result, failed = run_module(praxis_backup, args(home, state="verified"))
    assert failed and "no complete backup in" in result["msg"] and "state=present" in result["msg"]
    result, failed = run_module(praxis_backup, args(home, state="restored", backup="2020-01-01-000000"))
    assert failed and "does not exist. Next: list the backups" in result["msg"]
    result, failed = run_module(praxis_backup, args(home, paths=["../outside"]))
    assert failed and "unsafe path" in result["msg"] and "fix the paths option" in result["msg"]
    result, failed = run_module(praxis_backup, args(str(tmp_path / "missing")))
    assert failed and "is not a directory" in result["msg"]
    os.chmod(home, 0o755)
    root = tmp_path / "ro"
    write(str(root), "a file where the backup root should be\n")
    result, failed = run_module(praxis_backup, args(home, backup_root=str(root), venv=False))
    assert failed and "check permissions and free space" in result["msg"]


def test_present_diff_is_a_readable_backup_plan(tmp_path, run_module):
    project, home = make_install(tmp_path)
    planned, failed = run_module(praxis_backup, args(home), check_mode=True, diff=True)
    assert not failed
    text = planned["diff"]["prepared"]
    assert text.startswith("backup: would create %s" % os.path.join(home, ".backups", "<YYYY-MM-DD-HHMMSS>"))
    assert "%d files" % planned["file_count"] in text and "mcp_server" in text
    assert "hard-link snapshot of 5 files + pip freeze" in text
    done, failed = run_module(praxis_backup, args(home, session_id="s1"), diff=True)
    assert not failed and done["diff"]["prepared"].startswith("backup: created %s" % done["path"])
