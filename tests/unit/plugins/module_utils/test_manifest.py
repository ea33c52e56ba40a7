"""manifest: one-pass tree hashing, ignore patterns, symlink refusals, validated loading, comparison."""
from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import UnsafePathError
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import (
    narrow_trees,
    owned_workflows,
    IGNORE,
    ManifestDiff,
    build_manifest,
    compare,
    compare_tree,
    ignored,
    load_manifest,
    validate_manifest,
    walk_files,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tree(root, files: dict) -> None:
    for rel, data in files.items():
        path = os.path.join(str(root), *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)


TREE = {
    "mcp_server/__init__.py": b"",
    "mcp_server/server.py": b"print('hi')\n",
    "mcp_server/sub/deep/x.json": b"{}",
    "standards/universal/a.md": b"# A\n",
    "z.txt": b"z",
}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, TREE)
    return root


def test_build_manifest_hashes_every_file_with_posix_keys(tree):
    assert build_manifest(str(tree)) == {rel: sha(data) for rel, data in TREE.items()}


def test_build_manifest_with_prefix_and_missing_root(tree, tmp_path):
    assert build_manifest(str(tree), prefix="files/") == {"files/" + rel: sha(d) for rel, d in TREE.items()}
    assert build_manifest(str(tmp_path / "absent")) == {}


def test_walk_is_deterministic_and_gives_absolute_paths(tree):
    walked = list(walk_files(str(tree)))
    assert sorted(rel for rel, path in walked) == sorted(TREE)
    assert walked == list(walk_files(str(tree)))
    assert [rel for rel, path in walked][:1] == ["z.txt"]  # files of a directory before its subdirectories
    for rel, path in walked:
        assert os.path.isabs(path) and path.endswith(rel)


@pytest.mark.parametrize(
    "rel",
    ["mcp_server/__pycache__/server.cpython-311.pyc", "mcp_server/stale.pyc", ".DS_Store", "a/.DS_Store",
     ".pytest_cache/v/cache", "mcp_server/.mypy_cache/x.json", "__pycache__/top.txt"],
)
def test_default_ignore_patterns_leave_out_build_litter(tree, rel):
    make_tree(tree, {rel: b"junk"})
    assert rel not in build_manifest(str(tree))
    assert build_manifest(str(tree)) == {r: sha(d) for r, d in TREE.items()}


def test_custom_ignore_replaces_defaults(tree):
    make_tree(tree, {"mcp_server/stale.pyc": b"junk", "notes.bak": b"bak"})
    manifest = build_manifest(str(tree), ignore=("*.bak",))
    assert "notes.bak" not in manifest
    assert "mcp_server/stale.pyc" in manifest


@pytest.mark.parametrize("name,expected", [("__pycache__", True), ("x.pyc", True), ("x.py", False),
                                           (".DS_Store", True), ("pyc", False)])
def test_ignored(name, expected):
    assert ignored(name) is expected
    assert ignored(name, ()) is False


def test_ignore_constant_matches_spec():
    assert set(IGNORE) == {"__pycache__", "*.pyc", ".DS_Store", ".pytest_cache", ".mypy_cache"}


def test_symlink_to_file_outside_root_is_refused(tree, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("password")
    os.symlink(secret, tree / "mcp_server" / "leak.txt")
    with pytest.raises(UnsafePathError) as err:
        build_manifest(str(tree))
    assert "points outside" in str(err.value) and "leak.txt" in str(err.value)


def test_symlink_to_directory_outside_root_is_refused(tree, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, tree / "escape")
    with pytest.raises(UnsafePathError):
        build_manifest(str(tree))


def test_relative_symlink_escaping_with_dotdot_is_refused(tree, tmp_path):
    (tmp_path / "sibling.txt").write_text("x")
    os.symlink("../../sibling.txt", tree / "mcp_server" / "up.txt")
    with pytest.raises(UnsafePathError):
        build_manifest(str(tree))


def test_symlinks_inside_root_are_followed_once(tree):
    os.symlink("server.py", tree / "mcp_server" / "alias.py")  # file link: hashed as its target
    os.symlink("mcp_server", tree / "server_link")  # dir link: not walked a second time
    manifest = build_manifest(str(tree))
    assert manifest["mcp_server/alias.py"] == sha(TREE["mcp_server/server.py"])
    assert not any(rel.startswith("server_link/") for rel in manifest)


def test_symlink_to_root_itself_is_allowed_and_not_walked(tree):
    os.symlink(".", tree / "self")
    assert build_manifest(str(tree)) == {r: sha(d) for r, d in TREE.items()}


def test_root_reached_through_a_symlink_is_accepted(tree, tmp_path):
    link = tmp_path / "link-to-tree"
    os.symlink(tree, link)
    os.symlink("z.txt", tree / "z-alias")
    manifest = build_manifest(str(link))
    assert manifest["z-alias"] == sha(b"z")


# --- validate / load -----------------------------------------------------------------------------

GOOD = "a" * 64


@pytest.mark.parametrize(
    "files",
    [{"../etc/passwd": GOOD}, {"/abs": GOOD}, {"a/../../b": GOOD}, {"": GOOD}, {"a//b": GOOD}, {"a/./b": GOOD}],
)
def test_validate_refuses_unsafe_entries(files):
    with pytest.raises(ValueError) as err:
        validate_manifest(files, "M.json")
    assert "M.json" in str(err.value) and "tampered" in str(err.value)


@pytest.mark.parametrize("files", [{"a": "short"}, {"a": None}, {"a": 12}, {"a": "b" * 65}])
def test_validate_refuses_entries_without_digest(files):
    with pytest.raises(ValueError, match="no sha256"):
        validate_manifest(files, "M.json")


@pytest.mark.parametrize("files", [None, [], "x", 3])
def test_validate_refuses_missing_files_mapping(files):
    with pytest.raises(ValueError, match="no 'files' mapping"):
        validate_manifest(files, "M.json")


def test_load_manifest_round_trip_keeps_extra_keys(tmp_path, tree):
    path = tmp_path / "MANIFEST.json"
    files = build_manifest(str(tree))
    path.write_text(json.dumps({"timestamp": "2026-11-24T10:15:00Z", "files": files, "session_id": "s"}))
    document = load_manifest(str(path))
    assert document["files"] == files
    assert document["session_id"] == "s"


def test_load_manifest_missing_corrupt_and_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_manifest(str(tmp_path / "absent.json"))
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"files": {"a": ')
    with pytest.raises(ValueError, match="not valid JSON"):
        load_manifest(str(corrupt))
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        load_manifest(str(array))
    dotdot = tmp_path / "dotdot.json"
    dotdot.write_text(json.dumps({"files": {"files/../../x": GOOD}}))
    with pytest.raises(ValueError, match="tampered"):
        load_manifest(str(dotdot))


# --- compare -------------------------------------------------------------------------------------

def test_compare_reports_missing_changed_extra_sorted():
    expected = {"a": "1", "b": "2", "c": "3", "e": "5"}
    actual = {"b": "2", "c": "X", "d": "4", "0": "0"}
    diff = compare(expected, actual)
    assert diff == ManifestDiff(missing=["a", "e"], changed=["c"], extra=["0", "d"])
    assert not diff.ok
    assert diff.as_dict() == {
        "ok": False, "missing": ["a", "e"], "changed": ["c"], "extra": ["0", "d"],
        "counts": {"missing": 2, "changed": 1, "extra": 2},
    }


@pytest.mark.parametrize("manifest", [{}, {"a": "1"}, {"a": "1", "b/c": "2"}])
def test_compare_identical_is_ok_and_symmetric(manifest):
    diff = compare(manifest, dict(manifest))
    assert diff.ok and diff.as_dict()["counts"] == {"missing": 0, "changed": 0, "extra": 0}
    forward, backward = compare(manifest, {}), compare({}, manifest)
    assert forward.missing == backward.extra == sorted(manifest)


def test_compare_tree_detects_each_kind_of_drift(tree):
    expected = build_manifest(str(tree))
    assert compare_tree(str(tree), expected).ok
    (tree / "z.txt").write_bytes(b"changed")
    os.unlink(tree / "standards" / "universal" / "a.md")
    make_tree(tree, {"new.txt": b"new"})
    diff = compare_tree(str(tree), expected)
    assert diff == ManifestDiff(["standards/universal/a.md"], ["z.txt"], ["new.txt"])


def test_compare_tree_only_checks_named_paths_without_extras(tree):
    expected = build_manifest(str(tree))
    (tree / "z.txt").write_bytes(b"changed")
    make_tree(tree, {"new.txt": b"new"})
    only = ["mcp_server/server.py", "z.txt", "gone.txt"]
    diff = compare_tree(str(tree), expected, only=only)
    assert diff == ManifestDiff(missing=[], changed=["z.txt"], extra=[])
    os.unlink(tree / "mcp_server" / "server.py")
    assert compare_tree(str(tree), expected, only=only).missing == ["mcp_server/server.py"]


def test_compare_tree_only_refuses_unsafe_names(tree):
    with pytest.raises(UnsafePathError):
        compare_tree(str(tree), {}, only=["../outside"])


def test_owned_workflows_are_the_entries_some_path_lies_in() -> None:
    rels = ["workflows/spec_v1/phases/0.md", "workflows/spec_v1/meta.json", "workflows/README.md",
            "mcp_server/server.py", "workflowsX/a.md", "workflows/"]
    assert owned_workflows(rels) == {"workflows/spec_v1", "workflows/README.md"}
    assert owned_workflows([]) == set()


def test_narrow_trees_replaces_the_workflows_tree_in_place() -> None:
    trees = ["scripts", "workflows", "usage"]
    assert narrow_trees(trees, None) == trees  # ownership unknown: the whole tree
    assert narrow_trees(trees, {"workflows/b", "workflows/a"}) == ["scripts", "workflows/a", "workflows/b", "usage"]
    assert narrow_trees(trees, []) == ["scripts", "usage"]  # the framework owns nothing there
    assert narrow_trees(["scripts"], {"workflows/a"}) == ["scripts"]  # no workflows tree to narrow
    for bad in ("workflows/../x", "/workflows/a", "standards/a", "workflows/a/b"):
        with pytest.raises(UnsafePathError):
            narrow_trees(trees, [bad])
