# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup.py against real temp trees: a fake installation, a fake venv whose python answers pip freeze."""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from datetime import datetime, timezone

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import backup
from ansible_collections.praxis.upgrade.plugins.module_utils.backup import BackupError
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import UnsafePathError, atomic_write_json, sha256_file

PATHS = ["mcp_server", "scripts", "standards/universal", "workflows", "usage", "config.json",
         "VERSION.txt", ".cache/base-manifest.json"]
FREEZE = "mcp==2.3.0\nhumanize==4.17.0\n"
NOW = datetime(2026, 11, 24, 10, 15, 0, tzinfo=timezone.utc)


def write(path, text, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(path, mode)


def make_venv(venv):
    """A small venv: its python is a script answering `-m pip freeze`; symlinks; an empty dir."""
    write(os.path.join(venv, "bin", "python"),
          '#!/bin/sh\nif [ "$1 $2 $3" = "-m pip freeze" ]; then printf "%s"; exit 0; fi\n'
          'echo "unexpected: $*" >&2; exit 3\n' % FREEZE.replace("\n", "\\n"), 0o755)
    os.symlink("python", os.path.join(venv, "bin", "python3"))
    os.symlink(sys.executable, os.path.join(venv, "bin", "python3.11"))
    site = os.path.join(venv, "lib", "python3.11", "site-packages")
    write(os.path.join(site, "mcp", "__init__.py"), "VERSION = '2.3.0'\n")
    write(os.path.join(site, "mcp", "server.py"), "def serve():\n    return 1\n")
    write(os.path.join(site, "humanize", "__init__.py"), "x = 1\n")
    write(os.path.join(venv, "pyvenv.cfg"), "home = /usr/bin\n")
    os.makedirs(os.path.join(venv, "include"))
    os.symlink("lib", os.path.join(venv, "lib64"))


def make_install(tmp_path):
    project = tmp_path / "project"
    home = project / ".praxis-os"
    h = str(home)
    write(os.path.join(h, "mcp_server", "__init__.py"), "")
    write(os.path.join(h, "mcp_server", "server.py"), "print('v1')\n")
    write(os.path.join(h, "mcp_server", "tools", "info.py"), "INFO = 1\n")
    write(os.path.join(h, "mcp_server", "run.sh"), "#!/bin/sh\n", 0o750)
    write(os.path.join(h, "mcp_server", "__pycache__", "server.cpython-311.pyc"), "cache")
    os.makedirs(os.path.join(h, "mcp_server", "empty"))
    write(os.path.join(h, "scripts", "build_rag_index.py"), "print('index')\n")
    write(os.path.join(h, "standards", "universal", "a.md"), "# A\n")
    write(os.path.join(h, "standards", "development", "mine.md"), "user\n")
    write(os.path.join(h, "workflows", "wf1", "metadata.json"), "{}\n")
    write(os.path.join(h, "config.json"), '{"a": 1}\n', 0o600)
    write(os.path.join(h, "VERSION.txt"), "commit=aaa\n")
    write(os.path.join(h, ".cache", "base-manifest.json"), '{"files": {}}\n')
    write(str(project / ".gitignore"), ".praxis-os/venv/\n")
    make_venv(os.path.join(h, "venv"))
    return str(project), h


@pytest.fixture
def install(tmp_path):
    return make_install(tmp_path)


def snapshot_tree(root, skip=(".backups",), mtimes=False):
    """What matters about a tree: files (hash, mode, size), symlinks (target), dirs (mode); mtimes in venvs.

    Restored framework files get a fresh mtime (they are rewritten); venv files keep theirs (hard links).
    With `mtimes`, every file's mtime counts (to prove that nothing was written at all).
    """
    state = {}
    for current, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in dirnames + filenames:
            path = os.path.join(current, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                in_venv = "venv" in rel.split(os.sep)[:2]
                state[rel] = ("file", sha256_file(path), stat.S_IMODE(st.st_mode), st.st_size,
                              st.st_mtime_ns if in_venv or mtimes else None)
    return state


def do_create(project, home, **kwargs):
    kwargs.setdefault("now", NOW)
    return backup.create(home, os.path.join(home, ".backups"), PATHS, project_dir=project,
                         project_files=[".gitignore", ".cursorrules"], session_id="s1", **kwargs)


def test_create_then_verify_ok(install):
    project, home = install
    result = do_create(project, home)
    assert result["name"] == "2026-11-24-101500"
    assert result["venv_linked"] is True and result["warnings"] == []
    assert result["venv_files"] == 5
    assert result["paths"] == {"mcp_server": "dir", "scripts": "dir", "standards/universal": "dir",
                               "workflows": "dir", "usage": "absent", "config.json": "file",
                               "VERSION.txt": "file", ".cache/base-manifest.json": "file"}
    assert result["project_paths"] == {".gitignore": "file", ".cursorrules": "absent"}
    path = result["path"]
    doc = json.load(open(os.path.join(path, "MANIFEST.json")))
    assert doc["files"]["files/mcp_server/server.py"] == sha256_file(os.path.join(home, "mcp_server", "server.py"))
    # bytecode is copied too (a rollback must not keep the new version's), outside file_count
    pyc = "files/mcp_server/__pycache__/server.cpython-311.pyc"
    assert doc["files"][pyc] == sha256_file(os.path.join(home, "mcp_server", "__pycache__", "server.cpython-311.pyc"))
    assert "files/mcp_server/__pycache__" in doc["dirs"]
    assert doc["residue"]["bytecode"] is True and doc["residue"]["index"] is None
    assert "files/mcp_server/server.py" in doc["residue"]["mtimes"]
    assert doc["modes"]["files/config.json"] == 0o600 and doc["modes"]["files/mcp_server/run.sh"] == 0o750
    assert "files/mcp_server/empty" in doc["dirs"]
    assert doc["project_paths"] == {".gitignore": "file", ".cursorrules": "absent"}
    assert doc["session_id"] == "s1" and doc["timestamp"] == "2026-11-24T10:15:00Z" and doc["venv"] is True
    assert result["file_count"] == len(doc["files"]) - 1 == 11
    assert open(os.path.join(path, "requirements-snapshot.txt")).read() == FREEZE
    snap = os.path.join(path, "venv-snapshot")
    live_init = os.path.join(home, "venv", "lib", "python3.11", "site-packages", "mcp", "__init__.py")
    assert os.stat(os.path.join(snap, "lib", "python3.11", "site-packages", "mcp", "__init__.py")).st_ino == \
        os.stat(live_init).st_ino
    assert os.readlink(os.path.join(snap, "bin", "python3.11")) == sys.executable
    assert os.path.isdir(os.path.join(snap, "include"))
    vman = json.load(open(os.path.join(path, "VENV_MANIFEST.json")))
    assert vman["links"] == {"bin/python3": "python", "bin/python3.11": sys.executable, "lib64": "lib"}
    assert "include" in vman["dirs"]
    report = backup.verify(path)
    assert report["ok"] and report["venv_ok"], report
    assert (report["missing"], report["changed"], report["extra"]) == ([], [], [])


def test_unique_within_one_second(install):
    project, home = install
    names = [do_create(project, home)["name"] for attempt in range(3)]
    assert names == ["2026-11-24-101500", "2026-11-24-101500-2", "2026-11-24-101500-3"]
    listed = backup.list_backups(os.path.join(home, ".backups"))
    assert [b["name"] for b in listed] == names
    assert all(b["complete"] and b["session_id"] == "s1" for b in listed)


def test_tampered_backup_fails_verify_and_restore_refuses(install):
    project, home = install
    path = do_create(project, home)["path"]
    write(os.path.join(path, "files", "mcp_server", "server.py"), "print('evil')\n")
    os.remove(os.path.join(path, "files", "scripts", "build_rag_index.py"))
    write(os.path.join(path, "files", "mcp_server", "planted.py"), "x\n")
    report = backup.verify(path)
    assert not report["ok"]
    assert report["changed"] == ["files/mcp_server/server.py"]
    assert report["missing"] == ["files/scripts/build_rag_index.py"]
    assert report["extra"] == ["files/mcp_server/planted.py"]
    before = snapshot_tree(home)
    write(os.path.join(home, "mcp_server", "server.py"), "print('v2')\n")
    before = snapshot_tree(home)
    with pytest.raises(BackupError) as err:
        backup.restore(path, home, project)
    message = str(err.value)
    assert "failed verification: 1 changed, 1 missing, 1 extra" in message
    assert "e.g. files/mcp_server/server.py" in message and "praxis_backup_name=" in message
    assert snapshot_tree(home) == before


def test_venv_snapshot_damage_fails_verify(install):
    project, home = install
    path = do_create(project, home)["path"]
    live = os.path.join(home, "venv", "pyvenv.cfg")
    with open(live, "a") as handle:  # in place: the hard link in the snapshot changes with it
        handle.write("x = 1\n")
    os.remove(os.path.join(path, "venv-snapshot", "bin", "python3"))
    report = backup.verify(path)
    assert not report["ok"] and not report["venv_ok"]
    assert report["venv_problems"] == ["missing: bin/python3", "changed: pyvenv.cfg"]
    with pytest.raises(BackupError, match="2 venv snapshot problems"):
        backup.restore(path, home, project, check=True)


def simulate_upgrade(project, home):
    write(os.path.join(home, "mcp_server", "server.py"), "print('v2')\n")  # changed
    os.chmod(os.path.join(home, "mcp_server", "run.sh"), 0o755)  # mode changed only
    os.chmod(os.path.join(home, "mcp_server", "tools"), 0o700)  # dir mode changed
    write(os.path.join(home, "mcp_server", "tools", "new_tool.py"), "NEW = 1\n")  # added
    os.remove(os.path.join(home, "mcp_server", "tools", "info.py"))  # removed
    write(os.path.join(home, "mcp_server", "newpkg", "__init__.py"), "")  # new dir
    write(os.path.join(home, "mcp_server", "newpkg", "__pycache__", "x.pyc"), "c")
    os.rmdir(os.path.join(home, "mcp_server", "empty"))
    write(os.path.join(home, "usage", "guide.md"), "new\n")  # path absent at backup time
    write(os.path.join(home, "config.json"), '{"a": 2}\n')
    write(os.path.join(project, ".gitignore"), ".praxis-os/venv/\n.praxis-os/.cache/\n")
    write(os.path.join(project, ".cursorrules"), "rules\n")
    write(os.path.join(home, "mcp_server", "__pycache__", "server.cpython-311.pyc"), "cache v2")
    venv = os.path.join(home, "venv")
    init = os.path.join(venv, "lib", "python3.11", "site-packages", "mcp", "__init__.py")
    os.remove(init)  # pip replaces files with new inodes
    write(init, "VERSION = '3.0.0'\n")
    write(os.path.join(venv, "lib", "python3.11", "site-packages", "newdep", "__init__.py"), "")
    os.remove(os.path.join(venv, "bin", "python3"))
    os.symlink("/usr/bin/python3", os.path.join(venv, "bin", "python3"))


def test_restore_after_upgrade_is_exact(install):
    project, home = install
    original = snapshot_tree(project)
    path = do_create(project, home)["path"]
    simulate_upgrade(project, home)
    upgraded = snapshot_tree(project, mtimes=True)

    planned = backup.restore(path, home, project, check=True)
    assert snapshot_tree(project, mtimes=True) == upgraded  # check mode wrote nothing
    result = backup.restore(path, home, project)
    for key in ("restored", "removed", "unchanged", "venv_restored", "restored_paths", "removed_paths"):
        assert planned[key] == result[key], key
    assert result["venv_restored"] is True
    assert "files/mcp_server/server.py" in result["restored_paths"]
    assert "files/mcp_server/run.sh" in result["restored_paths"]
    assert "files/mcp_server/tools/info.py" in result["restored_paths"]
    assert "files/mcp_server/empty/" in result["restored_paths"]
    assert "files/mcp_server/newpkg/" in result["removed_paths"]
    assert "files/usage/" in result["removed_paths"] and "project/.cursorrules" in result["removed_paths"]
    assert "project/.gitignore" in result["restored_paths"]
    assert result["removed"] == 5  # new_tool.py, newpkg (2 files), usage/guide.md, .cursorrules
    assert result["unchanged"] == 6  # of 11 files: server.py, run.sh, info.py, config.json, .gitignore restored

    restored = snapshot_tree(project)
    # bytecode included: the old pyc is back, the new package's bytecode is gone with it
    assert restored == original
    assert not [n for n in os.listdir(home) if n.startswith("venv.")]  # no rollback/restore leftovers

    again = backup.restore(path, home, project)
    assert (again["restored"], again["removed"], again["venv_restored"]) == (0, 0, False)
    assert backup.verify(path)["ok"]


def test_restore_rebuilds_missing_venv_and_cleans_leftovers(install):
    project, home = install
    path = do_create(project, home)["path"]
    before = snapshot_tree(os.path.join(home, "venv"))
    # An interrupted earlier restore: live venv renamed away, half-built new one left behind.
    os.rename(os.path.join(home, "venv"), os.path.join(home, "venv.rollback-99999"))
    os.mkdir(os.path.join(home, "venv.restore-99999"))
    planned = backup.restore(path, home, project, check=True)
    assert planned["venv_restored"] and planned["venv_changes"] == ["missing: venv"]
    assert os.path.isdir(os.path.join(home, "venv.restore-99999"))
    result = backup.restore(path, home, project)
    assert result["venv_restored"] and result["restored"] == 0
    assert snapshot_tree(os.path.join(home, "venv")) == before
    assert sorted(n for n in os.listdir(home) if n.startswith("venv")) == ["venv"]


def test_restore_replaces_wrong_kinds(install):
    project, home = install
    path = do_create(project, home)["path"]
    original = snapshot_tree(home)
    os.remove(os.path.join(home, "config.json"))
    os.mkdir(os.path.join(home, "config.json"))  # dir where a file belongs
    os.remove(os.path.join(home, "mcp_server", "__init__.py"))
    os.symlink("/etc/hostname", os.path.join(home, "mcp_server", "__init__.py"))  # symlink where a file belongs
    os.rename(os.path.join(home, "scripts"), os.path.join(home, "scripts.real"))
    os.symlink("scripts.real", os.path.join(home, "scripts"))  # symlink where a dir belongs
    os.rmdir(os.path.join(home, "mcp_server", "empty"))
    write(os.path.join(home, "mcp_server", "empty"), "file where a dir belongs\n")
    os.symlink("/tmp", os.path.join(home, "mcp_server", "tools", "linkdir"))
    write(os.path.join(home, "usage"), "a file where nothing belongs\n")
    result = backup.restore(path, home, project)
    os.remove(os.path.join(home, "scripts.real", "build_rag_index.py"))
    os.rmdir(os.path.join(home, "scripts.real"))
    assert snapshot_tree(home) == original
    assert "files/usage" in result["removed_paths"] and "files/mcp_server/tools/linkdir" in result["removed_paths"]


def inodes(root):
    """{rel: inode} of the regular files of a tree."""
    found = {}
    for current, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(current, name)
            if not os.path.islink(path):
                found[os.path.relpath(path, root)] = os.lstat(path).st_ino
    return found


def test_venv_restore_syncs_in_place_touching_only_what_pip_changed(install):
    project, home = install
    path = do_create(project, home)["path"]
    venv, snapshot = os.path.join(home, "venv"), os.path.join(path, backup.VENV_SNAPSHOT)
    original = snapshot_tree(venv, mtimes=True)
    untouched = os.path.join("lib", "python3.11", "site-packages", "humanize", "__init__.py")
    kept_inode = os.lstat(os.path.join(venv, untouched)).st_ino
    simulate_upgrade(project, home)  # mcp/__init__.py a new inode, newdep/ added, bin/python3 retargeted
    site = os.path.join(venv, "lib", "python3.11", "site-packages")
    with open(os.path.join(site, "mcp", "server.py"), "a") as handle:  # same size and mtime, same inode:
        handle.write("")  # not a difference (it is the snapshot's file)
    os.rename(os.path.join(venv, "include"), os.path.join(venv, "include.old"))
    write(os.path.join(venv, "include"), "a file where a dir belongs\n")
    os.chmod(os.path.join(site, "humanize"), 0o700)
    write(os.path.join(site, "mcp", "server.py.praxis-restore-4242"), "temp of a killed restore\n")

    planned = backup.restore(path, home, project, check=True)
    assert planned["venv_changes"] == [
        "changed: bin/python3", "changed: include", "extra dir: include.old",
        "changed: lib/python3.11/site-packages/mcp/__init__.py",
        "extra: lib/python3.11/site-packages/mcp/server.py.praxis-restore-4242",
        "extra dir: lib/python3.11/site-packages/newdep", "extra: lib/python3.11/site-packages/newdep/__init__.py",
    ]  # humanize/'s mode is not a layout difference; mcp/server.py, appended nothing in place, is none either
    result = backup.restore(path, home, project)
    assert result["venv_restored"] and result["venv_changes"] == planned["venv_changes"]
    assert snapshot_tree(venv, mtimes=True) == original
    assert oct(stat.S_IMODE(os.stat(os.path.join(site, "humanize")).st_mode)) == oct(0o755)
    assert inodes(venv) == inodes(snapshot)  # every file is the snapshot's own again
    assert os.lstat(os.path.join(venv, untouched)).st_ino == kept_inode  # and was never relinked
    assert sorted(n for n in os.listdir(home) if n.startswith("venv")) == ["venv"]
    assert backup.restore(path, home, project)["venv_restored"] is False


def test_venv_restore_rebuilds_a_recreated_venv_from_the_snapshot(install):
    project, home = install
    path = do_create(project, home)["path"]
    venv = os.path.join(home, "venv")
    original = snapshot_tree(venv, mtimes=True)
    copy = os.path.join(home, "venv.copy")
    shutil.copytree(venv, copy, symlinks=True)  # same names and contents, every file a new inode
    shutil.rmtree(venv)
    os.rename(copy, venv)
    result = backup.restore(path, home, project)
    assert result["venv_change_count"] == len(inodes(venv))  # no file was the snapshot's: all relinked
    assert snapshot_tree(venv, mtimes=True) == original
    assert inodes(venv) == inodes(os.path.join(path, backup.VENV_SNAPSHOT))


def test_venv_copy_fallback_across_file_systems(tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(str(tmp_path)).st_dev:
        pytest.skip("needs a second file system (/dev/shm tmpfs) for EXDEV")
    project, home = make_install(tmp_path)
    import tempfile
    root = tempfile.mkdtemp(dir=shm)
    try:
        result = backup.create(home, root, ["mcp_server"], now=NOW)
        assert result["venv_linked"] is False and "copied, not hard-linked" in result["warnings"][0]
        assert backup.verify(result["path"])["ok"]
        simulate_upgrade(project, home)
        before = json.load(open(os.path.join(result["path"], "VENV_MANIFEST.json")))
        assert backup.restore(result["path"], home)["venv_restored"]
        after = backup._venv_state(os.path.join(home, "venv"))
        assert backup.venv_diff(before, after) == []
    finally:
        import shutil
        shutil.rmtree(root)


def links_and_dirs(root):
    """{rel: ("link", target) | ("dir", mode)} of a tree: what a snapshot must reproduce besides its files."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = ("dir", stat.S_IMODE(os.lstat(path).st_mode))
    return found


@pytest.mark.parametrize("cp", ["gnu", "missing", "failing"])
def test_venv_snapshot_is_the_same_with_or_without_cp(tmp_path, monkeypatch, cp):
    """`cp -al` beside the walk (GNU), the walk alone (no cp) and the walk after a cp that failed half-way
    give the same snapshot: every file the live inode, symlinks as links, dir modes; and the same layout."""
    project, home = make_install(tmp_path)
    venv = os.path.join(home, "venv")
    os.chmod(os.path.join(venv, "include"), 0o750)
    if cp == "missing":
        monkeypatch.setattr(backup.shutil, "which", lambda name: None)
    elif cp == "failing":  # a cp that makes part of the tree, then fails: its partial tree must not remain
        fake = tmp_path / "fake-cp"
        write(str(fake), '#!/bin/sh\nfor last; do :; done\nmkdir -p "$last/bin"\necho half > "$last/bin/x"\nexit 1\n', 0o755)
        monkeypatch.setattr(backup.shutil, "which", lambda name: str(fake))
    walks = []
    real_walk = backup._walk_venv
    monkeypatch.setattr(backup, "_walk_venv", lambda root, mirror=None: walks.append(mirror) or real_walk(root, mirror))
    dest = str(tmp_path / "snap")
    layout, linked = backup.snapshot_venv(venv, dest)
    assert linked is True
    # GNU cp links beside a describing walk; else the walk links (after the failed cp's walk)
    assert walks == {"gnu": [None], "missing": [dest], "failing": [None, dest]}[cp]
    assert layout == backup._venv_state(venv)
    assert inodes(dest) == inodes(venv)
    assert links_and_dirs(dest) == links_and_dirs(venv)
    assert stat.S_IMODE(os.stat(dest).st_mode) == stat.S_IMODE(os.stat(venv).st_mode)


def test_pip_freeze_runs_at_a_lower_priority_than_the_snapshot(tmp_path):
    """The freeze runs beside the snapshot; at nice +10 it takes the idle CPU, not the snapshot's."""
    venv = str(tmp_path / "venv")
    write(os.path.join(venv, "bin", "python"), "#!/bin/sh\nnice\n", 0o755)  # `nice` alone prints the niceness
    proc = backup.start_pip_freeze(venv)
    out = backup.finish_pip_freeze(proc, venv, timeout=30)
    assert int(out) == min(19, os.nice(0) + 10)


def test_create_without_venv_and_plan(install):
    project, home = install
    planned = backup.plan(home, PATHS, project, [".gitignore"], venv="venv")
    result = do_create(project, home, venv=None)
    assert result["venv_files"] == 0 and not os.path.exists(os.path.join(result["path"], "venv-snapshot"))
    assert planned["file_count"] == result["file_count"] - 0 and planned["bytes"] == result["bytes"]
    assert planned["venv_files"] == 5 and planned["paths"]["usage"] == "absent"
    assert backup.verify(result["path"])["ok"]
    assert backup.restore(result["path"], home, project)["venv_restored"] is False


def test_pip_freeze_failures_are_clear_and_leave_nothing(install):
    project, home = install
    python = os.path.join(home, "venv", "bin", "python")
    write(python, "#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n", 0o755)
    with pytest.raises(BackupError, match=r"pip freeze of .* failed \(exit 1: No module named pip\); check the venv"):
        do_create(project, home)
    assert backup.list_backups(os.path.join(home, ".backups")) == []
    write(python, "#!/bin/sh\nsleep 5\n", 0o755)
    with pytest.raises(BackupError, match="did not finish within 0.2s"):
        do_create(project, home, pip_timeout=0.2)
    os.remove(python)
    with pytest.raises(BackupError, match="cannot run .*bin/python"):
        do_create(project, home)


def test_bad_inputs_refused(install, tmp_path):
    project, home = install
    root = os.path.join(home, ".backups")
    for paths, pattern in ((["../etc"], "unsafe path"), (["/etc"], "unsafe path"),
                           (["mcp_server", "mcp_server/tools"], "lies inside"), ([".backups"], "contains the backup root")):
        with pytest.raises(BackupError, match=pattern):
            backup.create(home, root, paths, venv=None)
    with pytest.raises(BackupError, match="is not a directory"):
        backup.create(str(tmp_path / "nope"), root, PATHS)
    with pytest.raises(BackupError, match="venv .* does not exist"):
        backup.create(home, root, PATHS, venv="novenv")
    os.symlink("/nonexistent", os.path.join(home, "dangling"))
    with pytest.raises(BackupError, match="symlink pointing outside the installation"):
        backup.create(home, root, ["dangling"], venv=None)
    assert os.listdir(root) == []  # the failed backup was removed


def test_a_link_leaving_its_tree_is_refused_in_the_same_walk_that_copies(install):
    project, home = install
    root = os.path.join(home, ".backups")
    os.symlink("../../standards", os.path.join(home, "mcp_server", "tools", "elsewhere"))
    with pytest.raises(UnsafePathError, match="points outside .*mcp_server"):
        backup.create(home, root, ["mcp_server"], venv=None)
    assert os.listdir(root) == []  # the half-copied backup was removed


@pytest.mark.parametrize("mutate, pattern", [
    (lambda d: d["files"].update({"files/../../etc/passwd": "0" * 64}), "'..'"),
    (lambda d: d["files"].update({"/etc/passwd": "0" * 64}), "unsafe path"),
    (lambda d: d["files"].update({"other/x": "0" * 64}), "outside files/ and project/"),
    (lambda d: d["paths"].update({"../x": "dir"}), "unsafe path"),
    (lambda d: d["paths"].update({"x": "weird"}), "must map paths"),
    (lambda d: d["dirs"].append("files/../x"), "unsafe path"),
    (lambda d: d.update(modes=[]), "'modes' a mapping"),
    (lambda d: d["modes"].update({"files/config.json": "rwx"}), "integers"),
    (lambda d: d.update(venv_name="../venv"), "unsafe path"),
])
def test_unsafe_manifest_entries_refused(install, mutate, pattern):
    project, home = install
    path = do_create(project, home)["path"]
    doc = json.load(open(os.path.join(path, "MANIFEST.json")))
    mutate(doc)
    atomic_write_json(os.path.join(path, "MANIFEST.json"), doc)
    before = snapshot_tree(project)
    with pytest.raises(BackupError, match=pattern):
        backup.verify(path)
    with pytest.raises(BackupError, match="another backup"):
        backup.restore(path, home, project)
    assert snapshot_tree(project) == before


def test_unsafe_venv_manifest_refused(install):
    project, home = install
    path = do_create(project, home)["path"]
    vpath = os.path.join(path, "VENV_MANIFEST.json")
    atomic_write_json(vpath, {"files": {"../../evil": [1, 1, 420]}, "links": {}, "dirs": []})
    with pytest.raises(BackupError, match="VENV_MANIFEST.json: unsafe path"):
        backup.verify(path)
    atomic_write_json(vpath, [])
    with pytest.raises(BackupError, match="not a JSON object"):
        backup.verify(path)
    os.remove(vpath)
    with pytest.raises(BackupError, match="VENV_MANIFEST.json is missing"):
        backup.verify(path)


def test_incomplete_backup_rejected(install):
    project, home = install
    path = do_create(project, home)["path"]
    os.remove(os.path.join(path, "MANIFEST.json"))
    with pytest.raises(BackupError, match="incomplete"):
        backup.verify(path)
    with open(os.path.join(path, "MANIFEST.json"), "w") as handle:
        handle.write("{not json")
    with pytest.raises(BackupError, match="not valid JSON"):
        backup.restore(path, home)
    assert backup.list_backups(os.path.join(home, ".backups"))[0]["timestamp"] is None


def make_backup_dir(root, name, complete=True):
    os.makedirs(os.path.join(root, name))
    if complete:
        atomic_write_json(os.path.join(root, name, "MANIFEST.json"), {"timestamp": name, "files": {}, "session_id": name})


def test_list_latest_resolve(tmp_path):
    root = str(tmp_path / "b")
    assert backup.list_backups(root) == [] and backup.latest(root) is None
    with pytest.raises(BackupError, match="no complete backup"):
        backup.resolve(root)
    for name in ("2026-01-01-000000-10", "2026-01-01-000000", "2026-01-01-000000-2", "2026-01-02-000000"):
        make_backup_dir(root, name, complete=name != "2026-01-02-000000")
    os.makedirs(os.path.join(root, "not-a-backup"))
    names = [b["name"] for b in backup.list_backups(root)]
    assert names == ["2026-01-01-000000", "2026-01-01-000000-2", "2026-01-01-000000-10", "2026-01-02-000000"]
    assert backup.latest(root)["name"] == "2026-01-01-000000-10"
    assert backup.resolve(root) == os.path.join(root, "2026-01-01-000000-10")
    assert backup.resolve(root, "2026-01-01-000000") == os.path.join(root, "2026-01-01-000000")
    assert backup.resolve(root, os.path.join(root, "2026-01-01-000000")) == os.path.join(root, "2026-01-01-000000")
    with pytest.raises(BackupError, match="does not exist. Next: list the backups"):
        backup.resolve(root, "2025-01-01-000000")
    with pytest.raises(BackupError, match="not a backup name"):
        backup.resolve(root, "..")
    with pytest.raises(BackupError, match="not inside this installation's backup directory"):
        backup.resolve(root, str(tmp_path / "elsewhere" / "2026-01-01-000000"))


def test_prune_rules(tmp_path):
    root = str(tmp_path / "b")
    layout = [("2026-01-01-000000", True), ("2026-01-02-000000", False), ("2026-01-03-000000", True),
              ("2026-01-04-000000", True), ("2026-01-05-000000", True), ("2026-01-05-000000-2", True),
              ("2026-01-06-000000", False)]
    for name, complete in layout:
        make_backup_dir(root, name, complete)
    planned = backup.prune(root, keep=2, protect=[os.path.join(root, "2026-01-03-000000")], check=True)
    assert sorted(os.listdir(root)) == sorted(name for name, complete in layout)  # check mode removed nothing
    assert planned["removed"] == ["2026-01-01-000000", "2026-01-02-000000", "2026-01-04-000000"]
    # newest two complete kept, protected kept, incomplete newer than the newest complete kept
    assert planned["kept"] == ["2026-01-03-000000", "2026-01-05-000000", "2026-01-05-000000-2", "2026-01-06-000000"]
    assert backup.prune(root, keep=2, protect=["2026-01-03-000000"]) == planned
    assert sorted(os.listdir(root)) == planned["kept"]
    assert backup.prune(root, keep=1)["kept"] == ["2026-01-05-000000-2", "2026-01-06-000000"]
    with pytest.raises(BackupError, match="keep must be at least 1"):
        backup.prune(root, keep=0)


def test_prune_without_complete_backups_keeps_everything(tmp_path):
    root = str(tmp_path / "b")
    make_backup_dir(root, "2026-01-01-000000", complete=False)
    assert backup.prune(root, keep=1) == {"removed": [], "kept": ["2026-01-01-000000"]}


def test_check_mode_restore_writes_nothing(install):
    project, home = install
    path = do_create(project, home)["path"]
    simulate_upgrade(project, home)
    before = snapshot_tree(project, skip=(), mtimes=True)
    result = backup.restore(path, home, project, check=True)
    assert result["restored"] and result["removed"] and result["venv_restored"]
    assert snapshot_tree(project, skip=(), mtimes=True) == before


def test_restore_needs_project_dir(install):
    project, home = install
    path = do_create(project, home)["path"]
    with pytest.raises(BackupError, match="project directory .* does not exist; pass project_dir"):
        backup.restore(path, home, project_dir=os.path.join(project, "gone"))


def test_restore_removes_what_the_new_version_left_at_runtime(install):
    """Issue 7 item 9: bytecode, index tables and the rebuild flag the new version created are residue."""
    project, home = install
    index = os.path.join(home, ".cache", "vector_index")
    write(os.path.join(index, "agent_os_standards.lance", "data.json"), "{\"chunks\": []}\n")
    server_py = os.path.join(home, "mcp_server", "server.py")
    os.utime(server_py, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    original = snapshot_tree(project, mtimes=True)
    path = do_create(project, home)["path"]
    doc = json.load(open(os.path.join(path, "MANIFEST.json")))
    assert doc["residue"]["index"] == ["agent_os_standards.lance"] and doc["residue"]["rebuild_flag"] is False

    # the new version ran: a new table, the rebuild flag, new bytecode, the same source rewritten
    write(os.path.join(index, "praxis_os_standards.lance", "data.json"), "{\"chunks\": [1]}\n")
    write(os.path.join(home, "standards", ".rebuild_index"), "")
    write(os.path.join(home, "scripts", "__pycache__", "build_rag_index.cpython-311.pyc"), "new bytecode")
    write(os.path.join(home, "mcp_server", "__pycache__", "server.cpython-311.pyc"), "recompiled")
    write(server_py, "print('v1')\n")  # same bytes, new mtime: the old pyc would be stale

    planned = backup.restore(path, home, project, check=True)
    result = backup.restore(path, home, project)
    assert planned["removed_paths"] == result["removed_paths"]
    assert "files/.cache/vector_index/praxis_os_standards.lance/" in result["removed_paths"]
    assert "standards/.rebuild_index" in result["removed_paths"]
    assert "files/scripts/__pycache__/" in result["removed_paths"]
    assert "files/mcp_server/server.py (mtime)" in result["restored_paths"]
    assert snapshot_tree(project, mtimes=True) == original  # bytes, modes and the .py mtimes the pyc needs


def test_restore_puts_back_the_index_files_the_new_builder_rewrote_in_place(install):
    """Found by `make realworld` (issue 7): upstream's builder writes `.cache/vector_index/metadata.json`
    (build time, chunk count, file mtimes) in place beside the tables, and a rebuild of a table of the
    same name adds versions inside it. After a rollback the old server read the new metadata and the
    tree was not byte-identical; only new table dirs were removed."""
    project, home = install
    index = os.path.join(home, ".cache", "vector_index")
    write(os.path.join(index, "agent_os_standards.lance", "_versions", "1.manifest"), "v1 of the old table")
    write(os.path.join(index, "metadata.json"), '{"total_chunks": 2499, "build_type": "full"}\n')
    original = snapshot_tree(project, mtimes=True)
    path = do_create(project, home)["path"]
    assert backup.verify(path)["ok"]

    # the new version rebuilt: a new table, metadata.json rewritten in place, a new version of the old table
    write(os.path.join(index, "praxis_os_standards.lance", "_versions", "1.manifest"), "new table")
    write(os.path.join(index, "metadata.json"), '{"total_chunks": 2501, "build_type": "full"}\n')
    write(os.path.join(index, "agent_os_standards.lance", "_versions", "2.manifest"), "v2 of the old table")

    planned = backup.restore(path, home, project, check=True)
    result = backup.restore(path, home, project)
    assert planned["restored_paths"] == result["restored_paths"]
    assert "files/.cache/vector_index/metadata.json" in result["restored_paths"]
    assert "files/.cache/vector_index/agent_os_standards.lance/_versions/2.manifest" in result["removed_paths"]
    after = snapshot_tree(project, mtimes=True)
    changed = sorted(rel for rel in set(original) | set(after) if original.get(rel) != after.get(rel))
    # metadata.json is rewritten (new mtime, same bytes); everything else untouched
    assert changed == [os.path.join(".praxis-os", ".cache", "vector_index", "metadata.json")]
    assert original[changed[0]][:4] == after[changed[0]][:4]


def test_restore_without_an_index_at_backup_time_removes_the_new_one(install):
    project, home = install
    original = snapshot_tree(project)
    path = do_create(project, home)["path"]
    write(os.path.join(home, ".cache", "vector_index", "metadata.json"), "{}\n")
    result = backup.restore(path, home, project)
    assert "files/.cache/vector_index/" in result["removed_paths"]
    assert snapshot_tree(project) == original


def test_restore_with_an_old_backup_keeps_bytecode_and_index(install):
    """A backup made before residue was recorded leaves caches alone (it cannot know what was there)."""
    project, home = install
    path = do_create(project, home)["path"]
    manifest = os.path.join(path, "MANIFEST.json")
    doc = json.load(open(manifest))
    del doc["residue"]
    doc["files"] = {k: v for k, v in doc["files"].items() if "__pycache__" not in k}
    doc["dirs"] = [d for d in doc["dirs"] if "__pycache__" not in d]
    os.remove(os.path.join(path, "files", "mcp_server", "__pycache__", "server.cpython-311.pyc"))
    with open(manifest, "w") as handle:
        json.dump(doc, handle)
    write(os.path.join(home, ".cache", "vector_index", "praxis_os_standards.lance", "data.json"), "{}\n")
    write(os.path.join(home, "scripts", "__pycache__", "x.cpython-311.pyc"), "new")
    result = backup.restore(path, home, project)
    assert result["removed"] == 0
    assert os.path.exists(os.path.join(home, "scripts", "__pycache__", "x.cpython-311.pyc"))
    assert os.path.isdir(os.path.join(home, ".cache", "vector_index", "praxis_os_standards.lance"))


def test_in_tree_symlinks_are_backed_up_and_restored_as_links(tmp_path):
    """issue 8 item 8: a user's link inside a framework tree stays a link (the manifest no longer follows it)."""
    from ansible_collections.praxis.upgrade.plugins.module_utils import backup as bk

    home = tmp_path / "p" / ".praxis-os"
    flow = home / "workflows" / "mine"
    flow.mkdir(parents=True)
    (flow / "README.md").write_text("mine\n")
    os.symlink("README.md", str(flow / "LATEST.md"))
    os.symlink("mine", str(home / "workflows" / "alias"))  # a link to a directory
    made = bk.create(str(home), str(home / ".backups"), ["workflows"], venv=None)
    assert bk.verify(made["path"])["ok"]
    (flow / "LATEST.md").unlink()
    (flow / "LATEST.md").write_text("now a file\n")
    (home / "workflows" / "alias").unlink()
    done = bk.restore(made["path"], str(home), restore_venv=False)
    assert os.readlink(str(flow / "LATEST.md")) == "README.md" and done["restored"] >= 2
    assert os.readlink(str(home / "workflows" / "alias")) == "mine"
    again = bk.restore(made["path"], str(home), restore_venv=False)
    assert again["restored"] == 0 and again["removed"] == 0  # links already right: nothing to do


def test_backup_names_are_names_and_foreign_backups_are_refused(tmp_path):
    from ansible_collections.praxis.upgrade.plugins.module_utils import backup as bk

    mine, theirs = tmp_path / "a" / ".praxis-os", tmp_path / "b" / ".praxis-os"
    for home in (mine, theirs):
        (home / "workflows").mkdir(parents=True)
        (home / "workflows" / "w.md").write_text(str(home))
    other = bk.create(str(theirs), str(theirs / ".backups"), ["workflows"], venv=None)
    for bad in (other["path"], "../../b/.praxis-os/.backups/" + other["name"], "latest", ""):
        with pytest.raises(bk.BackupError):
            bk.resolve(str(mine / ".backups"), bk.check_name(bad) if bad else "x/y")
    copied = mine / ".backups" / other["name"]
    shutil.copytree(other["path"], str(copied), symlinks=True)
    with pytest.raises(bk.BackupError, match="belongs to the installation"):
        bk.restore(str(copied), str(mine), restore_venv=False)
    assert (mine / "workflows" / "w.md").read_text() == str(mine)  # nothing changed


def test_create_flushes_once_not_per_file(install, monkeypatch):
    """A backup is published by its manifest: its copies need no temp file or fsync each (10k user workflow
    files cost minutes of fsyncs), only one flush before the manifest. The fsync count does not grow with
    the number of files, and the flush comes before the manifest is written."""
    project, home = install
    calls = []
    real_fsync, real_write_json = os.fsync, backup.atomic_write_json
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(backup, "sync_filesystem", lambda path: calls.append("sync " + path))
    monkeypatch.setattr(backup, "atomic_write_json", lambda path, obj, *a, **kw: (
        calls.append("write " + os.path.basename(path)), real_write_json(path, obj, *a, **kw))[1])

    small = do_create(project, home, now=NOW)
    few = calls.count("fsync")
    for i in range(200):
        write(os.path.join(home, "workflows", "mine", "phase-%03d.md" % i), "step %d\n" % i)
    calls.clear()
    big = do_create(project, home, now=datetime(2026, 11, 24, 10, 16, 0, tzinfo=timezone.utc))
    assert big["file_count"] == small["file_count"] + 200
    assert calls.count("fsync") == few, calls
    assert calls.index("sync " + big["path"]) < calls.index("write MANIFEST.json")
    assert backup.verify(big["path"])["ok"], "the copies hold the bytes the manifest names"


def test_the_users_own_workflows_are_neither_copied_nor_restored(install):
    """Only the workflows the framework owns (the source's, the base manifest's) are backed up and restored:
    the user's own workflow beside them is not read, and an edit to it during the upgrade survives a rollback;
    a workflow the upgrade added is removed by the rollback (recorded absent)."""
    project, home = install
    write(os.path.join(home, "workflows", "mine", "phases", "0.md"), "my workflow\n")
    atomic_write_json(os.path.join(home, ".cache", "base-manifest.json"),
                      {"files": {"workflows/old_v1/a.md": "0" * 64}})
    write(os.path.join(home, "workflows", "old_v1", "a.md"), "old\n")
    paths = backup.owned_paths(home, PATHS, ["workflows/wf1", "workflows/new_v2"])
    assert [p for p in paths if p.startswith("workflows")] == ["workflows/new_v2", "workflows/old_v1", "workflows/wf1"]
    path = backup.create(home, os.path.join(home, ".backups"), paths, project_dir=project, session_id="s1",
                         now=NOW)["path"]
    doc = json.loads(open(os.path.join(path, backup.MANIFEST)).read())
    assert not [k for k in doc["files"] if "/mine/" in k]
    assert doc["paths"]["workflows/new_v2"] == "absent"

    write(os.path.join(home, "workflows", "new_v2", "x.md"), "added by the upgrade\n")
    write(os.path.join(home, "workflows", "wf1", "metadata.json"), '{"v": 2}\n')
    write(os.path.join(home, "workflows", "mine", "phases", "0.md"), "my workflow, edited meanwhile\n")
    backup.restore(path, home, project)
    assert not os.path.exists(os.path.join(home, "workflows", "new_v2"))
    assert open(os.path.join(home, "workflows", "wf1", "metadata.json")).read() == "{}\n"
    assert open(os.path.join(home, "workflows", "mine", "phases", "0.md")).read() == "my workflow, edited meanwhile\n"


def test_owned_paths_keep_the_whole_tree_when_ownership_is_unknown(install):
    project, home = install
    assert backup.owned_paths(home, PATHS, None) == PATHS
    write(os.path.join(home, ".cache", "base-manifest.json"), "{not json")
    assert backup.owned_paths(home, PATHS, ["workflows/wf1"]) == PATHS  # unreadable base: what did it write?
    shutil.rmtree(os.path.join(home, "workflows"))
    os.unlink(os.path.join(home, ".cache", "base-manifest.json"))
    assert backup.owned_paths(home, PATHS, ["workflows/wf1"]) == PATHS  # absent: a rollback removes all of it
    os.makedirs(os.path.join(home, "workflows"))
    with pytest.raises(BackupError, match="workflows: .*praxis_source"):
        backup.owned_paths(home, PATHS, ["../escape"])
