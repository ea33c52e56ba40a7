# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The new version's search index, built before the old server stops (the server phase's downtime).

A server whose standards or code changed must not search an index built from the old ones (issue 7:
search broken after a "successful" upgrade). Upstream rebuilds it at start when `standards/.rebuild_index`
exists - before the server listens, so that rebuild (45 s on a real installation, minutes on a small host)
is downtime. Here the index is built first, while the old server still serves:

1. `compose_shadow` lays out a shadow installation in the session's staging: `standards/` and `scripts/`
   as they will be once the staged content plan is applied (copies of the live trees, mtimes kept, with
   the plan's writes and deletes done to them), and `mcp_server` -> the staged new server code;
2. `build` runs the new version's own `scripts/build_rag_index.py` from there with the venv's python (the
   new dependencies are installed by then) - `--force --index-path --standards-path`, upstream's CLI - into
   `<shadow>/.cache/vector_index`;
3. after the stop, the content apply and the swap, `install` puts it in place of the live index with two
   renames, but only when the live standards hold exactly what the shadow held (`fingerprint`): anything
   that changed in between falls back to upstream's own trigger. A crash between the renames leaves no
   live index, which the server builds at start; the backup holds the old index for a rollback.

Not used (`blocker`) when `config.json` moves the index or the standards or picks another embedding
provider (the server's own rebuild then knows better), when `standards/` holds a symlink, or when the
installation has no builder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Dict, List, Mapping, Optional, Sequence

from ansible_collections.praxis.upgrade.plugins.module_utils import faults
from ansible_collections.praxis.upgrade.plugins.module_utils.backup import FILES, INDEX_DIR, MANIFEST, REBUILD_FLAG
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    atomic_write_bytes,
    check_relpath,
    fsync_dir,
    remove_path,
    sync_filesystem,
)
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest, load_manifest
from ansible_collections.praxis.upgrade.plugins.module_utils.serverops import run_venv_tool

BUILDER = "scripts/build_rag_index.py"
STANDARDS = "standards"
SCRIPTS = "scripts"
CONFIG = "config.json"
# config.json's rag settings the server's own rebuild honours and a prebuild would not (upstream's defaults)
RAG_DEFAULTS = {"standards_path": ".praxis-os/standards", "index_path": ".praxis-os/.cache/vector_index",
                "embedding_provider": "local"}
TAIL = 2000


class IndexBuildError(RuntimeError):
    """The new version's index builder failed or ran out of time; ``output_tail`` holds its last output."""

    def __init__(self, message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


def shadow_path(praxis_home: str, session_id: str) -> str:
    """Where the shadow installation is laid out: inside the session's staging (removed by cleanup and rollback)."""
    return os.path.join(os.path.abspath(praxis_home), ".cache", "upgrade", "index-%s" % session_id)


def blocker(praxis_home: str) -> Optional[str]:
    """Why the index cannot be built beforehand for this installation (None: it can)."""
    home = os.path.abspath(praxis_home)
    config = os.path.join(home, CONFIG)
    if os.path.lexists(config):
        try:
            with open(config, "rb") as handle:
                rag = (json.loads(handle.read().decode("utf-8")) or {}).get("rag") or {}
        except (OSError, ValueError, AttributeError) as exc:
            return "%s cannot be read as JSON (%s); the server's own rebuild decides" % (config, exc)
        if not isinstance(rag, dict):
            return "%s has a rag setting that is not an object" % config
        for key, default in sorted(RAG_DEFAULTS.items()):
            if key in rag and rag[key] != default:
                return "%s sets rag.%s to %r (the server's own rebuild honours it)" % (config, key, rag[key])
    if not os.path.isfile(os.path.join(home, BUILDER)):
        return "the installation has no %s" % BUILDER
    standards = os.path.join(home, STANDARDS)
    if not os.path.isdir(standards) or os.path.islink(standards):
        return "%s is not a plain directory" % standards
    for current, dirnames, filenames in os.walk(standards):
        for name in dirnames + filenames:
            if os.path.islink(os.path.join(current, name)):
                return "%s holds a symlink (%s)" % (standards, os.path.join(current, name))
    return None


def compose_shadow(praxis_home: str, source_dir: str, plan: Optional[Mapping], shadow: str) -> None:
    """Lay out the shadow installation (see the module doc); an old shadow is removed first.

    ``plan`` is the staged content plan document (``writes``/``deletes``; None: no content changes), whose
    staged files live beside it in ``source_dir``.
    """
    home = os.path.abspath(praxis_home)
    remove_path(shadow)
    os.makedirs(shadow)
    for tree in (STANDARDS, SCRIPTS):  # copies (never links: the builder can touch nothing live), mtimes kept
        if os.path.isdir(os.path.join(home, tree)):
            shutil.copytree(os.path.join(home, tree), os.path.join(shadow, tree), symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        os.makedirs(os.path.join(shadow, tree), exist_ok=True)
    flag = os.path.join(shadow, REBUILD_FLAG)
    if os.path.lexists(flag):
        os.unlink(flag)

    def mine(rel: str) -> bool:
        return rel.split("/", 1)[0] in (STANDARDS, SCRIPTS)

    for write in (plan or {}).get("writes") or ():
        if write.get("root") != "home" or not mine(write["dst"]):
            continue
        target = os.path.join(shadow, *check_relpath(write["dst"]).split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        remove_path(target)
        shutil.copy2(os.path.join(source_dir, *check_relpath(write["src"]).split("/")), target)
    for delete in (plan or {}).get("deletes") or ():
        if mine(delete["dst"]):
            remove_path(os.path.join(shadow, *check_relpath(delete["dst"]).split("/")))
    os.symlink(os.path.join(os.path.abspath(source_dir), "mcp_server"), os.path.join(shadow, "mcp_server"))


def fingerprint(root: str) -> Dict[str, str]:
    """{relative path: sha256} of a standards tree (the manifest's rule: bytecode and the like left out;
    the rebuild flag too)."""
    found = build_manifest(root)
    found.pop(os.path.basename(REBUILD_FLAG), None)
    return found


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= TAIL else "..." + text[-TAIL:]


def build_argv(praxis_home: str, shadow: str) -> List[str]:
    return [os.path.join(os.path.abspath(praxis_home), "venv", "bin", "python"),
            os.path.join(shadow, *BUILDER.split("/")), "--force",
            "--index-path", os.path.join(shadow, *INDEX_DIR.split("/")),
            "--standards-path", os.path.join(shadow, STANDARDS)]


def build(praxis_home: str, project_dir: str, shadow: str, env: Mapping[str, str], timeout: float) -> dict:
    """Run the shadow's builder (``env``: the whole environment); ``duration_s`` and ``output_tail``.

    The builder stays in this process group (a killed run takes it along, like pip); no bytecode is
    written (the shadow's mcp_server is the staged source, the venv is backed up as it was).
    """
    argv = build_argv(praxis_home, shadow)
    if not os.path.isfile(argv[1]):
        raise IndexBuildError("the new version has no %s; the server's own rebuild is used" % BUILDER)
    run_env = dict(env)
    run_env["PYTHONDONTWRITEBYTECODE"] = "1"
    begin = time.monotonic()
    try:
        code, out = run_venv_tool(argv, project_dir, run_env, timeout, "server.during_index_build")
    except OSError as exc:
        raise IndexBuildError("cannot run %s: %s" % (argv[0], exc))
    if code is None:
        raise IndexBuildError("the index builder did not finish within %g s (killed); raise "
                              "praxis_index_build_timeout" % timeout, _tail(out))
    if code != 0:
        raise IndexBuildError("the index builder exited %d" % code, _tail(out))
    built = os.path.join(shadow, *INDEX_DIR.split("/"))
    if not os.path.isdir(built) or not os.listdir(built):
        raise IndexBuildError("the index builder exited 0 but wrote nothing to %s" % built, _tail(out))
    return {"duration_s": round(time.monotonic() - begin, 3), "output_tail": _tail(out)}


def install(praxis_home: str, shadow: str) -> dict:
    """The shadow's index in place of the live one: the live one renamed into the shadow (the backup
    holds it too), then the built one renamed in. Returns ``replaced`` (a live index was there)."""
    live = os.path.join(os.path.abspath(praxis_home), *INDEX_DIR.split("/"))
    built = os.path.join(shadow, *INDEX_DIR.split("/"))
    sync_filesystem(built)  # the builder does not fsync: the index is durable before it is published
    replaced = os.path.lexists(live)
    if replaced:
        retired = os.path.join(shadow, "replaced-index")
        remove_path(retired)
        os.rename(live, retired)
    faults.fault_point("server.between_index_renames")
    os.makedirs(os.path.dirname(live), exist_ok=True)
    os.rename(built, live)
    fsync_dir(os.path.dirname(live))
    return {"replaced": replaced}


def same_standards(praxis_home: str, expected: Mapping[str, str]) -> List[str]:
    """Paths where the live standards differ from ``expected`` (a fingerprint); empty when they match."""
    now = fingerprint(os.path.join(os.path.abspath(praxis_home), STANDARDS))
    return sorted(rel for rel in set(now) | set(expected) if now.get(rel) != expected.get(rel))


# --------------------------------------------------------------------------- does the index need a rebuild


def planned_standards(praxis_home: str, plan: Optional[Mapping]) -> Dict[str, str]:
    """The fingerprint the live standards will have once ``plan`` (a staged content plan) is applied."""
    after = fingerprint(os.path.join(os.path.abspath(praxis_home), STANDARDS))
    prefix = STANDARDS + "/"
    for write in (plan or {}).get("writes") or ():
        if write.get("root") == "home" and write["dst"].startswith(prefix):
            after[write["dst"][len(prefix):]] = write["sha256"]
    for delete in (plan or {}).get("deletes") or ():
        if delete["dst"].startswith(prefix):
            after.pop(delete["dst"][len(prefix):], None)
    return after


def _backed_up(backup_dir: Optional[str]) -> Optional[dict]:
    if not backup_dir:
        return None
    try:
        return load_manifest(os.path.join(backup_dir, MANIFEST))
    except ValueError:
        return None


def rebuild_reasons(praxis_home: str, backup_dir: Optional[str], server_after: Mapping[str, str],
                    standards_after: Mapping[str, str]) -> List[str]:
    """Why the new server needs a new index: its code (``server_after``, ``mcp_server/...`` -> sha256) or
    its standards (``standards_after``, a fingerprint) differ from what the old index was built from - the
    session's backup, taken before any change (so a re-run after a crash still sees an earlier swap);
    without a readable backup, the live trees."""
    doc = _backed_up(backup_dir)
    home = os.path.abspath(praxis_home)
    if doc is not None:
        server_before = {key[len(FILES) + 1:]: digest for key, digest in doc["files"].items()
                         if key.startswith(FILES + "/mcp_server/") and "/__pycache__/" not in key}
        roots = [rel for rel in (doc.get("paths") or {}) if rel == STANDARDS or rel.startswith(STANDARDS + "/")]
        standards_before = {key[len(FILES) + len(STANDARDS) + 2:]: digest for key, digest in doc["files"].items()
                            if any(key.startswith("%s/%s/" % (FILES, root)) for root in roots)}
        inside = [root[len(STANDARDS) + 1:] + "/" if root != STANDARDS else "" for root in roots]
        standards_now = {rel: digest for rel, digest in standards_after.items()
                         if any(rel.startswith(top) for top in inside)}
    else:
        server_before = build_manifest(os.path.join(home, "mcp_server"), prefix="mcp_server/")
        standards_before = fingerprint(os.path.join(home, STANDARDS))
        standards_now = dict(standards_after)
    reasons = []
    if dict(server_after) != server_before:
        reasons.append("mcp_server changed (its index schema or table name may differ)")
    if standards_now != standards_before:
        reasons.append("standards changed")
    return reasons


# --------------------------------------------------------------------------- upstream's own trigger


def rebuild_flag_path(praxis_home: str) -> str:
    return os.path.join(os.path.abspath(praxis_home), REBUILD_FLAG)


def request_index_rebuild(praxis_home: str, reasons: Sequence[str], check: bool = False) -> dict:
    """Create ``standards/.rebuild_index`` so the next server start rebuilds its search index.

    Returns ``flag``, ``reasons`` and ``already_requested`` (the flag was there already).
    """
    flag = rebuild_flag_path(praxis_home)
    existed = os.path.exists(flag)
    if not check and not existed:
        atomic_write_bytes(flag, ("search index rebuild requested by praxis.upgrade: %s\n"
                                  % "; ".join(reasons)).encode("utf-8"))
    return {"flag": flag, "reasons": list(reasons), "already_requested": existed}


def rebuild_pending(praxis_home: str) -> bool:
    """True while the rebuild flag exists (the server removes it once the index is rebuilt)."""
    return os.path.exists(rebuild_flag_path(praxis_home))
