# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Three-way upgrade of the framework content trees (SPEC 3 phase 2) and the `.gitignore` append.

Three inputs per path: the local file, the base (what the last install/upgrade wrote, from the base
manifest) and upstream (the new source), plus every older upstream version of the path (git history).
`classify` is a pure function from those manifests to a `Plan`; `stage_plan` stages it while the old
server still runs and `apply_plan` carries the staged plan out between the old server's stop and the
swap (`preview` says what that would change, for the dry run).
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError,
    atomic_write_bytes,
    atomic_write_json,
    check_relpath,
    copy_file_atomic,
    prune_empty_dirs,
    read_json,
    sha256_file,
    write_temp_target,
)
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest

# Installed trees this phase owns; mcp_server/ is staged and swapped whole by the server phase.
TREES = ("scripts", "standards/universal", "workflows", "usage")
# Mixed trees: files there are merged in and updated, never deleted (SPEC 2.2).
MERGE_ONLY = ("usage/",)
POLICIES = ("keep_local", "take_upstream", "fail")
CLASSES = ("add", "update", "unchanged", "keep", "conflict", "delete", "user", "keep_removed")
UPSTREAM_SUFFIX = ".upstream"
# praxis_content's `src` (shipped by its action plugin) needs `archive`: the one message of both checks
SRC_WITHOUT_ARCHIVE = "src is set but archive is not; pass archive, the path on the target where the shipped source archive goes"
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
    """Per-class sorted path lists plus the manifests they came from."""

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
    """Manifest of the installed trees, keys relative to `praxis_home`; a tree may be a single file
    (an entry of workflows/, see manifest.narrow_trees)."""
    result: Manifest = {}
    for tree in trees:
        root = os.path.join(praxis_home, *tree.split("/"))
        if os.path.isfile(root) and not os.path.islink(root):
            result[tree] = sha256_file(root)
        else:
            result.update(build_manifest(root, prefix=tree + "/"))
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


def preview(plan: Plan, praxis_home: str, policy: str) -> Dict[str, List[str]]:
    """What staging and applying `plan` would change: {"written", "upstream_written", "deleted"} (dry run)."""
    writes = pending_writes(plan, praxis_home, policy)
    return {"written": [dst for rel, dst in writes if dst == rel],
            "upstream_written": [dst for rel, dst in writes if dst != rel],
            "deleted": list(plan["delete"])}


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


# ---- staged plan: classified and staged while the old server runs, applied between stop and swap ----

PLAN_NAME = "content-plan.json"
IDE_STAGE = ".praxis-ide"  # staged IDE config files inside the staging dir
PLAN_SCHEMA = 1
PROJECT_TARGETS = (".cursorrules", ".cursorrules" + UPSTREAM_SUFFIX, ".cursor/mcp.json", ".cursor/mcp.json" + UPSTREAM_SUFFIX)


def staging_path(praxis_home: str, commit: str) -> str:
    """Where a commit's source is unpacked and its content plan staged: `<praxis_home>/.cache/upgrade/<commit>`."""
    return os.path.join(praxis_home, ".cache", "upgrade", commit)


def plan_path(praxis_home: str, commit: str) -> str:
    return os.path.join(staging_path(praxis_home, commit), PLAN_NAME)


def _digest_or_none(path: str) -> Optional[str]:
    return sha256_file(path) if os.path.isfile(path) and not os.path.islink(path) else None


def stage_plan(plan: Plan, praxis_home: str, project_dir: str, staging_dir: str, policy: str,
               ide_plan: Optional[dict] = None, gitignore_entries: Sequence[str] = (),
               extra: Optional[dict] = None) -> dict:
    """Stage everything `plan` writes and record it in `<staging_dir>/content-plan.json`; touch nothing live.

    Every file to add or update and every `.upstream` copy is checked against its sha256 in the
    verified staging dir; IDE config files are written there (under `.praxis-ide/`) and verified.
    Each write records the sha256 its target had when planned (`before`), so `apply_plan` refuses a
    target changed since. Targets are checked (`_check_targets`) here already, so a directory where a
    file goes is refused before the old server stops. Returns the plan document (also written atomically).
    """
    if policy not in POLICIES:
        raise ValueError("conflict policy %r is not one of %s; set praxis_conflict_policy accordingly"
                         % (policy, ", ".join(POLICIES)))
    if policy == "fail" and (plan["conflict"] or (ide_plan or {}).get("conflicts")):
        raise ConflictError(plan["conflict"] + list((ide_plan or {}).get("conflicts") or ()))
    if not staging_dir:
        raise ContentError("no staged source to copy from; the archive must be extracted first")
    pending = pending_writes(plan, praxis_home, policy)
    _check_targets(praxis_home, [dst for _rel, dst in pending] + plan["delete"])  # refused while the old server runs
    writes = []
    for rel, dst in pending:
        src = os.path.join(staging_dir, *rel.split("/"))
        if not os.path.isfile(src) or sha256_file(src) != plan.upstream[rel]:
            raise ContentError("staged source %s lacks %s or holds other bytes; the staged source is corrupt — "
                               "remove %s and re-run the upgrade" % (staging_dir, rel, staging_dir))
        before = plan.local.get(rel) if dst == rel else _digest_or_none(os.path.join(praxis_home, *dst.split("/")))
        writes.append({"root": "home", "src": rel, "dst": dst, "sha256": plan.upstream[rel], "before": before})
    for rel, data in sorted(((ide_plan or {}).get("writes") or {}).items()):
        staged_rel = IDE_STAGE + "/" + rel
        staged = os.path.join(staging_dir, *staged_rel.split("/"))
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        live = os.path.join(project_dir, *rel.split("/"))
        mode = os.stat(live).st_mode & 0o777 if os.path.isfile(live) else 0o644  # keeps the user's mode
        atomic_write_bytes(staged, data, mode)
        digest = sha256_file(staged)
        if digest != hashlib.sha256(data).hexdigest():
            raise ContentError("staged %s does not hold what was written; check the disk and re-run" % staged)
        writes.append({"root": "project", "src": staged_rel, "dst": rel, "sha256": digest,
                       "before": _digest_or_none(os.path.join(project_dir, *rel.split("/")))})
    document = {
        "schema": PLAN_SCHEMA, "policy": policy, "praxis_home": os.path.abspath(praxis_home),
        "project_dir": os.path.abspath(project_dir), "counts": plan.counts(), "conflicts": list(plan["conflict"]),
        "writes": writes,
        "deletes": [{"dst": rel, "sha256": plan.local[rel]} for rel in plan["delete"]],
        "gitignore": list(append_gitignore(project_dir, gitignore_entries, check=True)),
        "ide": list((ide_plan or {}).get("items") or ()),
        "ide_conflicts": list((ide_plan or {}).get("conflicts") or ()),
    }
    document.update(extra or {})
    atomic_write_json(os.path.join(staging_dir, PLAN_NAME), document)
    return document


def load_plan(path: str) -> dict:
    """Read and check a plan file (schema, safe relative paths, allowed project targets)."""
    if not os.path.isfile(path):
        raise ContentError("content plan %s does not exist; the content phase writes it — re-run the upgrade (a "
                           "session whose content phase is recorded but whose plan is gone: roll back with "
                           "playbooks/rollback.yml, then upgrade again)" % path)
    document = read_json(path, "content plan")
    if not isinstance(document, dict) or document.get("schema") != PLAN_SCHEMA:
        raise ContentError("%s is not a content plan of schema %d; re-run the upgrade (the content phase writes "
                           "it again)" % (path, PLAN_SCHEMA))
    try:
        for write in document.get("writes") or []:
            check_relpath(write["src"])
            check_relpath(write["dst"])
            if write["root"] == "project" and write["dst"] not in PROJECT_TARGETS:
                raise UnsafePathError("project target %r is not installer-owned IDE config" % write["dst"])
            if write["root"] not in ("home", "project"):
                raise UnsafePathError("unknown root %r" % write["root"])
        for delete in document.get("deletes") or []:
            check_relpath(delete["dst"])
    except (UnsafePathError, KeyError, TypeError) as exc:
        raise ContentError("content plan %s is corrupt or tampered with (%s); remove it and re-run the upgrade"
                           % (path, exc)) from exc
    return document


def verify_plan(document: Mapping, praxis_home: str, project_dir: str) -> List[str]:
    """Targets of a plan that do not hold what it says (written files, deleted paths); empty when all is well."""
    roots = {"home": praxis_home, "project": project_dir}
    bad = [w["dst"] for w in document["writes"]
           if _digest_or_none(os.path.join(roots[w["root"]], *w["dst"].split("/"))) != w["sha256"]]
    bad += [d["dst"] for d in document["deletes"] if os.path.lexists(os.path.join(praxis_home, *d["dst"].split("/")))]
    return bad


def _remove_write_temps(targets: Sequence[str]) -> None:
    """Temp files an apply killed mid-copy left beside its targets (`.<name>.<8 random>.tmp`, fsutil's)."""
    by_dir: Dict[str, set] = {}
    for target in targets:
        by_dir.setdefault(os.path.dirname(target), set()).add(os.path.basename(target))
    for directory, names in sorted(by_dir.items()):
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(directory, entry)
            if write_temp_target(entry) in names and os.path.isfile(path) and not os.path.islink(path):
                os.unlink(path)


def apply_plan(praxis_home: str, project_dir: str, plan_file: str, fault: Optional[Callable[[], None]] = None,
               trees: Iterable[str] = TREES) -> dict:
    """Carry out a staged plan (between the old server's stop and the swap). Idempotent: a re-run after a
    crash skips what is already in place and completes the rest.

    Every write is an atomic rename of a copy of the staged file, verified against the plan; a target
    changed since the plan was made (neither its planned `before` nor the planned result) is refused.
    Returns {"written", "upstream_written", "ide_written", "deleted", "skipped", "gitignore_added", "verified",
    "changed"}.
    """
    document = load_plan(plan_file)
    staging = os.path.dirname(os.path.abspath(plan_file))
    roots = {"home": praxis_home, "project": project_dir}
    home_targets = [w["dst"] for w in document["writes"] if w["root"] == "home"]
    _check_targets(praxis_home, home_targets + [d["dst"] for d in document["deletes"]])
    written, upstream_written, ide_written, deleted, skipped = [], [], [], [], []
    writes = document["writes"]
    _remove_write_temps([os.path.join(roots[w["root"]], *w["dst"].split("/")) for w in writes])
    halfway = len(writes) // 2
    for index, write in enumerate(writes):
        if index == halfway and fault is not None:
            fault()
        target = os.path.join(roots[write["root"]], *write["dst"].split("/"))
        current = _digest_or_none(target)
        if current == write["sha256"]:
            skipped.append(write["dst"])
            continue
        if current != write["before"]:
            raise ContentError("%s changed since the content phase planned this upgrade (sha256 %s, planned from %s); "
                               "nothing of it was overwritten — the upgrade rolls back; re-run it to plan again"
                               % (target, (current or "absent")[:12], (write["before"] or "absent")[:12]))
        if write["root"] == "project":
            os.makedirs(os.path.dirname(target), exist_ok=True)
        digest = copy_file_atomic(os.path.join(staging, *write["src"].split("/")), target)
        if digest != write["sha256"]:
            raise ContentError("%s was written with sha256 %s but the plan says %s; the staging dir %s is corrupt — "
                               "the upgrade rolls back; remove it and re-run" % (target, digest, write["sha256"], staging))
        if write["root"] == "project":
            ide_written.append(write["dst"])
        elif write["dst"].endswith(UPSTREAM_SUFFIX) and write["dst"] != write["src"]:
            upstream_written.append(write["dst"])
        else:
            written.append(write["dst"])
    if fault is not None and not writes:
        fault()
    for delete in document["deletes"]:
        target = os.path.join(praxis_home, *delete["dst"].split("/"))
        if not os.path.lexists(target):
            continue
        if _digest_or_none(target) != delete["sha256"]:
            raise ContentError("%s changed since the content phase planned to delete it; it was kept — the upgrade "
                               "rolls back; re-run it to plan again" % target)
        os.unlink(target)
        deleted.append(delete["dst"])
        prune_empty_dirs(_tree_root(praxis_home, delete["dst"], trees), os.path.dirname(target))
    gitignore_added = append_gitignore(project_dir, document.get("gitignore") or ())
    bad = verify_plan(document, praxis_home, project_dir)
    if bad:
        raise ContentError("after applying the plan, %d path(s) do not hold what it says: %s; the disk is faulty — "
                           "the upgrade rolls back; check the disk and re-run" % (len(bad), ", ".join(bad[:10])))
    return {"written": written, "upstream_written": upstream_written, "ide_written": ide_written,
            "deleted": deleted, "skipped": skipped, "gitignore_added": gitignore_added, "verified": True,
            "changed": bool(written or upstream_written or ide_written or deleted or gitignore_added)}
