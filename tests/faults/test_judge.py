"""The suite's own judge: a manifest that misses a difference would pass every fault case, so prove it doesn't."""
from __future__ import annotations

import os
import py_compile
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from tests.faults import lib


def _project(root: Path) -> Path:
    project = root / lib.PROJECT
    home = project / lib.HOME
    (home / "standards").mkdir(parents=True)
    (home / ".cache").mkdir()
    (home / "venv" / "bin").mkdir(parents=True)
    (home / "standards" / "a.md").write_text("a\n")
    (home / "venv" / "bin" / "activate").write_text(f"VIRTUAL_ENV={home / 'venv'}\n")
    (home / "VERSION.txt").write_text("commit=abc\nversion_updated=2026-11-30T06:00:00+00:00\n")
    (home / "standards" / "link.md").symlink_to("a.md")
    return project


def _changed(tmp_path: Path, name: str, change: Callable[[Path], object]) -> list[str]:
    project = _project(tmp_path / name / "old")
    copy = tmp_path / name / "new" / lib.PROJECT
    copy.parent.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(project), str(copy)], check=True)
    (copy / lib.HOME / "venv" / "bin" / "activate").write_text(f"VIRTUAL_ENV={copy / lib.HOME / 'venv'}\n")
    change(copy / lib.HOME)
    return lib.diff(lib.manifest(project), lib.manifest(copy))


def _replace_link(home: Path) -> None:
    (home / "standards" / "link.md").unlink()
    (home / "standards" / "link.md").write_text("a\n")


CHANGES: dict[str, Callable[[Path], object]] = {
    "content": lambda home: (home / "standards" / "a.md").write_text("b\n"),
    "mode": lambda home: os.chmod(home / "standards" / "a.md", 0o600),
    "link-to-file": _replace_link,
    "venv": lambda home: (home / "venv" / "bin" / "activate").write_text("changed\n"),
    "staging": lambda home: (home / ".cache" / "upgrade" / "x").mkdir(parents=True),
    "record": lambda home: (home / "VERSION.txt").write_text("commit=def\nversion_updated=2026-11-30T06:00:00+00:00\n"),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_manifest_sees_content_modes_links_and_the_venv(tmp_path: Path, name: str) -> None:
    assert _changed(tmp_path, name, CHANGES[name])
    assert _changed(tmp_path, "none", lambda home: None) == []


def test_manifest_ignores_the_path_record_times_and_volatile_files(tmp_path: Path) -> None:
    project = _project(tmp_path / "one")
    other = _project(tmp_path / "two")  # another path: the venv names it
    home = other / lib.HOME
    (home / "VERSION.txt").write_text("commit=abc\nversion_updated=2026-12-01T07:08:09+00:00\n")
    (home / ".cache" / "facts.d").mkdir()
    (home / ".cache" / "facts.d" / "praxis_upgrade.fact").write_text("{}")
    (home / ".cache" / "mcp_server.log").write_text("log\n")
    (home / "venv" / "bin" / "__pycache__").mkdir()  # the venv's bytecode: not promised
    (home / "venv" / "bin" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert lib.diff(lib.manifest(project), lib.manifest(other)) == []
    assert lib.diff(lib.manifest(project, strict=True), lib.manifest(other, strict=True)) != []


def _compiled(project: Path) -> Path:
    source = project / lib.HOME / "standards" / "mod.py"
    source.write_text("X = 1\n")
    py_compile.compile(str(source), doraise=True)
    return source


def test_manifest_judges_bytecode_by_its_source_not_its_path(tmp_path: Path) -> None:
    """Bytecode outside the venv is part of the installation (a rollback restores it): copies at other paths
    compare equal, bytecode of another version of the source or without its source does not."""
    project = _compiled(_project(tmp_path / "one"))
    other = _compiled(_project(tmp_path / "two"))
    mtime = project.stat().st_mtime_ns
    os.utime(other, ns=(mtime, mtime))
    py_compile.compile(str(other), doraise=True)  # same source, other absolute path inside the bytecode
    before = lib.manifest(project.parents[2])
    assert "/__pycache__/" in " ".join(before)
    assert lib.diff(before, lib.manifest(other.parents[2])) == []
    assert lib.diff(lib.manifest(project.parents[2], strict=True), lib.manifest(other.parents[2], strict=True)) == []

    other.write_text("X = 22\n")  # the source changed back to another version: its bytecode is stale
    stale = lib.manifest(other.parents[2])
    assert [rel for rel in lib.diff(before, stale) if rel.endswith(".pyc")], stale
    other.unlink()
    orphan = lib.manifest(other.parents[2])
    assert any(v.startswith("bytecode orphan") for v in orphan.values())


def test_classify() -> None:
    old, new = {"a": "1", "b": "1"}, {"a": "2", "b": "1", "c": "1"}
    assert lib.classify(dict(old), old, new) == ("OLD", [])
    assert lib.classify(dict(new), old, new) == ("NEW", [])
    assert lib.classify({"a": "2", "b": "1"}, old, new) == ("MIXED", ["a"])  # named against the nearer one
    assert lib.classify({"a": "2", "c": "1"}, old, new) == ("MIXED", ["b"])


def test_error_text_keeps_failures_not_task_names() -> None:
    output = ("TASK [Prune backups beyond praxis_keep_backups] ***\nok: [h]\n"
              "TASK [x] ***\nfatal: [h]: FAILED! => \n    msg: the lock is held. Next: wait\n\nPLAY RECAP ***\n")
    text = lib.error_text(output)
    assert "praxis_keep_backups" not in text and "the lock is held" in text
    assert lib.error_summary(output) == "the lock is held. Next: wait"


def test_leftovers_name_staging_swap_and_temp_files(tmp_path: Path) -> None:
    project = _project(tmp_path)
    home = project / lib.HOME
    (home / "mcp_server.new-s1").mkdir()
    (home / ".cache" / "upgrade" / "abc").mkdir(parents=True)
    (home / "standards" / ".a.md.x1.tmp").write_text("")
    (home / ".upgrade-lock").write_text("{}")
    found = sorted(lib.leftovers(lib.Install("h", project, False)))
    assert found == [".praxis-os/.cache/upgrade", ".praxis-os/.upgrade-lock", ".praxis-os/mcp_server.new-s1",
                     ".praxis-os/standards/.a.md.x1.tmp"], found
