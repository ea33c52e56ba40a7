"""fsutil: path refusals, atomic writes that survive failures, copies that keep modes and hash."""
from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import fsutil
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError,
    atomic_write_bytes,
    atomic_write_json,
    check_relpath,
    copy_file_atomic,
    fsync_dir,
    prune_empty_dirs,
    read_json,
    remove_path,
    sha256_file,
)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(directory) -> list:
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


# --- check_relpath -------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", ["a", "a/b", "mcp_server/server.py", ".gitignore", "a/.hidden/b", "..a/b..", "a b/c"])
def test_check_relpath_accepts_plain_relative_paths(rel):
    assert check_relpath(rel) == rel


@pytest.mark.parametrize(
    "rel",
    ["", "/etc/passwd", "/", "..", "../x", "a/../../x", "a/..", "./a", "a/./b", "a//b", "a/", "a\\b", "a\x00b",
     None, 3, b"a"],
)
def test_check_relpath_refuses_unsafe_paths(rel):
    with pytest.raises(UnsafePathError):
        check_relpath(rel)


def test_unsafe_path_error_is_a_value_error():
    assert issubclass(UnsafePathError, ValueError)


# --- atomic writes -------------------------------------------------------------------------------

def test_atomic_write_creates_file_with_default_mode(tmp_path):
    target = tmp_path / "sub" / "new.txt"  # the directory is created as well
    atomic_write_bytes(str(target), b"hello")
    assert target.read_bytes() == b"hello"
    assert mode_of(target) == 0o644
    assert leftovers(target.parent) == []


def test_atomic_write_keeps_mode_of_existing_file(tmp_path):
    target = tmp_path / "run.sh"
    target.write_bytes(b"old")
    os.chmod(target, 0o750)
    atomic_write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o750


def test_atomic_write_explicit_mode_wins(tmp_path):
    target = tmp_path / "secret.json"
    target.write_bytes(b"{}")
    atomic_write_bytes(str(target), b"{}", mode=0o600)
    assert mode_of(target) == 0o600


def test_atomic_write_replaces_inode_so_readers_see_old_or_new(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with open(target, "rb") as reader:  # a reader that opened the old file keeps reading the old content
        atomic_write_bytes(str(target), b"new")
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new"


def test_interrupted_rename_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_bytes(b"old content")

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_bytes(str(target), b"new content")
    assert target.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


def test_interrupted_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_bytes(b"old content")

    def crash(fd):
        raise KeyboardInterrupt  # a BaseException, like the SIGINT of an operator

    monkeypatch.setattr(fsutil.os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(str(target), b"new content")
    assert target.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


def test_atomic_write_json_is_sorted_indented_and_readable(tmp_path):
    target = tmp_path / "doc.json"
    atomic_write_json(str(target), {"b": 1, "a": [1, 2]}, mode=0o600)
    text = target.read_text()
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"b"')
    assert json.loads(text) == {"a": [1, 2], "b": 1}
    assert mode_of(target) == 0o600


def test_atomic_write_json_compact_is_one_sorted_line(tmp_path):
    target = tmp_path / "layout.json"
    atomic_write_json(str(target), {"files": {"b": [1, 2, 420], "a": [3, 4, 493]}}, compact=True)
    assert target.read_text() == '{"files":{"a":[3,4,493],"b":[1,2,420]}}\n'


def test_read_json_round_trip_and_corruption(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"x": 1}')
    assert read_json(str(good), "thing") == {"x": 1}
    for name, data in (("bad.json", b"{not json"), ("binary.json", b"\xff\xfe\x00")):
        bad = tmp_path / name
        bad.write_bytes(data)
        with pytest.raises(ValueError) as err:
            read_json(str(bad), "session file")
        message = str(err.value)
        assert "session file" in message and str(bad) in message and "move it aside" in message


# --- hashing and copying -------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, fsutil.CHUNK - 1, fsutil.CHUNK, fsutil.CHUNK + 1, 2 * fsutil.CHUNK + 7])
def test_sha256_and_copy_agree_with_hashlib_across_chunk_boundaries(tmp_path, size):
    data = (b"praxis-" * (size // 7 + 1))[:size]
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(str(src)) == expected
    dst = tmp_path / "out" / "dst.bin"
    assert copy_file_atomic(str(src), str(dst)) == expected
    assert dst.read_bytes() == data


def test_copy_keeps_mode_or_applies_given_one(tmp_path):
    src = tmp_path / "tool"
    src.write_bytes(b"#!/bin/sh\n")
    os.chmod(src, 0o755)
    kept = tmp_path / "kept"
    copy_file_atomic(str(src), str(kept))
    assert mode_of(kept) == 0o755
    forced = tmp_path / "forced"
    copy_file_atomic(str(src), str(forced), mode=0o600)
    assert mode_of(forced) == 0o600


def test_interrupted_copy_keeps_destination_and_no_temp(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.write_bytes(b"new")
    dst = tmp_path / "dst"
    dst.write_bytes(b"old")

    def failing_replace(*args):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(fsutil.os, "replace", failing_replace)
    with pytest.raises(OSError):
        copy_file_atomic(str(src), str(dst))
    assert dst.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_copy_of_missing_source_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        copy_file_atomic(str(tmp_path / "absent"), str(tmp_path / "dst"))
    assert os.listdir(tmp_path) == []


# --- removal and directories ---------------------------------------------------------------------

def test_remove_path_handles_file_link_tree_and_absent(tmp_path):
    (tmp_path / "f").write_text("x")
    tree = tmp_path / "tree" / "deep"
    tree.mkdir(parents=True)
    (tree / "g").write_text("y")
    outside = tmp_path / "keep"
    outside.mkdir()
    (outside / "precious").write_text("z")
    os.symlink(outside, tmp_path / "link")

    assert remove_path(str(tmp_path / "f")) is True
    assert remove_path(str(tmp_path / "link")) is True  # the link goes, its target stays
    assert (outside / "precious").exists()
    assert remove_path(str(tmp_path / "tree")) is True
    assert remove_path(str(tmp_path / "absent")) is False
    assert sorted(os.listdir(tmp_path)) == ["keep"]


def test_remove_path_removes_dangling_symlink(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    assert remove_path(str(tmp_path / "dangling")) is True
    assert not os.path.lexists(tmp_path / "dangling")


def test_prune_empty_dirs_stops_at_root_and_at_non_empty(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "keep.txt").write_text("x")
    prune_empty_dirs(str(root), str(root / "a" / "b" / "c"))
    assert not (root / "a" / "b").exists()
    assert (root / "a" / "keep.txt").exists()

    (root / "x" / "y").mkdir(parents=True)
    prune_empty_dirs(str(root), str(root / "x" / "y"))
    assert root.is_dir() and os.listdir(root) == ["a"]


def test_prune_empty_dirs_ignores_start_outside_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    prune_empty_dirs(str(root), str(other))
    assert other.is_dir()


def test_fsync_dir_on_directory_and_missing(tmp_path):
    fsync_dir(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        fsync_dir(str(tmp_path / "missing"))


def test_copy_file_hashed_copies_mode_and_hash_without_temp_or_fsync(tmp_path, monkeypatch):
    src = tmp_path / "src.sh"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(src, 0o750)
    monkeypatch.setattr(os, "fsync", lambda fd: pytest.fail("a not-yet-published tree is flushed once, later"))
    dst = tmp_path / "new" / "deep" / "dst.sh"
    digest = fsutil.copy_file_hashed(str(src), str(dst))
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()
    assert dst.read_bytes() == src.read_bytes() and stat.S_IMODE(dst.stat().st_mode) == 0o750
    assert sorted(p.name for p in dst.parent.iterdir()) == ["dst.sh"]
    assert fsutil.copy_file_hashed(str(src), str(dst), 0o600) == digest
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600


def test_sync_filesystem_flushes_with_syncfs_or_falls_back_to_sync(tmp_path, monkeypatch):
    fsutil.sync_filesystem(str(tmp_path))  # the real call: syncfs(2) on Linux
    synced = []
    monkeypatch.setattr(os, "sync", lambda: synced.append(True))

    def no_libc(*args, **kwargs):
        raise OSError("no libc")

    monkeypatch.setattr(fsutil.ctypes, "CDLL", no_libc)
    fsutil.sync_filesystem(str(tmp_path))
    assert synced == [True]


def test_write_temp_target_names_what_an_interrupted_atomic_write_was_for(tmp_path):
    from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import _temp_beside, write_temp_target

    fd, tmp = _temp_beside(str(tmp_path / "VERSION.txt"))
    os.close(fd)
    assert write_temp_target(os.path.basename(tmp)) == "VERSION.txt"
    assert write_temp_target(".notes.tmp") is None and write_temp_target("VERSION.txt") is None
