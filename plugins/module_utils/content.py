# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Three-way upgrade of the framework content trees (SPEC 3 phase 2) and the `.gitignore` append.

Three inputs per path: the local file, the base (what the last install/upgrade wrote, from the base
manifest) and upstream (the new source), plus every older upstream version of the path (git history).
`classify` is a pure function from those manifests to a `Plan`; `apply` carries a plan out.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError,
    atomic_write_bytes,
    check_relpath,
    copy_file_atomic,
    prune_empty_dirs,
    sha256_file,
)
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest

# Installed trees this phase owns; mcp_server/ is staged and swapped whole by the server phase.
TREES = ("scripts", "standards/universal", "workflows", "usage")
# Mixed trees: files there are merged in and updated, never deleted (SPEC 2.2).
MERGE_ONLY = ("usage/",)
POLICIES = ("keep_local", "take_upstream", "fail")
CLASSES = ("add", "update", "unchanged", "keep", "conflict", "delete", "user", "keep_removed")
UPSTREAM_SUFFIX = ".upstream"
GITIGNORE_ENTRIES = (
    ".praxis-os/venv/",
    ".praxis-os/.cache/",
    ".praxis-os/.backups/",
    ".praxis-os/.upgrade-lock",
    ".praxis-os/.mcp_server_state.json",
)

Manifest = Dict[str, str]


class ContentError(RuntimeError):
    """Applying a plan cannot go on (corrupt staging, a path that would leave the installation)."""


class ConflictError(ContentError):
    """Conflicts under the `fail` policy; raised before anything is written."""

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)
        shown = ", ".join(self.paths[:20]) + (" ..." if len(self.paths) > 20 else "")
        super().__init__(
            "%d locally modified file(s) also changed upstream: %s; nothing was written. Next: resolve "
            "them locally (compare with the new source) or re-run with -e praxis_conflict_policy=keep_local "
            "(keeps yours, writes <name>.upstream beside) or take_upstream (your copy stays in the backup)"
            % (len(self.paths), shown))


class Plan:
    """Per-class sorted path lists plus the inputs `apply` needs."""

    def __init__(self, classes: Dict[str, List[str]], local: Manifest, upstream: Manifest):
        self.classes = {name: sorted(classes.get(name, ())) for name in CLASSES}
        self.local = dict(local)
        self.upstream = dict(upstream)

    def __getitem__(self, name: str) -> List[str]:
        return self.classes[name]

    def counts(self) -> Dict[str, int]:
        return {name: len(paths) for name, paths in self.classes.items()}

    @property
    def changes(self) -> bool:
        return bool(self["add"] or self["update"] or self["conflict"] or self["delete"])

    def class_of(self, rel: str) -> Optional[str]:
        for name, paths in self.classes.items():
            if rel in paths:
                return name
        return None


def in_trees(rel: str, trees: Iterable[str] = TREES) -> bool:
    return any(rel.startswith(tree + "/") for tree in trees)


def only_trees(mapping: Mapping[str, object], trees: Iterable[str] = TREES) -> dict:
    trees = tuple(trees)
    return {rel: value for rel, value in mapping.items() if in_trees(rel, trees)}


def local_manifest(praxis_home: str, trees: Iterable[str] = TREES) -> Manifest:
    """Manifest of the installed trees, keys relative to `praxis_home`."""
    result: Manifest = {}
    for tree in trees:
        result.update(build_manifest(os.path.join(praxis_home, *tree.split("/")), prefix=tree + "/"))
    return result


def classify(local: Mapping[str, str], base: Mapping[str, str], upstream: Mapping[str, str],
             history: Mapping[str, Sequence[str]], merge_only_prefixes: Sequence[str] = MERGE_ONLY) -> Plan:
    """Classify every local or upstream path (SPEC 3 phase 2).

    pristine: the local file equals the base version, some version in upstream history, or upstream.
    `base` empty means the installation predates base manifests; then "upstream unchanged since the
    install" can only be proven when upstream never had another version of the path (no history).
    """
    base_known = bool(base)
    classes: Dict[str, List[str]] = {name: [] for name in CLASSES}
    for rel in sorted(set(local) | set(upstream)):
        mine, theirs = local.get(rel), upstream.get(rel)
        older = history.get(rel) or ()
        if mine is None:
            classes["add"].append(rel)
            continue
        pristine = mine == theirs or mine == base.get(rel) or mine in older
        if theirs is not None:
            if mine == theirs:
                kind = "unchanged"
            elif pristine:
                kind = "update"
            else:
                upstream_unchanged = (base.get(rel) == theirs) if base_known else not older
                kind = "keep" if upstream_unchanged else "conflict"
        elif rel in base or rel in history:
            merge_only = any(rel.startswith(prefix) for prefix in merge_only_prefixes)
            kind = "delete" if pristine and not merge_only else "keep_removed"
        else:
            kind = "user"
        classes[kind].append(rel)
    return Plan(classes, local, upstream)


def _tree_root(praxis_home: str, rel: str, trees: Iterable[str]) -> str:
    for tree in trees:
        if rel.startswith(tree + "/"):
            return os.path.join(praxis_home, *tree.split("/"))
    return praxis_home


def _check_targets(praxis_home: str, rels: Iterable[str]) -> None:
    """Refuse, before any write, a target that is a directory, sits below a file, or leaves praxis_home."""
    home = os.path.realpath(praxis_home)
    for rel in rels:
        try:
            check_relpath(rel)
        except UnsafePathError as exc:
            raise ContentError("%s; the manifest is corrupt or tampered with — re-run the upgrade" % exc) from exc
        target = os.path.join(praxis_home, *rel.split("/"))
        if os.path.isdir(target) and not os.path.islink(target):
            raise ContentError("%s is a directory but the new version has a file there; move it aside "
                               "and re-run" % target)
        parent = os.path.dirname(target)
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise ContentError("%s is a file but the new version needs a directory there; move it aside "
                               "and re-run" % parent)
        real = os.path.realpath(parent)
        if real != home and not real.startswith(home + os.sep):
            raise ContentError("writing %s would leave %s (a symlink leads to %s); replace the symlink "
                               "with a directory and re-run" % (rel, praxis_home, real))


def _expected(plan: Plan, policy: str) -> Dict[str, str]:
    """{path relative to praxis_home: sha256} that must hold once the plan is applied."""
    expected = {rel: plan.upstream[rel] for name in ("add", "update", "unchanged") for rel in plan[name]}
    for rel in plan["conflict"]:
        if policy == "take_upstream":
            expected[rel] = plan.upstream[rel]
        else:
            expected[rel + UPSTREAM_SUFFIX] = plan.upstream[rel]
    return expected


def verify(praxis_home: str, plan: Plan, policy: str) -> List[str]:
    """Paths that do not hold what the plan says they should (empty when all is well)."""
    bad = []
    for rel, digest in sorted(_expected(plan, policy).items()):
        path = os.path.join(praxis_home, *rel.split("/"))
        if not os.path.isfile(path) or sha256_file(path) != digest:
            bad.append(rel)
    bad.extend(rel for rel in plan["delete"] if os.path.lexists(os.path.join(praxis_home, *rel.split("/"))))
    return bad


def pending_writes(plan: Plan, praxis_home: str, policy: str) -> List[Tuple[str, str]]:
    """Sorted (upstream rel, destination rel) copies the plan needs; a `.upstream` copy already right is skipped."""
    writes = [(rel, rel) for rel in plan["add"] + plan["update"]]
    for rel in plan["conflict"]:
        if policy == "take_upstream":
            writes.append((rel, rel))
            continue
        beside = os.path.join(praxis_home, *(rel + UPSTREAM_SUFFIX).split("/"))
        if not (os.path.isfile(beside) and sha256_file(beside) == plan.upstream[rel]):
            writes.append((rel, rel + UPSTREAM_SUFFIX))
    return sorted(writes)


def apply(plan: Plan, praxis_home: str, source_dir: Optional[str], policy: str, check: bool = False,
          fault: Optional[Callable[[], None]] = None, trees: Iterable[str] = TREES) -> dict:
    """Carry out `plan` in `praxis_home` from the verified staged source in `source_dir`.

    `fault` is called once, halfway through the writes (test seam for interruptions).
    Returns counts and full lists per class, plus `written`, `upstream_written`, `deleted`, `verified`.
    """
    if policy not in POLICIES:
        raise ValueError("conflict policy %r is not one of %s; set praxis_conflict_policy accordingly"
                         % (policy, ", ".join(POLICIES)))
    if policy == "fail" and plan["conflict"]:
        raise ConflictError(plan["conflict"])
    writes = pending_writes(plan, praxis_home, policy)
    result = {"counts": plan.counts(), "policy": policy}
    result.update({name: list(paths) for name, paths in plan.classes.items()})
    if check:
        result.update(written=[dst for rel, dst in writes if dst == rel],
                      upstream_written=[dst for rel, dst in writes if dst != rel],
                      deleted=list(plan["delete"]), verified=False)
        return result
    _check_targets(praxis_home, [dst for _rel, dst in writes] + plan["delete"])
    if writes and not source_dir:
        raise ContentError("no staged source to copy from; the archive must be extracted first")
    written, upstream_written, deleted = [], [], []
    halfway = len(writes) // 2
    for index, (rel, dst_rel) in enumerate(writes):
        if index == halfway and fault is not None:
            fault()
        dst = os.path.join(praxis_home, *dst_rel.split("/"))
        src = os.path.join(source_dir, *rel.split("/"))
        if not os.path.isfile(src):
            raise ContentError("staged source %s lacks %s; the staged source is corrupt — remove %s and "
                               "re-run the upgrade" % (source_dir, rel, source_dir))
        digest = copy_file_atomic(src, dst)
        if digest != plan.upstream[rel]:
            raise ContentError("%s was written with sha256 %s but the source manifest says %s; the staged "
                               "source is corrupt — remove %s and re-run the upgrade"
                               % (dst, digest, plan.upstream[rel], source_dir))
        (upstream_written if dst_rel != rel else written).append(dst_rel)
    if fault is not None and not writes:
        fault()
    for rel in plan["delete"]:
        target = os.path.join(praxis_home, *rel.split("/"))
        if os.path.lexists(target):
            os.unlink(target)
            deleted.append(rel)
            prune_empty_dirs(_tree_root(praxis_home, rel, trees), os.path.dirname(target))
    bad = verify(praxis_home, plan, policy)
    if bad:
        raise ContentError("after writing, %d path(s) in %s do not match the source: %s; the disk or the "
                           "staged source is faulty — the phase will roll back; check the disk and re-run"
                           % (len(bad), praxis_home, ", ".join(bad[:10])))
    result.update(written=written, upstream_written=upstream_written, deleted=deleted, verified=True)
    return result


def _lines(data: bytes) -> List[str]:
    return [line.rstrip() for line in data.decode("utf-8", "replace").splitlines()]


def append_gitignore(project_dir: str, entries: Iterable[str] = GITIGNORE_ENTRIES, check: bool = False) -> List[str]:
    """Append the `entries` missing from `<project_dir>/.gitignore`; never rewrite what is there.

    Returns the entries added (or that would be added, in check mode).
    """
    path = os.path.join(project_dir, ".gitignore")
    if os.path.islink(path):
        real = os.path.realpath(path)
        project = os.path.realpath(project_dir)
        if not real.startswith(project + os.sep):
            raise ValueError("%s is a symlink to %s, outside the project; the upgrade only appends to a "
                             ".gitignore inside the project — replace the link with a file and re-run" % (path, real))
        path = real
    try:
        with open(path, "rb") as handle:
            existing = handle.read()
    except FileNotFoundError:
        existing = b""
    present = set(_lines(existing))
    added: List[str] = []
    for entry in entries:
        entry = entry.rstrip()
        if entry and entry not in present and entry not in added:
            added.append(entry)
    if added and not check:
        prefix = existing if not existing or existing.endswith(b"\n") else existing + b"\n"
        atomic_write_bytes(path, prefix + "".join(line + "\n" for line in added).encode("utf-8"))
    return added


def diff_listing(plan: Plan, policy: str, gitignore_added: Sequence[str] = ()) -> Dict[str, str]:
    """Before/after text listings of what applying `plan` changes, one line per path (for --diff)."""
    before, after = [], []

    def short(digest: Optional[str]) -> str:
        return (digest or "")[:12]

    for rel in plan["add"]:
        after.append("%s  %s  (added)" % (rel, short(plan.upstream[rel])))
    for rel in plan["update"]:
        before.append("%s  %s" % (rel, short(plan.local[rel])))
        after.append("%s  %s  (updated)" % (rel, short(plan.upstream[rel])))
    for rel in plan["conflict"]:
        before.append("%s  %s  (locally modified)" % (rel, short(plan.local[rel])))
        if policy == "take_upstream":
            after.append("%s  %s  (conflict: upstream taken, local copy in the backup)"
                         % (rel, short(plan.upstream[rel])))
        else:
            after.append("%s  %s  (conflict: local kept)" % (rel, short(plan.local[rel])))
            after.append("%s%s  %s  (conflict: upstream beside)" % (rel, UPSTREAM_SUFFIX, short(plan.upstream[rel])))
    for rel in plan["delete"]:
        before.append("%s  %s  (deleted upstream)" % (rel, short(plan.local[rel])))
    for entry in gitignore_added:
        after.append("../.gitignore  + %s" % entry)
    return {"before": "".join(line + "\n" for line in sorted(before)),
            "after": "".join(line + "\n" for line in sorted(after))}
