# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A prAxIs OS source checkout: validate it, describe its version, hash it, pack it, unpack it.

`inspect` and `pack` run on the controller (stdlib + the `git` CLI). `extract` runs on the target
(stdlib only, Python >= 3.9): it unpacks the shipped archive safely and verifies it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import threading
from typing import Dict, Iterator, List, Optional, Set, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    UnsafePathError,
    atomic_write_bytes,
    atomic_write_json,
    check_relpath,
    fsync_dir,
    read_json,
    remove_path,
    sha256_file,
    sync_filesystem,
)
from ansible_collections.praxis.upgrade.plugins.module_utils import installs
from ansible_collections.praxis.upgrade.plugins.module_utils.content import IDE_STAGE, PLAN_NAME
from ansible_collections.praxis.upgrade.plugins.module_utils.requirements import requirements_file_key
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import (
    build_manifest,
    compare,
    ignored,
    owned_workflows,
    walk_files,
)

# (path in the source checkout, path inside <project>/.praxis-os) — SPEC 2.2.
INSTALL_MAP = (
    ("mcp_server", "mcp_server"),
    ("scripts", "scripts"),
    ("universal/standards", "standards/universal"),
    ("universal/workflows", "workflows"),
    ("universal/usage", "usage"),
)

SOURCE_DIRS = tuple(src for src, _dst in INSTALL_MAP)
# Installer docs the upgrade reads: the IDE config (.cursor/mcp.json entry, .cursorrules) the new version writes.
INSTALLATION_DIR = "installation"
CURSORRULES_SOURCE = INSTALLATION_DIR + "/.cursorrules"
CLEAN_PATHS = SOURCE_DIRS + (INSTALLATION_DIR,)
SOURCE_JSON = "praxis-source.json"
_GIT_ENV = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


class GitError(RuntimeError):
    """A git command failed where it should not have."""


class GitMissing(GitError):
    """The `git` command is not installed."""


def _git(path: str, *args: str, stdin: Optional[bytes] = None) -> bytes:
    env = dict(os.environ)
    env.update(_GIT_ENV)
    try:
        proc = subprocess.run(["git", "-C", path] + list(args), input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, check=False)
    except FileNotFoundError as exc:
        raise GitMissing("the `git` command is not installed on the controller; install git and re-run") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip()
        raise GitError("`git %s` failed in %s: %s" % (" ".join(args), path, detail))
    return proc.stdout


def installed_rel(source_rel: str) -> Optional[str]:
    """Map a POSIX path of the source checkout to its installed path, or None when not installed."""
    for src, dst in INSTALL_MAP:
        if source_rel.startswith(src + "/"):
            rest = source_rel[len(src) + 1:]
            if any(ignored(part) for part in rest.split("/")):
                return None
            return dst + "/" + rest
    return None


def _check_path(path: Optional[str]) -> str:
    if not path:
        raise ValueError("praxis_source is not set. Next: pass the controller path of a prAxIs OS git "
                         "checkout, e.g. -e praxis_source=/src/praxis-os")
    if not os.path.isabs(path):
        raise ValueError("source path %r is relative; give praxis_source as an absolute path "
                         "(for example \"{{ playbook_dir }}/../praxis-os\" resolved with | realpath)" % path)
    if not os.path.isdir(path):
        raise ValueError("source path %s does not exist or is not a directory; clone prAxIs OS there "
                         "or point praxis_source at an existing checkout" % path)
    return os.path.realpath(path)


def _check_work_tree(path: str) -> None:
    try:
        top = _git(path, "rev-parse", "--show-toplevel").decode("utf-8").strip()
    except GitMissing:
        raise
    except GitError as exc:
        raise ValueError("source %s is not a git work tree (%s); the version is the git commit, so use "
                         "a git clone of prAxIs OS" % (path, exc)) from exc
    if os.path.realpath(top) != path:
        raise ValueError("source %s is inside the git work tree %s but is not its root; set "
                         "praxis_source to %s" % (path, top, top))
    try:
        _git(path, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except GitError as exc:
        raise ValueError("source %s has no commit yet; commit the source and re-run" % path) from exc
    # Clean is judged on what is installed (and what the upgrade reads: installation/ docs); upstream
    # commits runtime files (e.g. .praxis-os/.cache/mcp_server.log) that a running server touches.
    status = _git(path, "status", "--porcelain", "--untracked-files=all", "-z", "--", *CLEAN_PATHS)
    entries = [entry for entry in status.decode("utf-8", "replace").split("\0") if entry.strip()]
    if entries:
        shown = ", ".join(entry[3:] if len(entry) > 3 else entry for entry in entries[:5])
        more = " and %d more" % (len(entries) - 5) if len(entries) > 5 else ""
        raise ValueError("source %s has uncommitted or untracked changes in what is installed (%s%s); commit "
                         "or stash them (git -C %s stash -u) and re-run" % (path, shown, more, path))


def _check_layout(path: str) -> None:
    server = os.path.join(path, "mcp_server")
    needs = [
        ("mcp_server/ (the server package)", os.path.isdir(server)),
        ("mcp_server/__main__.py or mcp_server/__init__.py",
         os.path.isfile(os.path.join(server, "__main__.py")) or os.path.isfile(os.path.join(server, "__init__.py"))),
        ("mcp_server/requirements.txt", os.path.isfile(os.path.join(server, "requirements.txt"))),
        ("universal/standards/", os.path.isdir(os.path.join(path, "universal", "standards"))),
    ]
    missing = [what for what, ok in needs if not ok]
    if missing:
        raise ValueError("source %s is not a prAxIs OS source: missing %s; point praxis_source at a "
                         "checkout of the prAxIs OS repository" % (path, ", ".join(missing)))


def _tracked(path: str) -> Set[str]:
    out = _git(path, "ls-files", "-z", "--", *SOURCE_DIRS)
    return {name for name in out.decode("utf-8", "surrogateescape").split("\0") if name}


def mapped_files(path: str) -> Iterator[Tuple[str, str]]:
    """Yield (installed rel path, absolute source path) of every tracked file in the mapped trees.

    Files git ignores (build output, local secrets) are never part of a version, so only tracked
    files count. A symlink leaving its tree is refused (manifest.walk_files).
    """
    tracked = _tracked(path)
    for src, dst in INSTALL_MAP:
        root = os.path.join(path, *src.split("/"))
        if not os.path.isdir(root):
            continue
        try:
            for rel, absolute in walk_files(root):
                if src + "/" + rel in tracked:
                    yield dst + "/" + rel, absolute
        except UnsafePathError as exc:
            raise ValueError("source %s: %s; the source must be self-contained" % (path, exc)) from exc


def _hash_blobs(path: str, blobs: List[str]) -> Dict[str, str]:
    """sha256 of each blob's content, streamed through one `git cat-file --batch`."""
    if not blobs:
        return {}
    env = dict(os.environ)
    env.update(_GIT_ENV)
    proc = subprocess.Popen(["git", "-C", path, "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def feed() -> None:
        try:
            proc.stdin.write("".join(blob + "\n" for blob in blobs).encode("ascii"))
        finally:
            proc.stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    hashes: Dict[str, str] = {}
    try:
        for blob in blobs:
            header = proc.stdout.readline().decode("ascii", "replace").split()
            if len(header) != 3 or header[1] != "blob":
                raise GitError("`git cat-file --batch` in %s gave %r for %s; run `git fsck` in the source"
                               % (path, " ".join(header), blob))
            remaining = int(header[2])
            digest = hashlib.sha256()
            while remaining:
                chunk = proc.stdout.read(min(remaining, 1024 * 1024))
                if not chunk:
                    raise GitError("`git cat-file --batch` in %s ended early; run `git fsck` in the source" % path)
                digest.update(chunk)
                remaining -= len(chunk)
            proc.stdout.read(1)  # the newline after the content
            hashes[blob] = digest.hexdigest()
    finally:
        writer.join()
        proc.stdout.close()
        proc.wait()
        proc.stderr.close()
    return hashes


def inspect(path: Optional[str]) -> dict:
    """Validate a source checkout (SPEC 2.1, 7) and describe the version it holds."""
    path = _check_path(path)
    _check_work_tree(path)
    _check_layout(path)
    manifest: Dict[str, str] = {}
    total = 0
    for rel, absolute in mapped_files(path):
        manifest[rel] = sha256_file(absolute)
        total += os.path.getsize(absolute)
    commit = _git(path, "rev-parse", "HEAD").decode("ascii").strip()
    index = installs.history_index(path, _git, _hash_blobs, installed_rel)
    describe = _git(path, "describe", "--tags", "--always").decode("utf-8").strip()
    committed_at = int(_git(path, "show", "-s", "--format=%ct", "HEAD").decode("ascii").strip())
    return {
        "path": path,
        "commit": commit,
        "describe": describe,
        "committed_at": committed_at,
        "manifest": manifest,
        "history": installs.history_of(index, manifest),
        "installs": index,
        "workflows": sorted(owned_workflows(list(manifest) + list(index.get("paths") or ()))),
        "shallow": index["shallow"],
        "ide": ide_info(path, index),
        "requirements_sha256": manifest.get("mcp_server/requirements.txt"),
        "requirements_key": (requirements_file_key(os.path.join(path, "mcp_server", "requirements.txt"))
                             if "mcp_server/requirements.txt" in manifest else None),
        "bytes": total,
        "file_count": len(manifest),
    }


def ide_info(path: str, index: dict) -> dict:
    """The IDE config HEAD's installer writes (installation/.cursorrules, the docs' mcp.json entry) and
    the digests of every older version of both in the history (see ideconfig.py)."""
    rules = None
    rules_path = os.path.join(path, *CURSORRULES_SOURCE.split("/"))
    if os.path.isfile(rules_path) and not os.path.islink(rules_path):
        with open(rules_path, "rb") as handle:
            data = handle.read()
        rules = {"text": data.decode("utf-8", "replace"), "sha256": hashlib.sha256(data).hexdigest()}
    mcp = None
    docs = os.path.join(path, INSTALLATION_DIR)
    names = sorted(os.listdir(docs)) if os.path.isdir(docs) else []
    for name in names:
        full = os.path.join(docs, name)
        if name.endswith(".md") and os.path.isfile(full) and not os.path.islink(full):
            with open(full, "rb") as handle:
                found = installs.docs_mcp_entry(handle.read().decode("utf-8", "replace"))
            if found:
                mcp = {"key": found[0], "value": found[1], "entry": installs.entry_digest(found[1])}
                break
    rows = index.get("commits") or []
    current_rules = rules["sha256"] if rules else None
    current_entry = mcp["entry"] if mcp else None
    keys = ([mcp["key"]] if mcp else []) + [k for k in index.get("mcp_keys") or () if not mcp or k != mcp["key"]]
    return {
        "cursorrules": rules,
        "mcp": mcp,
        "mcp_keys": keys,
        "history": {
            "cursorrules": sorted({r[2] for r in rows if r[2] and r[2] != current_rules}),
            "mcp_entry": sorted({r[4] for r in rows if r[4] and r[4] != current_entry}),
        },
    }


def _manifest_digest(manifest: Dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode("utf-8")).hexdigest()


def archive_name(commit: str) -> str:
    return "praxis-source-%s.tar.gz" % commit


def _tarinfo(name: str, size: int, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def build_archive(path: str, info: dict) -> bytes:
    """The deterministic tar.gz bytes of the source in installed layout (same commit → same bytes)."""
    mtime = int(info.get("committed_at") or 0)
    sources = dict(mapped_files(path))
    if set(sources) != set(info["manifest"]):
        raise ValueError("source %s changed since it was inspected (file list differs); re-run" % path)
    buffer = io.BytesIO()
    # gzip's header carries a timestamp: pin it, so the bytes depend on the content only.
    with gzip.GzipFile(filename="", fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        header = json.dumps({"commit": info["commit"], "describe": info["describe"],
                             "manifest": info["manifest"]}, indent=2, sort_keys=True).encode("utf-8") + b"\n"
        tar.addfile(_tarinfo(SOURCE_JSON, len(header), 0o644, mtime), io.BytesIO(header))
        for rel in sorted(sources):
            with open(sources[rel], "rb") as handle:
                data = handle.read()
            if hashlib.sha256(data).hexdigest() != info["manifest"][rel]:
                raise ValueError("source file %s changed since it was inspected; re-run" % sources[rel])
            executable = os.stat(sources[rel]).st_mode & stat.S_IXUSR
            tar.addfile(_tarinfo(rel, len(data), 0o755 if executable else 0o644, mtime), io.BytesIO(data))
    return buffer.getvalue()


def pack(path: str, info: dict, archive_dir: str) -> dict:
    """Write (or reuse) `<archive_dir>/praxis-source-<commit>.tar.gz`; return its path, sha256, size."""
    if not os.path.isabs(archive_dir):
        raise ValueError("archive_dir %r is relative; give an absolute controller cache directory" % archive_dir)
    os.makedirs(archive_dir, exist_ok=True)
    archive = os.path.join(archive_dir, archive_name(info["commit"]))
    record_path = archive + ".json"
    wanted = _manifest_digest(info["manifest"])
    if os.path.isfile(archive) and os.path.isfile(record_path):
        try:
            record = read_json(record_path, "archive record")
        except ValueError:
            record = {}
        if (isinstance(record, dict) and record.get("manifest_sha256") == wanted
                and record.get("archive_sha256") == sha256_file(archive)):
            return {"archive": archive, "archive_sha256": record["archive_sha256"],
                    "archive_bytes": os.path.getsize(archive), "written": False}
    data = build_archive(path, info)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(archive, data, 0o644)
    atomic_write_json(record_path, {"commit": info["commit"], "archive_sha256": digest,
                                    "manifest_sha256": wanted}, 0o644)
    return {"archive": archive, "archive_sha256": digest, "archive_bytes": len(data), "written": True}


def _tree_matches(dest: str, manifest: Dict[str, str]) -> bool:
    try:
        actual = build_manifest(dest)
    except (OSError, ValueError):
        return False
    actual.pop(SOURCE_JSON, None)
    actual.pop(PLAN_NAME, None)  # the content phase's plan and staged IDE config live beside the source
    actual = {rel: digest for rel, digest in actual.items() if not rel.startswith(IDE_STAGE + "/")}
    return actual == manifest


def _safe_member(member: tarfile.TarInfo, archive: str) -> Optional[str]:
    """The member's checked relative path for a regular file, None for a directory; refuse anything else."""
    name = member.name[:-1] if member.name.endswith("/") else member.name
    if name.startswith("./"):
        name = name[2:]
    try:
        check_relpath(name)
    except UnsafePathError as exc:
        raise ValueError("archive %s holds an unsafe member: %s; it is corrupt or tampered with — "
                         "re-run the upgrade to ship a fresh archive" % (archive, exc)) from exc
    if member.isdir():
        return None
    if not member.isreg():
        raise ValueError("archive %s holds %s, which is a link or special file; only regular files are "
                         "allowed — re-run the upgrade to ship a fresh archive" % (archive, name))
    return name


def extract(archive: str, dest: str, manifest: Dict[str, str]) -> dict:
    """Unpack `archive` into `dest` (temp dir beside it, verified, then renamed into place).

    An existing `dest` that already matches `manifest` is left alone. Every file is checked
    against `manifest`; anything missing, different or extra fails before `dest` is touched.
    """
    if _tree_matches(dest, manifest):
        return {"extracted": False, "verified": True, "dest": dest}
    if not os.path.isfile(archive):
        raise ValueError("source archive %s does not exist on this host; re-run the upgrade so the "
                         "archive is shipped again" % archive)
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s." % os.path.basename(dest), suffix=".tmp", dir=parent)
    try:
        seen: Dict[str, str] = {}
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                name = _safe_member(member, archive)
                if name is None:
                    continue
                if name in seen:
                    raise ValueError("archive %s holds %s twice; it is corrupt — re-run the upgrade" % (archive, name))
                seen[name] = _extract_file(tar, member, os.path.join(tmp, *name.split("/")))
        seen.pop(SOURCE_JSON, None)
        problems = _describe_diff(manifest, seen)
        if problems:
            raise ValueError("archive %s does not match the source manifest (%s); the archive is corrupt "
                             "or from another commit — re-run the upgrade to ship it again" % (archive, problems))
        sync_filesystem(tmp)  # every unpacked file durable, once, before the rename publishes the tree
        if os.path.lexists(dest):
            remove_path(dest)
        os.replace(tmp, dest)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"extracted": True, "verified": True, "dest": dest}


def _extract_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: str) -> str:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    source = tar.extractfile(member)
    digest = hashlib.sha256()
    with source, open(target, "wb") as handle:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            digest.update(chunk)
            handle.write(chunk)
    os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)
    return digest.hexdigest()


def _describe_diff(expected: Dict[str, str], actual: Dict[str, str]) -> str:
    diff = compare(expected, actual)
    parts = []
    for label, items in (("missing", diff.missing), ("changed", diff.changed), ("extra", diff.extra)):
        if items:
            parts.append("%s: %s%s" % (label, ", ".join(items[:5]), " ..." if len(items) > 5 else ""))
    return "; ".join(parts)
