# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests: {relative POSIX path: sha256} of a tree, built in one pass, compared both ways."""

from __future__ import annotations

import fnmatch
import os
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError,
    check_relpath,
    read_json,
    sha256_file,
)

# Never part of an installation (SPEC 2.2).
IGNORE = ("__pycache__", "*.pyc", ".DS_Store", ".pytest_cache", ".mypy_cache")

Manifest = Dict[str, str]
# Users keep workflows of their own in workflows/ beside the framework's. An upgrade owns only the entries
# there (workflows/<name>) that some version of the framework ships or that the last install wrote; the
# rest is never walked, hashed, copied or restored (issue 10: big user content costs nothing).
WORKFLOWS = "workflows"
# What the last install or upgrade wrote (relative to .praxis-os): the base of the three-way content plan.
BASE_MANIFEST = ".cache/base-manifest.json"


class ManifestDiff(NamedTuple):
    missing: List[str]
    changed: List[str]
    extra: List[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "missing": self.missing,
            "changed": self.changed,
            "extra": self.extra,
            "counts": {"missing": len(self.missing), "changed": len(self.changed), "extra": len(self.extra)},
        }


def owned_workflows(rels: Iterable[str]) -> Set[str]:
    """`workflows/<entry>` of every path below workflows/ among `rels` (paths relative to .praxis-os)."""
    prefix = WORKFLOWS + "/"
    return {"/".join(rel.split("/", 2)[:2]) for rel in rels if rel.startswith(prefix) and len(rel) > len(prefix)}


def narrow_trees(trees: Iterable[str], owned: Optional[Iterable[str]]) -> List[str]:
    """`trees` with the workflows tree replaced by the `owned` entries of it (sorted, checked relative
    paths); `owned` None keeps the whole tree (ownership unknown)."""
    trees = list(trees)
    if owned is None or WORKFLOWS not in trees:
        return trees
    entries = sorted({check_relpath(rel) for rel in owned})
    outside = [rel for rel in entries if not rel.startswith(WORKFLOWS + "/") or rel.count("/") != 1]
    if outside:
        raise UnsafePathError("%s is not an entry of %s/" % (outside[0], WORKFLOWS))
    at = trees.index(WORKFLOWS)
    return trees[:at] + entries + trees[at + 1:]


def ignored(name: str, ignore: Iterable[str] = IGNORE) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in ignore)


def check_link_inside(path: str, root: str, real_root: Optional[str] = None) -> None:
    """Refuse the symlink `path` when it points outside `root`: copying or hashing it would read (or
    later write) outside the tree."""
    real_root = real_root or os.path.realpath(root)
    target = os.path.realpath(path)
    if target != real_root and not target.startswith(real_root + os.sep):
        raise UnsafePathError(
            "symlink %s points outside %s (to %s); replace it with a regular file or remove it" % (path, root, target)
        )


def walk_files(root: str, ignore: Iterable[str] = IGNORE) -> Iterator[Tuple[str, str]]:
    """Yield (relative POSIX path, absolute path) of every regular file below `root`, sorted.

    Symlinks are followed only when they stay inside `root`; one that points outside is refused,
    because copying or hashing it would read (or later write) outside the tree.
    """
    root = os.path.abspath(root)
    real_root = os.path.realpath(root)
    ignore = tuple(ignore)
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not ignored(d, ignore))
        for name in list(dirs) + sorted(files):
            path = os.path.join(current, name)
            if os.path.islink(path):
                check_link_inside(path, root, real_root)
                if os.path.isdir(path):
                    dirs.remove(name)  # never walk a tree twice through a link to it
                    continue
        for name in sorted(files):
            if ignored(name, ignore):
                continue
            path = os.path.join(current, name)
            if os.path.isfile(path):
                yield os.path.relpath(path, root).replace(os.sep, "/"), path


def build_manifest(root: str, ignore: Iterable[str] = IGNORE, prefix: str = "") -> Manifest:
    """Hash every file below `root`; keys are `prefix` + relative path. A missing root is empty."""
    if not os.path.isdir(root):
        return {}
    return {prefix + rel: sha256_file(path) for rel, path in walk_files(root, ignore)}


def validate_manifest(files: object, source: str) -> Manifest:
    """Check the shape and every path of a manifest's `files` mapping; raise ValueError if unsafe."""
    if not isinstance(files, dict):
        raise ValueError("manifest %s has no 'files' mapping; it is corrupt — use another backup" % source)
    for rel, digest in files.items():
        try:
            check_relpath(rel)
        except UnsafePathError as exc:
            raise ValueError("manifest %s: %s; the manifest is corrupt or tampered with" % (source, exc)) from exc
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("manifest %s: entry %r has no sha256 digest; it is corrupt" % (source, rel))
    return dict(files)


def load_manifest(path: str) -> dict:
    """Read a MANIFEST.json-style document ({"files": {...}, ...}) and validate every entry."""
    if not os.path.isfile(path):
        raise ValueError("manifest %s does not exist; the backup is incomplete — use another backup" % path)
    document = read_json(path, "manifest")
    if not isinstance(document, dict):
        raise ValueError("manifest %s is not a JSON object; it is corrupt — use another backup" % path)
    document["files"] = validate_manifest(document.get("files"), path)
    return document


def compare(expected: Manifest, actual: Manifest) -> ManifestDiff:
    """What `actual` lacks, holds differently, or holds in addition, relative to `expected`."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(rel for rel in set(expected) & set(actual) if expected[rel] != actual[rel])
    return ManifestDiff(missing, changed, extra)


def compare_tree(root: str, expected: Manifest, only: Optional[Iterable[str]] = None) -> ManifestDiff:
    """Compare the tree at `root` with `expected`; with `only`, just those relative paths (no extras)."""
    if only is None:
        return compare(expected, build_manifest(root))
    actual = {}
    for rel in only:
        path = os.path.join(root, check_relpath(rel))
        if os.path.isfile(path):
            actual[rel] = sha256_file(path)
    return compare({rel: expected[rel] for rel in only if rel in expected}, actual)
