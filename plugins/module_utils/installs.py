# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an install of each commit of a source's history looks like, and which one a target holds.

Installations made by upstream's own docs have no base manifest and no VERSION.txt. Their commit is
found by matching the installed framework trees against the installs of the source's history:
`history_index` (controller: git) lists, per commit, the installed trees (path -> sha256) and the
IDE config its installer writes; `identify` (target: stdlib) picks the commit whose install agrees
with the installed trees. When none does (a shallow clone, a one-commit mirror, another fork), the
upgrade refuses: pristine files cannot be told from local edits then.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple

# Trees that identify an install: the server code and scripts are never the user's, so they must match
# exactly; standards and workflows may carry local edits (counted, not required).
STRICT_TREES = ("mcp_server/", "scripts/")
ALL_TREES = ("mcp_server", "scripts", "standards/universal", "workflows", "usage")
MAX_COMMITS = 2000
_DOCS_BLOCK = re.compile(r"should look like this[^\n]*\n```json[ \t]*\n(.*?)\n```", re.I | re.S)

Manifest = Dict[str, str]


def entry_digest(value: object) -> str:
    """sha256 of an mcp.json server entry's value in canonical JSON (key order and layout do not count)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def docs_mcp_entry(text: str) -> Optional[Tuple[str, object]]:
    """(key, value) of the one server entry a docs page shows as the `.cursor/mcp.json` to expect.

    Upstream's installation docs close their mcp.json step with "**Should look like this**" and a
    ```json block holding `{"mcpServers": {<key>: {...}}}`. None when the page has no such block.
    """
    for match in _DOCS_BLOCK.finditer(text):
        try:
            servers = json.loads(match.group(1)).get("mcpServers")
        except (ValueError, AttributeError):
            continue
        if isinstance(servers, dict) and len(servers) == 1:
            ((key, value),) = servers.items()
            if isinstance(value, dict):
                return key, value
    return None


# ---- controller side (git) ---------------------------------------------------------------------------

def _cat_blobs(git, path: str, blobs: List[str]) -> Dict[str, bytes]:
    """{blob id: content} of a few small blobs (installation docs)."""
    out: Dict[str, bytes] = {}
    if not blobs:
        return out
    data = git(path, "cat-file", "--batch", stdin="".join(b + "\n" for b in blobs).encode("ascii"))
    offset = 0
    for blob in blobs:
        end = data.index(b"\n", offset)
        header = data[offset:end].decode("ascii", "replace").split()
        if len(header) != 3 or header[1] != "blob":
            raise ValueError("git cat-file gave %r for %s; run `git fsck` in the source" % (" ".join(header), blob))
        size = int(header[2])
        out[blob] = data[end + 1:end + 1 + size]
        offset = end + 1 + size + 1
    return out


def history_index(path: str, git, hash_blobs, installed_rel, limit: int = MAX_COMMITS) -> dict:
    """Per commit of HEAD's history (newest first): its installed trees and installer-written IDE config.

    `git(path, *args, stdin=None) -> bytes`, `hash_blobs(path, [blob]) -> {blob: sha256}` and
    `installed_rel(source_rel) -> installed rel or None` come from source.py (one git runner).
    Returns {"shallow", "commit_count", "truncated", "paths", "digests", "trees", "commits", "mcp_keys"};
    `commits` rows are [sha, tree index, cursorrules sha256|None, mcp key|None, mcp entry digest|None].
    """
    shallow = git(path, "rev-parse", "--is-shallow-repository").decode("ascii").strip() == "true"
    commits = git(path, "rev-list", "--max-count=%d" % (limit + 1), "HEAD").decode("ascii").split()
    truncated = len(commits) > limit
    commits = commits[:limit]
    listing: Dict[str, List[Tuple[str, str]]] = {}
    blobs, docs = set(), set()
    for commit in commits:
        out = git(path, "ls-tree", "-r", "-z", "--full-tree", commit, "--",
                  "mcp_server", "scripts", "universal", "installation").decode("utf-8", "surrogateescape")
        rows = []
        for item in out.split("\0"):
            if not item:
                continue
            meta, name = item.split("\t", 1)
            mode, kind, blob = meta.split()
            if kind != "blob" or mode not in ("100644", "100755"):
                continue
            rows.append((name, blob))
            if name.startswith("installation/") and name.count("/") == 1 and name.endswith(".md"):
                docs.add(blob)
            else:
                blobs.add(blob)
        listing[commit] = rows
    hashes = hash_blobs(path, sorted(blobs))
    doc_entries = {}
    for blob, data in _cat_blobs(git, path, sorted(docs)).items():
        doc_entries[blob] = docs_mcp_entry(data.decode("utf-8", "replace"))
    paths: Dict[str, int] = {}
    digests: Dict[str, int] = {}
    trees: Dict[str, int] = {}
    tree_rows: List[List[List[int]]] = []
    rows_out: List[list] = []
    keys: List[str] = []
    for commit in commits:
        files, rules, entry = [], None, None
        for name, blob in sorted(listing[commit]):
            if name == "installation/.cursorrules":
                rules = hashes[blob]
            elif name.startswith("installation/"):
                if entry is None and blob in doc_entries:
                    entry = doc_entries[blob]
            else:
                rel = installed_rel(name)
                if rel is not None:
                    pi = paths.setdefault(rel, len(paths))
                    di = digests.setdefault(hashes[blob], len(digests))
                    files.append([pi, di])
        files.sort()
        fingerprint = json.dumps(files, separators=(",", ":"))
        if fingerprint not in trees:
            trees[fingerprint] = len(tree_rows)
            tree_rows.append(files)
        key = entry[0] if entry else None
        if key and key not in keys:
            keys.append(key)
        rows_out.append([commit, trees[fingerprint], rules, key, entry_digest(entry[1]) if entry else None])
    return {
        "shallow": shallow, "commit_count": len(commits), "truncated": truncated,
        "paths": sorted(paths, key=paths.__getitem__), "digests": sorted(digests, key=digests.__getitem__),
        "trees": tree_rows, "commits": rows_out, "mcp_keys": keys, "source": path,
    }


def history_of(index: Mapping, current: Mapping[str, str]) -> Dict[str, List[str]]:
    """{installed rel: sorted sha256 of every other version it had in the indexed history}; empty lists omitted.

    Derived from `history_index` (one walk and one hashing pass over the history serve both).
    """
    versions: Dict[int, set] = {}
    for files in index.get("trees") or ():
        for pi, di in files:
            versions.setdefault(pi, set()).add(di)
    paths, digests = index.get("paths") or [], index.get("digests") or []
    history = {}
    for pi, dis in versions.items():
        rel = paths[pi]
        older = sorted({digests[di] for di in dis} - {current.get(rel)})
        if older:
            history[rel] = older
    return dict(sorted(history.items()))


# ---- target side (stdlib) ----------------------------------------------------------------------------

def _valid(index: Optional[Mapping]) -> bool:
    return isinstance(index, Mapping) and isinstance(index.get("commits"), list) and bool(index["commits"])


def tree_of(index: Mapping, commit: str) -> Optional[Manifest]:
    """{installed rel: sha256} of `commit`'s install, None when the commit is not in the index."""
    if not _valid(index):
        return None
    for row in index["commits"]:
        if row[0] == commit:
            return {index["paths"][pi]: index["digests"][di] for pi, di in index["trees"][row[1]]}
    return None


def ide_of(index: Mapping, commit: str) -> Dict[str, Optional[str]]:
    """{"cursorrules": sha256, "mcp_key": key, "mcp_entry": digest} of `commit`'s installer ({} when unknown)."""
    if _valid(index):
        for row in index["commits"]:
            if row[0] == commit:
                return {"cursorrules": row[2], "mcp_key": row[3], "mcp_entry": row[4]}
    return {}


def identify(local: Mapping[str, str], index: Mapping) -> Optional[dict]:
    """The commit whose install the installed trees `local` are: {"commit", "exact", "differing", "files"}.

    A candidate's `mcp_server/` and `scripts/` files must all be installed unchanged; among those, the
    one with the fewest differing files (missing, changed, or installed from another commit) wins,
    the newest on a tie. None when no commit qualifies.
    """
    if not _valid(index):
        return None
    known = set(index["paths"])
    installed_known = {rel for rel in local if rel in known}
    best = None
    seen = {}
    for row in index["commits"]:
        tree_index = row[1]
        if tree_index in seen:
            continue
        tree = {index["paths"][pi]: index["digests"][di] for pi, di in index["trees"][tree_index]}
        strict_ok = all(local.get(rel) == digest for rel, digest in tree.items() if rel.startswith(STRICT_TREES))
        if not strict_ok:
            seen[tree_index] = None
            continue
        differing = sum(1 for rel, digest in tree.items() if local.get(rel) != digest)
        differing += len(installed_known - set(tree))
        seen[tree_index] = differing
        if best is None or differing < best["differing"]:
            best = {"commit": row[0], "exact": differing == 0, "differing": differing, "files": len(tree)}
    return best


def refusal(home: str, index: Mapping, source_path: Optional[str] = None) -> str:
    """The preflight message when no commit of the source's history matches a manifest-less install."""
    where = source_path or "the source"
    if index.get("shallow"):
        cause = "%s is a shallow clone (git clone --depth: its history holds only %d commit(s))" % (
            where, index.get("commit_count", 0))
    elif index.get("commit_count", 0) <= 1:
        cause = "%s has a single commit, so its history holds no older versions" % where
    else:
        cause = ("the installed mcp_server/ and scripts/ match none of the %d commits in the history of %s"
                 % (index.get("commit_count", 0), where))
    return ("%s has no base manifest and %s: which installed files are pristine cannot be proven, so the "
            "upgrade would silently mix versions. Nothing was changed. Next: a full clone is needed — point "
            "praxis_source at a full clone of the repository this installation came from (git clone <url>, "
            "or git -C <source> fetch --unshallow) and re-run" % (home, cause))


def installed_identity(home: str, index: Optional[Mapping], recorded_commit: Optional[str],
                       local: Mapping[str, str], source_path: Optional[str] = None) -> dict:
    """Preflight: the installed commit of an install with no base manifest, or the reason to refuse.

    Returns {"installed_commit", "installed_commit_source", "match", "problem"} (problem None when fine).
    """
    result = {"installed_commit": recorded_commit, "installed_commit_source": "VERSION.txt" if recorded_commit
              else None, "match": None, "problem": None}
    if not _valid(index):
        return result
    if recorded_commit and tree_of(index, recorded_commit) is not None:
        return result
    found = identify(local, index)
    if found is None:
        result["problem"] = refusal(home, index, source_path)
        return result
    result.update(installed_commit=found["commit"], match=found,
                  installed_commit_source="matched in the source's history (%s)" % (
                      "exact" if found["exact"] else "closest: %d file(s) differ" % found["differing"]))
    return result


def local_trees(praxis_home: str, index: Optional[Mapping] = None) -> Manifest:
    """Manifest of every installed framework tree (mcp_server/ included), keys relative to praxis_home;
    of workflows/, only the entries some install of `index` holds (the operator's own are not hashed:
    `identify` counts only paths the index knows)."""
    from ansible_collections.praxis.upgrade.plugins.module_utils.content import local_manifest
    from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import narrow_trees, owned_workflows

    owned = owned_workflows(index.get("paths") or ()) if _valid(index) else None
    return local_manifest(praxis_home, narrow_trees(ALL_TREES, owned))


def preflight_facts(home: str, index: Optional[Mapping], recorded_commit: Optional[str]) -> Tuple[dict, List[str]]:
    """(facts, problems) for praxis_preflight: the installed commit of an install without a base manifest.

    With a base manifest (installs and upgrades by this collection) nothing changes: the recorded
    commit stands. Without one, the commit is VERSION.txt's when the source's history holds it, else
    the one whose install matches the installed trees; when none does, a problem (refuse).
    """
    facts = {"installed_commit": recorded_commit,
             "installed_commit_source": "VERSION.txt or base manifest" if recorded_commit else None,
             "installed_commit_match": None}
    from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import BASE_MANIFEST

    if os.path.isfile(os.path.join(home, BASE_MANIFEST)) or not _valid(index):
        return facts, []
    found = installed_identity(home, index, recorded_commit, local_trees(home, index), index.get("source"))
    facts.update(installed_commit=found["installed_commit"], installed_commit_source=found["installed_commit_source"],
                 installed_commit_match=found["match"])
    return facts, [found["problem"]] if found["problem"] else []
