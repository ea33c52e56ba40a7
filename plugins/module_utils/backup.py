# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of an installation: create, verify, restore exactly (no residue), prune.

Layout of `<backup_root>/<YYYY-MM-DD-HHMMSS[-N]>/` (see docs/ARCHITECTURE.md, "Backups"):
`files/<rel>` and `project/<rel>` copies hashed while copied, `requirements-snapshot.txt`,
`venv-snapshot/` (hard links of every venv file, symlinks recreated) described by
`VENV_MANIFEST.json`, and `MANIFEST.json`, written last: a backup without it is incomplete.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import time
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.child import tied_to_module
from ansible_collections.praxis.upgrade.plugins.module_utils.faults import fault_point
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError,
    atomic_write_bytes,
    atomic_write_json,
    check_relpath,
    copy_file_atomic,
    copy_file_hashed,
    fsync_dir,
    read_json,
    remove_path,
    sha256_file,
    sync_filesystem,
)
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import (
    check_link_inside,
    ignored,
    BASE_MANIFEST,
    load_manifest,
    narrow_trees,
    owned_workflows,
    walk_files,
)

MANIFEST = "MANIFEST.json"
VENV_MANIFEST = "VENV_MANIFEST.json"
REQUIREMENTS = "requirements-snapshot.txt"
FILES = "files"
PROJECT = "project"
# What a backup copies by default (relative to .praxis-os): the framework trees the upgrade rewrites, then the
# records. Preflight's disk estimate and tree checks read the same lists (target_checks).
FRAMEWORK_TREES = ("mcp_server", "scripts", "standards/universal", "workflows", "usage")
DEFAULT_PATHS = FRAMEWORK_TREES + ("config.json", "VERSION.txt", "UPDATE_LOG.txt", "INSTALLATION_SUMMARY.md",
                                   BASE_MANIFEST)
# Project files an upgrade may write (the .gitignore append; installer-owned IDE config and the
# `.upstream` copies a conflict leaves beside it): backed up, restored, removed on rollback when absent before.
PROJECT_FILES = (".gitignore", ".cursorrules", ".cursorrules.upstream", ".cursor/mcp.json", ".cursor/mcp.json.upstream")
VENV_SNAPSHOT = "venv-snapshot"
METADATA = (MANIFEST, VENV_MANIFEST, REQUIREMENTS)
KINDS = ("dir", "file", "link", "absent")
NAME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}-\d{6})(?:-(\d+))?$")
LIST_LIMIT = 50
PIP_TIMEOUT = 300.0
# Hard links are impossible across file systems (EXDEV) or where the file system refuses them.
NO_LINK_ERRNOS = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)

VenvManifest = Dict[str, object]


class BackupError(Exception):
    """A backup cannot be created, trusted or restored; the message says what to do next."""


# --------------------------------------------------------------------------- helpers


def _key(prefix: str, rel: str) -> str:
    return prefix + "/" + rel if rel else prefix


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _utc(now: Optional[datetime]) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def _truncate(items: Sequence[str]) -> List[str]:
    return list(items[:LIST_LIMIT])


def _is_real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _is_real_file(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


def _checked_paths(paths: Iterable[str], what: str) -> List[str]:
    """Safe, unique, non-nested relative paths (a nested one would be backed up and restored twice)."""
    checked = []
    for rel in paths:
        try:
            checked.append(check_relpath(rel))
        except UnsafePathError as exc:
            raise BackupError("%s: %s; fix the %s option" % (what, exc, what)) from exc
    checked = sorted(set(checked))
    for index, rel in enumerate(checked[1:], 1):
        if rel.startswith(checked[index - 1] + "/"):
            raise BackupError(
                "%s: %r lies inside %r; list each path once (drop %r)" % (what, rel, checked[index - 1], rel)
            )
    return checked


def _scan_tree(root: str) -> Tuple[List[Tuple[str, str]], List[str], Dict[str, str]]:
    """Regular files as (rel, abs), dirs, and in-tree symlinks {rel: target} (recorded as links, never
    followed: a user's link stays a link after backup and restore), in one walk. IGNORE'd names are
    skipped; a symlink pointing outside `root` is refused (manifest.walk_files' rule)."""
    real_root = os.path.realpath(root)
    files: List[Tuple[str, str]] = []
    links: Dict[str, str] = {}
    dirs = [""]
    for current, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(current, root).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        entries = [(name, True) for name in sorted(dirnames) if not ignored(name)]
        entries += [(name, False) for name in sorted(filenames)]
        dirnames[:] = []  # walked into: the real dirs kept below
        for name, is_dir in entries:
            path = os.path.join(current, name)
            if os.path.islink(path):
                check_link_inside(path, root, real_root)
                if not ignored(name):
                    links[prefix + name] = os.readlink(path)
            elif ignored(name):
                continue
            elif is_dir:
                dirnames.append(name)
                dirs.append(prefix + name)
            elif os.path.isfile(path):
                files.append((prefix + name, path))
    return files, dirs, links


# --------------------------------------------------------------------------- create


def _freeze_hint(venv_path: str) -> str:
    return ("check the venv works (%s -m pip --version), or back up without it (venv: false)"
            % os.path.join(venv_path, "bin", "python"))


def start_pip_freeze(venv_path: str) -> "subprocess.Popen[bytes]":
    """Start `<venv>/bin/python -m pip freeze` (no network); `finish_pip_freeze` collects it. It only
    reads the venv, so it runs beside the backup's copies and snapshot (it takes ~0.5 s at real size), at nice
    +10: it only has to be done by the end, the snapshot beside it should keep the CPU."""
    python = os.path.join(venv_path, "bin", "python")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    for name in ("PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    try:
        return subprocess.Popen([python, "-m", "pip", "freeze"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, preexec_fn=tied_to_module(nice=10))
    except OSError as exc:
        raise BackupError("cannot run %s (%s); %s" % (python, exc.strerror or exc, _freeze_hint(venv_path))) from exc


def finish_pip_freeze(proc: "subprocess.Popen[bytes]", venv_path: str, timeout: float, elapsed: float = 0.0) -> bytes:
    """The output of a pip freeze started `elapsed` seconds ago, `timeout` seconds in all; BackupError with
    the next step on failure (the process is killed and reaped on a timeout)."""
    try:
        out, err = proc.communicate(timeout=max(0.01, timeout - elapsed))
    except subprocess.TimeoutExpired as exc:
        stop_pip_freeze(proc)
        raise BackupError("pip freeze of %s did not finish within %ss; %s"
                          % (venv_path, timeout, _freeze_hint(venv_path))) from exc
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-500:]
        raise BackupError("pip freeze of %s failed (exit %d: %s); %s"
                          % (venv_path, proc.returncode, tail, _freeze_hint(venv_path)))
    return out


def stop_pip_freeze(proc: "subprocess.Popen[bytes]") -> None:
    """Kill (our own child, by its pid) and reap a pip freeze that is no longer wanted."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _make_unique_dir(backup_root: str, base: str) -> str:
    """mkdir `base`, `base-2`, `base-3`, ... : the first that did not exist is ours alone."""
    counter = 1
    while True:
        name = base if counter == 1 else "%s-%d" % (base, counter)
        path = os.path.join(backup_root, name)
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            counter += 1


def _link_ok(key: str, target: str) -> bool:
    """A recorded symlink must be relative and land inside the backed-up tree (files/ or project/)."""
    top = key.split("/")[0]
    landing = os.path.normpath(os.path.join(os.path.dirname(key), target))
    return not os.path.isabs(target) and landing.startswith(top + "/")


def _record_link(src: str, target: str, backup_dir: str, key: str, doc: dict) -> None:
    if not _link_ok(key, target):
        raise BackupError(
            "%s is a symlink pointing outside the installation (to %s); replace it with a regular file or remove "
            "it, then re-run" % (src, target)
        )
    os.symlink(target, os.path.join(backup_dir, key))
    doc["links"][key] = target


def _copy_path(src: str, backup_dir: str, key: str, doc: dict) -> Tuple[str, int, int]:
    """Copy one backed-up path into the backup; return (kind, file count, bytes)."""
    count = size = 0
    if os.path.islink(src):
        os.makedirs(os.path.dirname(os.path.join(backup_dir, key)), exist_ok=True)
        _record_link(src, os.readlink(src), backup_dir, key, doc)
        return "link", 0, 0
    if os.path.isdir(src):
        files, dirs, links = _scan_tree(src)
        for rel in dirs:
            dkey = _key(key, rel)
            doc["dirs"].append(dkey)
            doc["modes"][dkey] = _mode(os.path.join(src, rel))
            os.makedirs(os.path.join(backup_dir, dkey), exist_ok=True)
        for rel, path in files:
            fkey = _key(key, rel)
            count, size = count + 1, size + _copy_one(path, backup_dir, fkey, doc)
        for rel, target in sorted(links.items()):  # recorded as links, never followed
            _record_link(os.path.join(src, rel), target, backup_dir, _key(key, rel), doc)
        return "dir", count, size
    if os.path.isfile(src):
        return "file", 1, _copy_one(src, backup_dir, key, doc)
    if os.path.lexists(src):
        raise BackupError(
            "%s is neither a file nor a directory (a broken symlink or special file); "
            "fix or remove it, then re-run the backup" % src
        )
    return "absent", 0, 0


def _copy_one(src: str, backup_dir: str, key: str, doc: dict) -> int:
    mode = _mode(src)
    dst = os.path.join(backup_dir, key)
    doc["files"][key] = copy_file_hashed(src, dst, mode)  # the backup is published by its manifest
    doc["modes"][key] = mode
    return os.path.getsize(dst)


def _link_or_copy(src: str, dst: str, use_links: bool) -> bool:
    """Hard-link `src` to `dst` (or copy it keeping mtime and mode); return whether links still work."""
    if use_links:
        try:
            os.link(src, dst)
            return True
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
    shutil.copy2(src, dst)
    return False


def _venv_state(root: str) -> VenvManifest:
    """Stat-only description of a venv tree: {"files": {rel: [size, mtime_ns, mode]}, "links", "dirs"}."""
    return _walk_venv(root)[0]


def _walk_venv(root: str, mirror: Optional[str] = None) -> Tuple[VenvManifest, bool]:
    """(`_venv_state` of `root`, linked): one os.scandir walk (entry types come from the directory itself,
    so only regular files cost a stat call). With `mirror` (an existing empty dir), the same walk builds a
    hard-link copy there like `cp -al`: files linked (copied where links are refused), symlinks recreated,
    subdirectories made; directory modes are left to the caller (a read-only dir would refuse the links)."""
    files: Dict[str, list] = {}
    links: Dict[str, str] = {}
    dirs: List[str] = []
    use_links = True
    stack = [("", root)]
    while stack:
        rel_dir, path = stack.pop()
        with os.scandir(path) as entries:
            for entry in entries:
                rel = rel_dir + "/" + entry.name if rel_dir else entry.name
                out = os.path.join(mirror, rel) if mirror else None
                if entry.is_symlink():
                    links[rel] = os.readlink(entry.path)
                    if out:
                        os.symlink(links[rel], out)
                elif entry.is_dir(follow_symlinks=False):
                    dirs.append(rel)
                    if out:
                        os.mkdir(out)
                    stack.append((rel, entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files[rel] = [st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)]
                    if out:
                        use_links = _link_or_copy(entry.path, out, use_links)
    return {"files": files, "links": links, "dirs": sorted(dirs)}, use_links


def _materialise_venv(source: str, dest: str, layout: VenvManifest) -> bool:
    """Build `dest` from `source` following `layout`: hard links, symlinks, dirs; False if copied."""
    use_links = True
    os.mkdir(dest)
    for rel in layout["dirs"]:  # sorted: parents first
        os.mkdir(os.path.join(dest, rel))
    for rel in sorted(layout["files"]):
        use_links = _link_or_copy(os.path.join(source, rel), os.path.join(dest, rel), use_links)
    for rel, target in sorted(layout["links"].items()):
        os.symlink(target, os.path.join(dest, rel))
    for rel in [""] + list(layout["dirs"]):
        os.chmod(os.path.join(dest, rel), _mode(os.path.join(source, rel)))
    return use_links


def _cp_link_tree(venv_path: str, dest: str) -> Optional[VenvManifest]:
    """GNU `cp -alT` makes the hard-link tree in a process of its own while this one walks the venv for its
    layout: the two run side by side, so the snapshot costs what `cp -al` costs (the Python walk alone is
    ~1.5x that on a real venv). None where that cp is missing (BSD, busybox) or fails (links refused, another
    file system): nothing is left at `dest` and the caller's own walk links or copies."""
    cp = shutil.which("cp")
    if not cp or os.path.lexists(dest) or not _is_real_dir(venv_path):  # cp -a would copy a symlink as one
        return None
    try:
        proc = subprocess.Popen([cp, "-alT", "--", venv_path, dest], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=tied_to_module())
    except OSError:
        return None
    try:
        layout = _venv_state(venv_path)
    finally:
        if proc.wait() != 0 and os.path.lexists(dest):
            remove_path(dest)
    return layout if proc.returncode == 0 else None


def snapshot_venv(venv_path: str, dest: str) -> Tuple[VenvManifest, bool]:
    """Snapshot a venv as hard links (never hashed: a real one is ~41,000 files); return (layout, linked).
    `cp -al` links beside the walk that describes the venv where it can; else the one walk links (or copies
    where links are refused) as it describes. Directory modes are set last."""
    layout = _cp_link_tree(venv_path, dest)
    if layout is not None:
        return layout, True
    os.mkdir(dest)
    layout, linked = _walk_venv(venv_path, dest)
    for rel in [""] + layout["dirs"]:
        os.chmod(os.path.join(dest, rel), _mode(os.path.join(venv_path, rel)))
    return layout, linked


def owned_paths(praxis_home: str, paths: Iterable[str], workflows: Optional[Iterable[str]]) -> List[str]:
    """`paths` with workflows/ narrowed to the entries the upgrade owns there (manifest.WORKFLOWS): the
    `workflows` a source ships in any version plus those the base manifest lists. The whole tree when
    `workflows` is None or the base manifest is unreadable (ownership unknown), and when workflows/ is not
    a directory (recorded absent, so a rollback removes all of it)."""
    home = os.path.abspath(praxis_home)
    base = os.path.join(home, BASE_MANIFEST)
    if workflows is None or not _is_real_dir(os.path.join(home, "workflows")):
        return list(paths)
    try:
        listed = load_manifest(base)["files"] if os.path.lexists(base) else {}
    except ValueError:
        return list(paths)
    try:
        return narrow_trees(paths, set(workflows) | owned_workflows(listed))
    except UnsafePathError as exc:
        raise BackupError("workflows: %s; pass the workflows praxis.upgrade.praxis_source returns" % exc) from exc


def plan(
    praxis_home: str,
    paths: Iterable[str],
    project_dir: Optional[str] = None,
    project_files: Iterable[str] = (),
    venv: Optional[str] = "venv",
) -> dict:
    """What `create` would back up (counts and bytes), without writing anything."""
    home = _existing_home(praxis_home)
    kinds: Dict[str, str] = {}
    count = size = 0
    sources = [(rel, os.path.join(home, rel)) for rel in _checked_paths(paths, "paths")]
    if project_dir:
        sources += [(PROJECT + "/" + rel, os.path.join(project_dir, rel))
                    for rel in _checked_paths(project_files, "project_files")]
    for rel, src in sources:
        if os.path.isdir(src):
            files = list(walk_files(src))
            kinds[rel], count, size = "dir", count + len(files), size + sum(os.path.getsize(p) for _rel, p in files)
        elif os.path.isfile(src):
            kinds[rel], count, size = "file", count + 1, size + os.path.getsize(src)
        else:
            kinds[rel] = "absent"
    venv_files = len(_venv_state(_venv_path(home, venv))["files"]) if venv else 0
    return {"file_count": count, "bytes": size, "venv_files": venv_files, "paths": kinds}


def _existing_home(praxis_home: str) -> str:
    home = os.path.abspath(praxis_home)
    if not os.path.isdir(home):
        raise BackupError("praxis_home %s is not a directory; pass the project's .praxis-os path" % home)
    return home


def _venv_path(home: str, venv: str) -> str:
    path = os.path.join(home, check_relpath(venv))
    if not _is_real_dir(path):
        raise BackupError(
            "venv %s does not exist; re-create it (python3 -m venv %s) or back up without it (venv: false)"
            % (path, path)
        )
    return path


def create(
    praxis_home: str,
    backup_root: str,
    paths: Iterable[str],
    project_dir: Optional[str] = None,
    project_files: Iterable[str] = (),
    venv: Optional[str] = "venv",
    session_id: Optional[str] = None,
    now: Optional[datetime] = None,
    pip_timeout: float = PIP_TIMEOUT,
) -> dict:
    """Create a complete backup; return path, name, file_count, bytes, venv_files, duration_s, ..."""
    started = time.monotonic()
    home = _existing_home(praxis_home)
    backup_root = os.path.abspath(backup_root)
    rels = _checked_paths(paths, "paths")
    for rel in rels:
        if (backup_root + "/").startswith(os.path.join(home, rel) + "/"):
            raise BackupError("paths: %r contains the backup root %s; remove it from paths" % (rel, backup_root))
    project_rels = _checked_paths(project_files, "project_files") if project_dir else []
    stamp = _utc(now)
    venv_path = _venv_path(home, venv) if venv else None
    os.makedirs(backup_root, exist_ok=True)
    freeze = start_pip_freeze(venv_path) if venv_path else None
    try:
        backup_dir = _make_unique_dir(backup_root, stamp.strftime("%Y-%m-%d-%H%M%S"))
    except OSError:
        if freeze is not None:
            stop_pip_freeze(freeze)
        raise
    doc = {
        "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": {}, "paths": {}, "project_paths": {}, "modes": {}, "dirs": [], "links": {},
        "session_id": session_id, "praxis_home": home,
        "project_dir": os.path.abspath(project_dir) if project_dir else None,
        "venv": bool(venv_path), "venv_name": venv if venv_path else None, "venv_linked": None,
    }
    count = size = 0
    layout: VenvManifest = {"files": {}}
    timings = {"venv_snapshot_s": 0.0, "pip_freeze_wait_s": 0.0}
    try:
        sources = [("paths", FILES, rel, os.path.join(home, rel)) for rel in rels]
        sources += [("project_paths", PROJECT, rel, os.path.join(str(project_dir), rel)) for rel in project_rels]
        for table, prefix, rel, src in sources:
            doc[table][rel], n_files, n_bytes = _copy_path(src, backup_dir, prefix + "/" + rel, doc)
            count, size = count + n_files, size + n_bytes
        if venv_path and freeze is not None:
            begun = time.monotonic()
            layout, doc["venv_linked"] = snapshot_venv(venv_path, os.path.join(backup_dir, VENV_SNAPSHOT))
            timings["venv_snapshot_s"] = round(time.monotonic() - begun, 3)
            atomic_write_json(os.path.join(backup_dir, VENV_MANIFEST), layout, compact=True)
            begun = time.monotonic()
            requirements = finish_pip_freeze(freeze, venv_path, pip_timeout, begun - started)
            timings["pip_freeze_wait_s"] = round(time.monotonic() - begun, 3)
            atomic_write_bytes(os.path.join(backup_dir, REQUIREMENTS), requirements)
        doc["residue"] = record_residue(home, rels, backup_dir, doc)  # bytecode: in the manifest, not the count
        doc["dirs"].sort()
        sync_filesystem(backup_dir)  # every copy durable, once, before the manifest publishes them
        atomic_write_json(os.path.join(backup_dir, MANIFEST), doc)  # last: now the backup is complete
        fsync_dir(backup_root)
    except Exception as exc:
        if freeze is not None:
            stop_pip_freeze(freeze)
        remove_path(backup_dir)
        if isinstance(exc, OSError):
            raise BackupError(
                "creating backup %s failed: %s; check free space (df -h %s) and permissions, then re-run"
                % (backup_dir, exc, backup_root)
            ) from exc
        raise
    result = {
        "path": backup_dir,
        "name": os.path.basename(backup_dir),
        "file_count": count,
        "bytes": size,
        "venv_files": len(layout["files"]),
        "venv_linked": doc["venv_linked"],
        "paths": dict(doc["paths"]),
        "project_paths": dict(doc["project_paths"]),
        "duration_s": round(time.monotonic() - started, 3),
        "timings": timings,
        "warnings": [],
    }
    if doc["venv_linked"] is False:
        result["warnings"].append(
            "venv snapshot of %s was copied, not hard-linked (the backup root is on another file system "
            "or refuses hard links); it uses as much disk as the venv" % venv_path
        )
    return result


# --------------------------------------------------------------------------- verify


def _corrupt(backup_dir: str, detail: str) -> BackupError:
    return BackupError(
        "backup %s: %s; the manifest is corrupt or tampered with — restore from another backup: "
        "ls %s, then -e praxis_backup_name=<name>" % (backup_dir, detail, os.path.dirname(backup_dir))
    )


def load(backup_dir: str) -> dict:
    """MANIFEST.json of a backup, with every path checked (no `..`, no absolute, known prefixes)."""
    try:
        doc = load_manifest(os.path.join(backup_dir, MANIFEST))
    except ValueError as exc:
        raise BackupError(
            "backup %s cannot be used: %s; restore from another backup: ls %s, then -e praxis_backup_name=<name>"
            % (backup_dir, exc, os.path.dirname(backup_dir))
        ) from exc
    for key in doc["files"]:
        if not key.startswith((FILES + "/", PROJECT + "/")):
            raise _corrupt(backup_dir, "entry %r is outside files/ and project/" % key)
    try:
        for table in ("paths", "project_paths"):
            entries = doc.setdefault(table, {})
            if not isinstance(entries, dict) or any(kind not in KINDS for kind in entries.values()):
                raise _corrupt(backup_dir, "%r must map paths to one of %s" % (table, ", ".join(KINDS)))
            for rel in entries:
                check_relpath(rel)
        if not isinstance(doc.setdefault("dirs", []), list) or not isinstance(doc.setdefault("modes", {}), dict):
            raise _corrupt(backup_dir, "'dirs' must be a list and 'modes' a mapping")
        for key in doc["dirs"] + list(doc["modes"]):
            check_relpath(key)
        links = doc.setdefault("links", {})
        if not isinstance(links, dict):
            raise _corrupt(backup_dir, "'links' must be a mapping")
        for key, target in links.items():
            check_relpath(key)
            if key.split("/")[0] not in (FILES, PROJECT) or not isinstance(target, str) or not _link_ok(key, target):
                raise _corrupt(backup_dir, "link %r -> %r does not stay inside the backed-up tree" % (key, target))
        if doc.get("venv"):
            check_relpath(doc.get("venv_name") or "venv")
    except UnsafePathError as exc:
        raise _corrupt(backup_dir, str(exc)) from exc
    if not all(isinstance(mode, int) for mode in doc["modes"].values()):
        raise _corrupt(backup_dir, "'modes' must map paths to integers")
    return doc


def load_venv_manifest(backup_dir: str) -> VenvManifest:
    path = os.path.join(backup_dir, VENV_MANIFEST)
    if not os.path.isfile(path):
        raise _corrupt(backup_dir, "%s is missing although the manifest records a venv" % VENV_MANIFEST)
    try:
        layout = read_json(path, "venv manifest")
    except ValueError as exc:
        raise _corrupt(backup_dir, str(exc)) from exc
    if not isinstance(layout, dict):
        raise _corrupt(backup_dir, "%s is not a JSON object" % VENV_MANIFEST)
    layout.setdefault("files", {})
    layout.setdefault("links", {})
    layout.setdefault("dirs", [])
    try:
        for rel in list(layout["files"]) + list(layout["links"]) + list(layout["dirs"]):
            check_relpath(rel)
    except (UnsafePathError, TypeError) as exc:
        raise _corrupt(backup_dir, "%s: %s" % (VENV_MANIFEST, exc)) from exc
    layout["dirs"] = sorted(layout["dirs"])
    return layout


def venv_diff(expected: VenvManifest, actual: VenvManifest) -> List[str]:
    """Differences between two venv layouts, one `<kind>: <rel>` string each, sorted."""
    problems = []
    for table in ("files", "links"):
        want, have = expected.get(table, {}), actual.get(table, {})
        problems += ["missing: %s" % rel for rel in set(want) - set(have)]
        problems += ["extra: %s" % rel for rel in set(have) - set(want)]
        problems += ["changed: %s" % rel for rel in set(want) & set(have) if list(want[rel]) != list(have[rel])]
    want_dirs, have_dirs = set(expected.get("dirs", [])), set(actual.get("dirs", []))
    problems += ["missing dir: %s" % rel for rel in want_dirs - have_dirs]
    problems += ["extra dir: %s" % rel for rel in have_dirs - want_dirs]
    return sorted(problems, key=lambda item: item.split(": ", 1)[1])


def _extra_files(backup_dir: str, doc: dict) -> List[str]:
    """Entries of the backup that its manifest does not know (metadata and the venv snapshot aside)."""
    extra = []
    for name in sorted(os.listdir(backup_dir)):
        if name in METADATA or (name == VENV_SNAPSHOT and doc.get("venv")):
            continue
        if name not in (FILES, PROJECT) or not _is_real_dir(os.path.join(backup_dir, name)):
            extra.append(name)
            continue
        for current, dirnames, filenames in os.walk(os.path.join(backup_dir, name)):
            rel_dir = os.path.relpath(current, backup_dir).replace(os.sep, "/")
            links = [d for d in dirnames if os.path.islink(os.path.join(current, d))]
            extra += [rel_dir + "/" + e for e in sorted(filenames + links)
                      if rel_dir + "/" + e not in doc["files"] and rel_dir + "/" + e not in doc["links"]]
    return extra


def verify(backup_dir: str) -> dict:
    """Re-hash every file, stat-check the venv snapshot; {ok, missing, changed, extra, venv_ok, venv_problems}."""
    backup_dir = os.path.abspath(backup_dir)
    doc = load(backup_dir)
    missing, changed = [], []
    for key, digest in sorted(doc["files"].items()):
        path = os.path.join(backup_dir, key)
        if not _is_real_file(path):
            missing.append(key)
        elif sha256_file(path) != digest:
            changed.append(key)
    for key, target in sorted(doc["links"].items()):
        path = os.path.join(backup_dir, key)
        if not os.path.islink(path):
            missing.append(key)
        elif os.readlink(path) != target:
            changed.append(key)
    venv_problems: List[str] = []
    if doc.get("venv"):
        venv_problems = venv_diff(
            load_venv_manifest(backup_dir), _venv_state(os.path.join(backup_dir, VENV_SNAPSHOT))
        )
        if not os.path.isfile(os.path.join(backup_dir, REQUIREMENTS)):
            venv_problems.insert(0, "missing: %s" % REQUIREMENTS)
    extra = _extra_files(backup_dir, doc)
    return {
        "ok": not (missing or changed or extra or venv_problems),
        "path": backup_dir,
        "name": os.path.basename(backup_dir),
        "file_count": len(doc["files"]),
        "missing": missing,
        "changed": changed,
        "extra": extra,
        "venv_ok": not venv_problems,
        "venv_problems": _truncate(venv_problems),
        "venv_problem_count": len(venv_problems),
    }


def verification_message(report: dict) -> str:
    counts = []
    examples = []
    for key in ("changed", "missing", "extra"):
        if report[key]:
            counts.append("%d %s" % (len(report[key]), key))
            examples.append(report[key][0])
    if report["venv_problem_count"]:
        counts.append("%d venv snapshot problems" % report["venv_problem_count"])
        examples.append("venv-snapshot " + report["venv_problems"][0])
    return "backup %s failed verification: %s, e.g. %s; restore from another backup: ls %s, then -e praxis_backup_name=<name>" % (
        report["path"], ", ".join(counts), "; ".join(examples), os.path.dirname(report["path"])
    )


# --------------------------------------------------------------------------- restore


class _Changes:
    """Applies (or, in check mode, only records) the changes a restore makes."""

    def __init__(self, check: bool) -> None:
        self.check = check
        self.restored: List[str] = []
        self.removed: List[str] = []
        self.unchanged = 0
        self.removed_count = 0
        self._gone: Set[str] = set()

    def gone(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self._gone)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path) and not self.gone(path)

    def remove(self, key: str, path: str) -> None:
        if _is_real_dir(path):
            self.removed_count += max(1, sum(len(f) for _cur, _dirs, f in os.walk(path)))
            key += "/"
        else:
            self.removed_count += 1
        self.removed.append(key)
        if self.check:
            self._gone.add(path)
        else:
            remove_path(path)

    def copy(self, key: str, src: str, dst: str, mode: int) -> None:
        self.restored.append(key)
        if not self.check:
            copy_file_atomic(src, dst, mode)

    def chmod(self, key: str, path: str, mode: int) -> None:
        self.restored.append(key)
        if not self.check:
            os.chmod(path, mode)

    def link(self, key: str, path: str, target: str) -> None:
        self.restored.append(key)
        if not self.check:
            os.symlink(target, path)

    def mkdir(self, key: str, path: str, mode: int) -> None:
        self.restored.append(key + "/")
        if not self.check:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)


def _restore_file(backup_dir: str, doc: dict, key: str, live: str, changes: _Changes) -> None:
    src = os.path.join(backup_dir, key)
    mode = doc["modes"].get(key, _mode(src))
    if changes.exists(live) and _is_real_file(live):
        if sha256_file(live) != doc["files"][key]:
            changes.copy(key, src, live, mode)
        elif _mode(live) != mode:
            changes.chmod(key, live, mode)
        else:
            changes.unchanged += 1
        return
    if changes.exists(live):
        changes.remove(key, live)  # a dir or symlink where a file belongs
    changes.copy(key, src, live, mode)


def _protected(name: str, bytecode_recorded: bool) -> bool:
    """IGNORE'd names a restore leaves alone; bytecode only when the backup did not record it."""
    if bytecode_recorded and (name == BYTECODE_DIR or name.endswith(BYTECODE_SUFFIXES)):
        return False
    return ignored(name)


def _same_link(path: str, target: Optional[str]) -> bool:
    return target is not None and os.path.islink(path) and os.readlink(path) == target


def _remove_residue(live: str, key: str, files: Set[str], dirs: Set[str], changes: _Changes,
                    links: Optional[Dict[str, str]] = None, bytecode_recorded: bool = False) -> None:
    """Remove what lies under `live` but not in the backup; IGNORE'd caches in kept dirs stay (bytecode
    too, unless the backup recorded the bytecode that existed: then new bytecode is residue), and so do
    symlinks the backup recorded as such (same target)."""
    links = links or {}
    for current, dirnames, filenames in os.walk(live):
        rel_dir = os.path.relpath(current, live).replace(os.sep, "/")
        ckey = key if rel_dir == "." else key + "/" + rel_dir
        for name in sorted(dirnames):
            path, entry = os.path.join(current, name), ckey + "/" + name
            if entry in dirs and not os.path.islink(path):
                continue  # walk into it
            dirnames.remove(name)
            if _same_link(path, links.get(entry)):
                continue
            if entry in files or entry in dirs or entry in links or not _protected(name, bytecode_recorded):
                changes.remove(entry, path)  # unknown dir, or a dir/symlink where something else belongs
        for name in sorted(filenames):
            path, entry = os.path.join(current, name), ckey + "/" + name
            if _same_link(path, links.get(entry)):
                continue
            if (entry not in files or entry in links) and not _protected(name, bytecode_recorded):
                changes.remove(entry, path)


def _restore_link(key: str, live: str, target: str, changes: _Changes) -> None:
    if changes.exists(live) and _same_link(live, target):
        changes.unchanged += 1
        return
    if changes.exists(live):
        changes.remove(key, live)
    changes.link(key, live, target)


def _restore_path(backup_dir: str, doc: dict, live: str, key: str, kind: str, changes: _Changes) -> None:
    if kind == "absent":
        if changes.exists(live):
            changes.remove(key, live)
        return
    if kind == "file":
        _restore_file(backup_dir, doc, key, live, changes)
        return
    if kind == "link":
        _restore_link(key, live, doc["links"][key], changes)
        return
    files = {k for k in doc["files"] if k.startswith(key + "/")}
    dirs = {d for d in doc["dirs"] if d == key or d.startswith(key + "/")}
    links = {k: t for k, t in doc["links"].items() if k.startswith(key + "/")}
    if changes.exists(live) and not _is_real_dir(live):
        changes.remove(key, live)
    if changes.exists(live):
        _remove_residue(live, key, files, dirs, changes, links, bool((doc.get("residue") or {}).get("bytecode")))
    for dkey in sorted(dirs):
        path = os.path.join(live, dkey[len(key) + 1:]) if dkey != key else live
        mode = doc["modes"].get(dkey, 0o755)
        if not (changes.exists(path) and _is_real_dir(path)):
            changes.mkdir(dkey, path, mode)
        elif _mode(path) != mode:
            changes.chmod(dkey + "/", path, mode)
    for fkey in sorted(files):
        _restore_file(backup_dir, doc, fkey, os.path.join(live, fkey[len(key) + 1:]), changes)
    for lkey, target in sorted(links.items()):
        _restore_link(lkey, os.path.join(live, lkey[len(key) + 1:]), target, changes)


def _tree_entries(root: str) -> Dict[str, Tuple[str, object]]:
    """{rel: ("file", inode) | ("link", target) | ("dir", None)} of a tree: one scandir walk whose entry
    types and inode numbers come from the directories themselves (no stat call per file)."""
    entries: Dict[str, Tuple[str, object]] = {}
    stack = [("", root)]
    while stack:
        rel_dir, path = stack.pop()
        with os.scandir(path) as found:
            for entry in found:
                rel = rel_dir + "/" + entry.name if rel_dir else entry.name
                if entry.is_symlink():
                    entries[rel] = ("link", os.readlink(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    entries[rel] = ("dir", None)
                    stack.append((rel, entry.path))
                else:
                    entries[rel] = ("file", entry.inode())
    return entries


def _entry_diff(want: Dict[str, Tuple[str, object]], have: Dict[str, Tuple[str, object]]) -> List[str]:
    """`venv_diff`'s strings for two `_tree_entries`: a file is unchanged only when it is the snapshot's own
    inode (a hard link to it), which is exact where a stat comparison is not."""
    problems = []
    for rel in set(want) | set(have):
        wanted, got = want.get(rel), have.get(rel)
        if wanted == got:
            continue
        suffix = " dir" if (wanted or got)[0] == "dir" and (wanted is None or got is None) else ""
        if got is None:
            problems.append("missing%s: %s" % (suffix, rel))
        elif wanted is None:
            problems.append("extra%s: %s" % (suffix, rel))
        else:
            problems.append("changed: %s" % rel)
    return sorted(problems, key=lambda item: item.split(": ", 1)[1])


def _sync_venv(snapshot: str, live: str, want: Dict[str, Tuple[str, object]],
               have: Dict[str, Tuple[str, object]]) -> None:
    """Make the live venv the snapshot again in place, touching only what differs (a pip upgrade changes a
    few packages of ~41,000 files): entries the snapshot lacks or of another kind are removed, every other
    file or symlink that is not the snapshot's own is replaced by a hard link to it (link to a temp name
    beside it, then rename: never absent), missing dirs made, dir modes copied. `want`/`have` are the
    `_tree_entries` of both. Interrupted, the next run converges: a temp name left behind is just one more
    entry the snapshot lacks."""
    removed: List[str] = []
    touched = {live}
    for rel in sorted(have):  # parents first: a removed dir takes its contents with it
        if any(rel.startswith(prefix) for prefix in removed):
            continue
        kind = have[rel][0]
        if rel not in want or want[rel][0] != kind:
            remove_path(os.path.join(live, rel))
            touched.add(os.path.dirname(os.path.join(live, rel)))
            if kind == "dir":
                removed.append(rel + "/")
    for rel in sorted(want):
        kind, value = want[rel]
        target = os.path.join(live, rel)
        if kind == "dir":
            if not os.path.isdir(target):
                os.mkdir(target)
                touched.add(os.path.dirname(target))
            continue
        if have.get(rel) == want[rel]:
            continue
        temp = "%s.praxis-restore-%d" % (target, os.getpid())
        if os.path.lexists(temp):
            os.unlink(temp)
        if kind == "link":
            os.symlink(str(value), temp)
        else:
            os.link(os.path.join(snapshot, rel), temp)
        os.rename(temp, target)
        touched.add(os.path.dirname(target))
    for rel in [""] + sorted(rel for rel, entry in want.items() if entry[0] == "dir"):
        mode = _mode(os.path.join(snapshot, rel))
        if _mode(os.path.join(live, rel)) != mode:
            os.chmod(os.path.join(live, rel), mode)
    for path in sorted(touched):
        fsync_dir(path)


def _rebuild_venv(snapshot: str, home: str, name: str, layout: VenvManifest) -> None:
    """Build the venv from the snapshot beside the live one, rename it in, remove the old one."""
    live = os.path.join(home, name)
    new = os.path.join(home, "%s.restore-%d" % (name, os.getpid()))
    old = os.path.join(home, "%s.rollback-%d" % (name, os.getpid()))
    _materialise_venv(snapshot, new, layout)
    if os.path.lexists(live):
        os.rename(live, old)
    os.rename(new, live)
    fsync_dir(home)
    remove_path(old)


def _restore_venv(backup_dir: str, doc: dict, home: str, check: bool) -> List[str]:
    """Make the live venv the snapshot again; return the differences found before. A hard-linked snapshot on
    the venv's own file system is compared by inode and synced in place (`_sync_venv`: only what pip changed
    is touched); a copied one, or a missing live venv, is compared by stat and rebuilt (`_rebuild_venv`).
    Either way the result is checked once more; BackupError when the venv still differs."""
    name = doc.get("venv_name") or "venv"
    live = os.path.join(home, name)
    snapshot = os.path.join(backup_dir, VENV_SNAPSHOT)
    in_place = (doc.get("venv_linked") is True and _is_real_dir(live)
                and os.stat(live).st_dev == os.stat(snapshot).st_dev)
    want: Dict[str, Tuple[str, object]] = {}
    have: Dict[str, Tuple[str, object]] = {}
    layout: VenvManifest = {}
    if in_place:
        want, have = _tree_entries(snapshot), _tree_entries(live)
        differences = _entry_diff(want, have)
    else:
        layout = load_venv_manifest(backup_dir)
        differences = venv_diff(layout, _venv_state(live)) if _is_real_dir(live) else ["missing: %s" % name]
    if check or not differences:
        return differences
    leftovers = re.compile(r"^%s\.(restore|rollback)-\d+$" % re.escape(name))
    for entry in sorted(os.listdir(home)):  # from an interrupted earlier rebuild
        if leftovers.match(entry):
            remove_path(os.path.join(home, entry))
    if in_place:
        _sync_venv(snapshot, live, want, have)
        left = _entry_diff(want, _tree_entries(live))
    else:
        _rebuild_venv(snapshot, home, name, layout)
        left = venv_diff(layout, _venv_state(live))
    if left:
        raise BackupError(
            "venv %s still differs from the snapshot after restore (%s); inspect it, then re-run the restore"
            % (live, left[0])
        )
    return differences


def restore(
    backup_dir: str,
    praxis_home: str,
    project_dir: Optional[str] = None,
    restore_venv: bool = True,
    check: bool = False,
) -> dict:
    """Make every backed-up path exactly as in the backup (no residue); with `check`, only report."""
    started = time.monotonic()
    backup_dir = os.path.abspath(backup_dir)
    home = _existing_home(praxis_home)
    doc = check_restorable(backup_dir, home)
    changes = _Changes(check)
    for index, (rel, kind) in enumerate(sorted(doc["paths"].items())):
        _restore_path(backup_dir, doc, os.path.join(home, rel), FILES + "/" + rel, kind, changes)
        if index == 1 and not check:
            fault_point("rollback.restore_midway")  # test seam: a crash with half the paths restored
    if doc["project_paths"]:
        project = project_dir or doc.get("project_dir")
        if not project or not os.path.isdir(project):
            raise BackupError(
                "backup %s holds project files but the project directory %r does not exist; pass project_dir"
                % (backup_dir, project)
            )
        for rel, kind in sorted(doc["project_paths"].items()):
            _restore_path(backup_dir, doc, os.path.join(project, rel), PROJECT + "/" + rel, kind, changes)
    restore_residue(doc, home, changes, backup_dir)
    venv_changes: List[str] = []
    if restore_venv and doc.get("venv"):
        venv_changes = _restore_venv(backup_dir, doc, home, check)
    return {
        "path": backup_dir,
        "name": os.path.basename(backup_dir),
        "restored": len(changes.restored),
        "removed": changes.removed_count,
        "unchanged": changes.unchanged,
        "venv_restored": bool(venv_changes),
        "restored_paths": _truncate(changes.restored),
        "removed_paths": _truncate(changes.removed),
        "venv_changes": _truncate(venv_changes),
        "venv_change_count": len(venv_changes),
        "duration_s": round(time.monotonic() - started, 3),
    }


# --------------------------------------------------------------------------- runtime residue
# The manifest ignores bytecode (IGNORE) and the server's search index lives outside the backed-up
# paths, yet both change once the new version runs. A backup records (`residue` in MANIFEST.json) and
# copies the bytecode of its dirs, the mtimes of their .py files (bytecode is only valid for the
# source mtime it was compiled from), the whole index directory (`index_tree`: a real one is a few MB;
# its builder rewrites `metadata.json` in place and may rewrite a table of the same name) and whether
# the rebuild flag existed; a restore puts those back and removes the bytecode, index tables and flag
# the new version added. Backups made before `index_tree` only know the index's entry names.

BYTECODE_DIR = "__pycache__"
BYTECODE_SUFFIXES = (".pyc", ".pyo")
# Upstream's default index location (config rag.index_path); one directory per table inside.
INDEX_DIR = ".cache/vector_index"
INDEX_KEY = FILES + "/" + INDEX_DIR
# Upstream's own trigger: a server that finds this flag at start rebuilds its search index (before it
# listens) and removes the flag; on failure it logs an ERROR and keeps the flag (serverops requests it).
REBUILD_FLAG = "standards/.rebuild_index"


def record_residue(home: str, rels: Iterable[str], backup_dir: str, doc: dict) -> dict:
    """Copy the bytecode under the backed-up dirs into the backup (as files of the manifest) and
    return the residue record: ``bytecode`` (True: recorded), ``mtimes`` {key: ns} of .py and bytecode files,
    ``index`` (entries of the index dir, None when absent) and ``rebuild_flag``."""
    mtimes: Dict[str, int] = {}
    for rel in rels:
        if doc["paths"].get(rel) != "dir":
            continue
        top = os.path.join(home, rel)
        for current, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if (d == BYTECODE_DIR or not ignored(d))
                                 and not os.path.islink(os.path.join(current, d)))
            rel_dir = os.path.relpath(current, top).replace(os.sep, "/")
            ckey = _key(FILES + "/" + rel, "" if rel_dir == "." else rel_dir)
            if os.path.basename(current) == BYTECODE_DIR:
                dirnames[:] = []
                if ckey not in doc["dirs"]:
                    doc["dirs"].append(ckey)
                    doc["modes"][ckey] = _mode(current)
                os.makedirs(os.path.join(backup_dir, ckey), exist_ok=True)
                for name in sorted(filenames):
                    path = os.path.join(current, name)
                    if name.endswith(BYTECODE_SUFFIXES) and _is_real_file(path):
                        _copy_one(path, backup_dir, ckey + "/" + name, doc)
                        mtimes[ckey + "/" + name] = os.stat(path).st_mtime_ns
                continue
            for name in filenames:
                path = os.path.join(current, name)
                if name.endswith(".py") and _is_real_file(path):
                    mtimes[ckey + "/" + name] = os.stat(path).st_mtime_ns
    index = os.path.join(home, INDEX_DIR)
    names = sorted(os.listdir(index)) if _is_real_dir(index) else None
    index_tree = _copy_path(index, backup_dir, INDEX_KEY, doc)[0] if names is not None else "absent"
    return {"bytecode": True, "mtimes": mtimes, "index": names, "index_tree": index_tree,
            "rebuild_flag": os.path.lexists(os.path.join(home, REBUILD_FLAG))}


def restore_residue(doc: dict, home: str, changes: _Changes, backup_dir: str = "") -> None:
    """Source mtimes back (so the restored bytecode stays valid), the index directory exactly as backed
    up (older backups: only the tables that were not there removed), the rebuild flag removed when it
    was not there at backup time. A backup without a record leaves both alone."""
    residue = doc.get("residue")
    if not isinstance(residue, dict):
        return
    copied = set(changes.restored)
    for key, ns in sorted((residue.get("mtimes") or {}).items()):
        if not key.startswith(FILES + "/") or not isinstance(ns, int) or not doc["files"].get(key):
            continue
        live = os.path.join(home, check_relpath(key[len(FILES) + 1:]))
        if key in copied or (_is_real_file(live) and os.stat(live).st_mtime_ns != ns):
            changes.restored.append(key + " (mtime)")
            if not changes.check:
                os.utime(live, ns=(ns, ns))
    index = os.path.join(home, INDEX_DIR)
    known = residue.get("index")
    if residue.get("index_tree") in ("dir", "absent") and backup_dir:
        _restore_path(backup_dir, doc, index, INDEX_KEY, residue["index_tree"], changes)
    elif known is None:
        if changes.exists(index):
            changes.remove(INDEX_DIR, index)
    elif _is_real_dir(index):
        for name in sorted(os.listdir(index)):
            if name not in known:
                changes.remove(INDEX_DIR + "/" + name, os.path.join(index, name))
    flag = os.path.join(home, REBUILD_FLAG)
    if not residue.get("rebuild_flag") and changes.exists(flag):
        changes.remove(REBUILD_FLAG, flag)


# --------------------------------------------------------------------------- list / prune


def _sort_key(name: str) -> Tuple[str, int]:
    match = NAME_RE.match(name)
    if match is None:
        raise BackupError("%r is not a backup name (YYYY-MM-DD-HHMMSS[-N])" % name)
    return match.group(1), int(match.group(2) or 1)


def list_backups(backup_root: str) -> List[dict]:
    """Backups in `backup_root`, oldest first: name, path, complete (MANIFEST present), timestamp, session_id."""
    if not os.path.isdir(backup_root):
        return []
    names = [n for n in os.listdir(backup_root) if NAME_RE.match(n) and _is_real_dir(os.path.join(backup_root, n))]
    backups = []
    for name in sorted(names, key=_sort_key):
        path = os.path.join(os.path.abspath(backup_root), name)
        manifest = os.path.join(path, MANIFEST)
        entry = {"name": name, "path": path, "complete": os.path.isfile(manifest), "timestamp": None, "session_id": None}
        if entry["complete"]:
            try:
                doc = read_json(manifest, "manifest")
                entry["timestamp"] = doc.get("timestamp")
                entry["session_id"] = doc.get("session_id")
            except (ValueError, AttributeError, OSError):
                pass  # verify reports it; listing still shows the backup
        backups.append(entry)
    return backups


def latest(backup_root: str) -> Optional[dict]:
    complete = [b for b in list_backups(backup_root) if b["complete"]]
    return complete[-1] if complete else None


def check_name(name: str) -> str:
    """A backup *name* (`YYYY-MM-DD-HHMMSS[-N]`) inside this installation's `.backups/`, never a path."""
    if not isinstance(name, str) or "/" in name or "\\" in name or ".." in name or not NAME_RE.match(name):
        raise BackupError(
            "praxis_backup_name %r is not a backup name: it must be a name like 2026-11-24-101500 inside this "
            "installation's .backups/ directory, never a path. Next: list them with playbooks/status.yml "
            "(or ls <project>/.praxis-os/.backups) and pass one name" % (name,)
        )
    return name


def check_identity(backup_dir: str, praxis_home: str) -> dict:
    """The backup's manifest, when it was made of the installation `praxis_home`; BackupError otherwise."""
    doc = load(backup_dir)
    recorded = doc.get("praxis_home")
    home = os.path.realpath(praxis_home)
    if not isinstance(recorded, str) or os.path.realpath(recorded) != home:
        raise BackupError(
            "backup %s belongs to the installation %s, not to %s; it is refused and nothing was changed. "
            "Next: restore one of this installation's own backups (ls %s)"
            % (backup_dir, recorded, home, os.path.join(home, ".backups"))
        )
    return doc


def check_restorable(backup_dir: str, praxis_home: str) -> dict:
    """The manifest of a backup that may be restored into `praxis_home`: made of this installation
    (`check_identity`) and intact (`verify`: every file re-hashed, the venv snapshot stat-checked);
    BackupError naming the problem otherwise, before anything is changed.

    Deliberately asked twice in a rollback: by `praxis_state state=rolling_back`, so that a bad backup
    is never recorded as the rollback's backup (a recorded one wins on every re-run), and by `restore`
    itself, which never writes from a backup it has not checked, whoever calls it."""
    doc = check_identity(backup_dir, praxis_home)
    report = verify(backup_dir)
    if not report["ok"]:
        raise BackupError(verification_message(report) + "; nothing was changed")
    return doc


def session_backup(backup_root: str, session_id: Optional[str]) -> Optional[dict]:
    """The newest complete backup made by `session_id` (a resumed upgrade), if any."""
    if not session_id:
        return None
    mine = [b for b in list_backups(backup_root) if b["complete"] and b["session_id"] == session_id]
    return mine[-1] if mine else None


def resolve(backup_root: str, backup: Optional[str] = None) -> str:
    """Path of a backup in `backup_root`: by name, by a path directly inside it, or the newest complete one."""
    root = os.path.abspath(backup_root)
    if not backup:
        newest = latest(root)
        if newest is None:
            raise BackupError(
                "no complete backup in %s. Next: create one with praxis.upgrade.praxis_backup state=present" % root
            )
        return newest["path"]
    if "/" in backup:
        path = os.path.abspath(backup)
        if os.path.dirname(os.path.realpath(path)) != os.path.realpath(root):
            raise BackupError(
                "backup %s is not inside this installation's backup directory %s; it is refused. Next: pass the "
                "name of one of its backups (ls %s)" % (backup, root, root)
            )
    else:
        path = os.path.join(root, check_name(backup))
    if not _is_real_dir(path):
        raise BackupError(
            "backup %s does not exist. Next: list the backups: ls %s, then -e praxis_backup_name=<name>" % (path, root)
        )
    return path


def prune(backup_root: str, keep: int, protect: Iterable[str] = (), check: bool = False) -> dict:
    """Keep the newest `keep` complete backups (always the newest, never a protected one).

    Incomplete backups older than the newest complete one are removed too; newer ones may belong to a
    backup being written right now and stay.
    """
    if keep < 1:
        raise BackupError("keep must be at least 1 (the newest backup is never removed); got %d" % keep)
    protected = {os.path.basename(os.path.normpath(p)) for p in protect if p}
    backups = list_backups(backup_root)
    complete = [b["name"] for b in backups if b["complete"]]
    kept_complete = set(complete[-keep:])
    newest = _sort_key(complete[-1]) if complete else None
    removed, kept = [], []
    for entry in backups:
        name = entry["name"]
        if entry["complete"]:
            drop = name not in kept_complete
        else:
            drop = newest is not None and _sort_key(name) < newest
        if drop and name not in protected:
            removed.append(name)
            if not check:
                remove_path(entry["path"])
        else:
            kept.append(name)
    return {"removed": removed, "kept": kept}
