"""praxis_verify_manifest: trees against manifests and trees, prefixes, ignores, refusals."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest
from ansible_collections.praxis.upgrade.plugins.modules import praxis_verify_manifest

FILES = {"mcp_server/server.py": b"print(1)\n", "mcp_server/requirements.txt": b"mcp\n", "config.json": b"{}"}


def make_tree(root, files) -> str:
    for rel, data in files.items():
        path = os.path.join(str(root), *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    return str(root)


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tree", FILES)


@pytest.fixture
def manifest(tmp_path, tree):
    path = tmp_path / "MANIFEST.json"
    path.write_text(json.dumps({"timestamp": "2026-11-24T10:15:00Z", "files": build_manifest(tree)}))
    return str(path)


@pytest.fixture
def verify(run_module):
    def run(check_mode=False, **args):
        return run_module(praxis_verify_manifest, args, check_mode=check_mode)
    return run


def test_tree_matching_its_manifest(verify, tree, manifest):
    result, failed = verify(path=tree, manifest=manifest)
    assert not failed and result["ok"] and result["changed"] is False
    assert result["missing"] == result["changed_paths"] == result["extra"] == []
    assert result["counts"] == {"missing": 0, "changed": 0, "extra": 0} and result["checked"] == 3


def test_mismatch_fails_naming_every_class(verify, tree, manifest):
    os.unlink(os.path.join(tree, "config.json"))
    with open(os.path.join(tree, "mcp_server", "server.py"), "ab") as handle:
        handle.write(b"# edited\n")
    make_tree(tree, {"mcp_server/new.py": b""})
    result, failed = verify(path=tree, manifest=manifest)
    assert failed and not result["ok"]
    assert result["missing"] == ["config.json"]
    assert result["changed_paths"] == ["mcp_server/server.py"]
    assert result["extra"] == ["mcp_server/new.py"]
    assert result["checked"] == 4
    for fact in ("1 missing (config.json)", "1 changed (mcp_server/server.py)", "1 extra (mcp_server/new.py)", tree):
        assert fact in result["msg"]


def test_mismatch_reported_without_failing(verify, tree, manifest):
    os.unlink(os.path.join(tree, "config.json"))
    result, failed = verify(path=tree, manifest=manifest, fail_on_mismatch=False)
    assert not failed and result["ok"] is False and result["counts"]["missing"] == 1


def test_long_lists_are_shortened_in_the_message(verify, tmp_path, manifest):
    many = make_tree(tmp_path / "many", {"f%02d" % i: b"x" for i in range(15)})
    result, failed = verify(path=many, manifest=manifest)
    assert failed and "15 extra" in result["msg"] and "and 5 more" in result["msg"]
    assert len(result["extra"]) == 15


def test_manifest_prefix_selects_and_strips(verify, tmp_path, tree):
    files = build_manifest(tree, prefix="files/")
    files["project/.gitignore"] = "0" * 64  # another section of the backup, not under the prefix
    (tmp_path / "M.json").write_text(json.dumps({"files": files}))
    result, failed = verify(path=tree, manifest=str(tmp_path / "M.json"), manifest_prefix="files/")
    assert not failed and result["checked"] == 3
    result, failed = verify(path=tree, manifest=str(tmp_path / "M.json"), fail_on_mismatch=False)
    assert result["counts"] == {"missing": 4, "changed": 0, "extra": 3}


def test_against_another_tree(verify, tmp_path, tree):
    copy = make_tree(tmp_path / "copy", FILES)
    result, failed = verify(path=copy, against=tree)
    assert not failed and result["ok"]
    make_tree(copy, {"config.json": b'{"changed": true}'})
    result, failed = verify(path=copy, against=tree)
    assert failed and result["changed_paths"] == ["config.json"]


def test_ignore_patterns_apply_to_both_sides(verify, tmp_path, tree):
    litter = {"mcp_server/__pycache__/server.cpython-311.pyc": b"\x00", "mcp_server/x.pyc": b"\x00",
              ".DS_Store": b""}
    dirty = make_tree(tmp_path / "dirty", dict(FILES, **litter))
    assert verify(path=dirty, against=tree)[0]["ok"]
    manifest = tmp_path / "dirty.json"
    manifest.write_text(json.dumps({"files": build_manifest(dirty, ignore=())}))
    assert verify(path=tree, manifest=str(manifest))[0]["ok"]  # litter listed in a manifest is ignored too
    result, failed = verify(path=dirty, against=tree, ignore=[])
    assert failed and len(result["extra"]) == 3
    result, failed = verify(path=dirty, against=tree, ignore=["*.pyc"])
    assert failed and result["extra"] == [".DS_Store"]


def test_escaping_symlink_is_refused(verify, tmp_path, tree, manifest):
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", os.path.join(tree, "leak"))
    result, failed = verify(path=tree, manifest=manifest)
    assert failed and "points outside" in result["msg"]


@pytest.mark.parametrize("entry", ["../outside", "/etc/passwd", "a/../../b"])
def test_unsafe_manifest_entry_is_refused(verify, tmp_path, tree, entry):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"files": {entry: "0" * 64}}))
    result, failed = verify(path=tree, manifest=str(bad))
    assert failed and "tampered" in result["msg"]


def test_corrupt_and_missing_manifest(verify, tmp_path, tree):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{")
    result, failed = verify(path=tree, manifest=str(corrupt))
    assert failed and "not valid JSON" in result["msg"]
    result, failed = verify(path=tree, manifest=str(tmp_path / "absent.json"))
    assert failed and "does not exist" in result["msg"]


def test_missing_trees_are_refused(verify, tmp_path, tree, manifest):
    result, failed = verify(path=str(tmp_path / "absent"), manifest=manifest)
    assert failed and "does not exist" in result["msg"]
    result, failed = verify(path=tree, against=str(tmp_path / "absent"))
    assert failed and "reference tree" in result["msg"]


def test_options_are_exclusive_and_one_is_required(verify, tree, manifest):
    result, failed = verify(path=tree, manifest=manifest, against=tree)
    assert failed and "mutually exclusive" in result["msg"]
    result, failed = verify(path=tree)
    assert failed and "one of the following is required" in result["msg"]


def test_check_mode_verifies_for_real(verify, tree, manifest):
    os.unlink(os.path.join(tree, "config.json"))
    result, failed = verify(path=tree, manifest=manifest, check_mode=True)
    assert failed and result["missing"] == ["config.json"]
