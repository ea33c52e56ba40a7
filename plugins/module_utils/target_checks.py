# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Preflight checks of a target installation that later phases would otherwise trip over after the lock
is taken: a home that is a link to another install, links leaving the installation and names that cannot
travel (not UTF-8, control characters) in framework trees, a corrupt base manifest, and the disk the
upgrade really needs (allocated blocks, not apparent sizes). Pure and stdlib-only; read-only.
"""

from __future__ import annotations

import os
import stat
from typing import Iterable, List, Optional, Tuple

# What the backup copies (the framework trees the content/server phases rewrite, the records, the project
# files an upgrade may write): backup.py's lists, so the estimate counts exactly what praxis_backup copies.
from ansible_collections.praxis.upgrade.plugins.module_utils.backup import (
    DEFAULT_PATHS,
    FRAMEWORK_TREES,
    INDEX_DIR,
    PROJECT_FILES,
)
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import read_json
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import BASE_MANIFEST, validate_manifest

LIST_LIMIT = 10
# Reports, records, session journal, backup MANIFEST.json headers: small, but not nothing.
RECORDS_BYTES = 256 * 1024
# Per-entry bytes of the backup's MANIFEST.json / VENV_MANIFEST.json (path + digest + JSON punctuation).
MANIFEST_ENTRY_BYTES = 160
MARGIN = 2  # SPEC 3 phase 0: free disk >= 2 x what the upgrade writes and backs up


def shown(name: bytes) -> str:
    """A file name as a person can read it: undecodable bytes and control characters escaped."""
    text = name.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def home_problem(project: str, home: str) -> Optional[str]:
    """Why `home` cannot be upgraded as this project's installation (a link, or resolving elsewhere)."""
    if os.path.islink(home):
        target = os.path.realpath(home)
        return ("%s is a symlink to %s: upgrading it would change another installation (and restart its server "
                "under this project's root); refused. Next: point praxis_project_dir at the project that owns %s, "
                "or replace the link by a real installation directory" % (home, target, target))
    real_project, real_home = os.path.realpath(project), os.path.realpath(home)
    if os.path.commonpath([real_project, real_home]) != real_project:
        return ("%s resolves to %s, outside the project %s; refused. Next: point praxis_project_dir at the project "
                "that owns it" % (home, real_home, real_project))
    return None


def tree_problems(home: str, trees: Iterable[str] = FRAMEWORK_TREES) -> List[str]:
    """Entries of the framework trees the upgrade cannot handle safely, each named: symlinks leaving the
    installation, names that are not UTF-8 or hold control characters."""
    real_home = os.path.realpath(home)
    outside: List[str] = []
    odd: List[str] = []
    for tree in trees:
        root = os.fsencode(os.path.join(home, tree))
        if not os.path.isdir(root) or os.path.islink(root):
            continue
        for current, dirs, files in os.walk(root):
            for name in sorted(dirs + files):
                path = os.path.join(current, name)
                rel = shown(os.path.relpath(path, os.fsencode(home)))
                try:
                    name.decode("utf-8")
                    readable = name.decode("utf-8").isprintable()
                except UnicodeDecodeError:
                    readable = False
                if not readable:
                    odd.append(rel)
                if os.path.islink(path):
                    target = os.path.realpath(path)
                    if os.path.commonpath([os.fsencode(real_home), target]) != os.fsencode(real_home):
                        outside.append("%s -> %s" % (rel, shown(os.readlink(path))))
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(current, d))]
    problems = []
    if outside:
        problems.append(
            "%d symlink(s) in the framework trees of %s point outside the installation: %s; the backup cannot "
            "hold what they point at and the upgrade would write through them. Next: replace each link by the "
            "file it points to (or remove it), then re-run" % (len(outside), home, _listing(outside)))
    if odd:
        problems.append(
            "%d file name(s) in the framework trees of %s are not printable UTF-8: %s; they cannot be recorded "
            "in manifests or reported. Next: rename or remove them (e.g. with mv from a shell), then re-run"
            % (len(odd), home, _listing(odd)))
    return problems


def _listing(items: List[str]) -> str:
    more = len(items) - LIST_LIMIT
    return ", ".join(items[:LIST_LIMIT]) + (" and %d more" % more if more > 0 else "")


def base_manifest_problem(home: str) -> Optional[str]:
    """Why the base manifest recorded by the last install/upgrade cannot be used, else None."""
    path = os.path.join(home, BASE_MANIFEST)
    if not os.path.lexists(path):
        return None
    hint = ("Next: move it aside (mv %s %s.corrupt) to upgrade without a base (locally modified files then count "
            "as conflicts unless upstream never changed them), or restore it from a backup" % (path, path))
    try:
        document = read_json(path, "base manifest")
    except (OSError, ValueError) as exc:
        return "base manifest %s is unreadable or corrupt (%s); %s" % (path, str(exc).split(";", maxsplit=1)[0], hint)
    if not isinstance(document, dict):
        return "base manifest %s is not a JSON object; %s" % (path, hint)
    try:
        validate_manifest(document.get("files"), path)
    except ValueError as exc:
        return "base manifest is corrupt: %s; %s" % (str(exc).split(";", maxsplit=1)[0], hint)
    return None


def _blocks(size: int, block: int) -> int:
    """Bytes a dense copy of `size` bytes allocates."""
    return -(-size // block) * block


def _file_usage(info: os.stat_result, block: int) -> int:
    """Bytes a copy of the file `info` describes allocates (its own blocks, or its size rounded up)."""
    return max(info.st_blocks * 512, _blocks(info.st_size, block))


def _tree_usage(root: str, block: int) -> Tuple[int, int, int]:
    """(bytes a copy allocates, files, dirs) below `root`, symlinks not followed."""
    total = files = dirs = 0
    for current, dirnames, filenames in os.walk(root):
        dirs += 1
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(current, d))]
        for name in filenames:
            try:
                info = os.lstat(os.path.join(current, name))
            except OSError:
                continue
            files += 1
            if stat.S_ISREG(info.st_mode):
                total += _file_usage(info, block)
    return total + dirs * block, files, dirs


def disk_need(home: str, project: str, source_bytes: int, source_files: int, block: int,
              paths: Iterable[str] = DEFAULT_PATHS) -> dict:
    """What the upgrade will really allocate on the installation's file system, with the margin.

    backup:  a dense copy of every backed-up path (`paths`: framework trees, records, base manifest; the
             project's .gitignore and IDE config), its
             directories, the backup manifests, and the venv snapshot's directories (its files are hard links);
    staging: the shipped source archive, the unpacked source, the staged mcp_server and the content writes —
             each at most the source's bytes plus a partly used block per file;
    index:   the search index twice (its copy in the backup, the new one built beside it) and the shadow's
             copies of standards/ and scripts/ it is built from (searchindex);
    records: reports, records and the session journal.
    """
    backup = backup_files = 0
    for path in [os.path.join(home, rel) for rel in paths] + [os.path.join(project, rel) for rel in PROJECT_FILES]:
        if os.path.islink(path):
            continue
        if os.path.isdir(path):
            size, files, _dirs = _tree_usage(path, block)
            backup, backup_files = backup + size, backup_files + files
        elif os.path.isfile(path):
            backup, backup_files = backup + _file_usage(os.lstat(path), block), backup_files + 1
    venv_files = venv_dirs = 0
    venv = os.path.join(home, "venv")
    if os.path.isdir(venv) and not os.path.islink(venv):
        _size, venv_files, venv_dirs = _tree_usage(venv, block)
    snapshot = venv_dirs * block + _blocks((venv_files + backup_files) * MANIFEST_ENTRY_BYTES, block)
    staging = 3 * (max(0, source_bytes) + max(0, source_files) * block)
    index = 0
    for rel, times in ((INDEX_DIR, 2), ("standards", 1), ("scripts", 1)):
        path = os.path.join(home, rel)
        if os.path.isdir(path) and not os.path.islink(path):
            index += times * _tree_usage(path, block)[0]
    written = backup + snapshot + staging + index + RECORDS_BYTES
    return {"backup_bytes": backup, "venv_snapshot_bytes": snapshot, "staging_bytes": staging, "index_bytes": index,
            "records_bytes": RECORDS_BYTES, "needed_bytes": MARGIN * written, "margin": MARGIN}


def disk_message(home: str, need: dict, free: int) -> str:
    return ("not enough free disk for %s: the upgrade needs %d bytes (%d x (backup %d + venv snapshot %d + staging "
            "%d + search index %d + records %d), counted in allocated blocks) but only %d are free. Next: free some "
            "space on that file system or prune old backups in %s, then re-run"
            % (home, need["needed_bytes"], need["margin"], need["backup_bytes"], need["venv_snapshot_bytes"],
               need["staging_bytes"], need["index_bytes"], need["records_bytes"], free,
               os.path.join(home, ".backups")))
