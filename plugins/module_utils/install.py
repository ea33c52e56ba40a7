# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What only an install has (playbooks/install.yml): what a project holds, the install journal, undo.

The install itself is the upgrade's phases run against an empty base: the content plan (every file an
add, the IDE config created), `praxis_server action=upgrade` (requirements into a new venv, the plan
applied, the server started per mode), the validate probe and the records. This file decides what the
target holds (`inspect`, `decide`), journals what the install will create *before* creating it
(`begin`: the paths inside the installation that existed before, the prior bytes of the project files
the installer writes) and puts the project back exactly as it was when anything fails (`undo`).
A docs-made installation (no base manifest, no VERSION.txt) is adopted by recording the base manifest
and the commit `installs.identify` finds (`adopt`), without touching any framework file.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import subprocess
import sys
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils import installs, lock
from ansible_collections.praxis.upgrade.plugins.module_utils.child import tied_to_module
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import BASE_MANIFEST
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    read_json,
    remove_path,
)

JOURNAL = ".install-journal.json"  # inside the installation; exists only while an install is unfinished
JOURNAL_SCHEMA = 1
LOCK = lock.LOCK_NAME  # the upgrade's lock: one run per installation, install or upgrade
# Outside the installation the installer writes only these (SPEC 2.2): their prior bytes are journalled.
PROJECT_FILES = (".gitignore", ".cursorrules", ".cursorrules.upstream", ".cursor/mcp.json", ".cursor/mcp.json.upstream")
PROJECT_DIRS = (".cursor",)
# Any of these inside the installation directory means something is installed there already.
MARKERS = ("mcp_server", "venv", "scripts", "workflows", "standards/universal", "VERSION.txt", BASE_MANIFEST)
MODES = ("install", "adopt")
UPGRADE = "praxis.upgrade.upgrade (playbooks/upgrade.yml)"
STATUSES = ("absent", "empty", "interrupted", "installed", "docs")


class InstallError(RuntimeError):
    """The install cannot go on; the message says what is wrong and what to do next."""


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def journal_path(home: str) -> str:
    return os.path.join(home, JOURNAL)


def recorded_commit(home: str) -> Optional[str]:
    """Last `commit=` line of VERSION.txt, else the commit of the base manifest, else None."""
    commit = None
    try:
        with open(os.path.join(home, "VERSION.txt"), encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep and key.strip() == "commit" and value.strip():
                    commit = value.strip()
    except FileNotFoundError:
        pass
    if commit:
        return commit
    try:
        base = read_json(os.path.join(home, *BASE_MANIFEST.split("/")), "base manifest")
    except (OSError, ValueError):
        return None
    return base.get("commit") if isinstance(base, dict) and isinstance(base.get("commit"), str) else None


# ---- what the project holds --------------------------------------------------------------------------

def status_of(home: str) -> str:
    """absent | empty (a directory holding nothing installed) | interrupted | installed | docs (no records)."""
    if not os.path.lexists(home):
        return "absent"
    if os.path.islink(home) or not os.path.isdir(home):
        raise InstallError("%s exists but is not a directory; move it aside and re-run" % home)
    if os.path.exists(journal_path(home)):
        return "interrupted"
    if not any(os.path.lexists(os.path.join(home, *m.split("/"))) for m in MARKERS):
        return "empty"
    if os.path.isfile(os.path.join(home, "VERSION.txt")) or os.path.isfile(os.path.join(home, *BASE_MANIFEST.split("/"))):
        return "installed"
    return "docs"


def decide(status: str, mode: str, commit: str, installed_commit: Optional[str], home: str) -> Tuple[str, Optional[str]]:
    """(action, refusal): action install | adopt | check_health (installed at the commit) | nothing; a refusal
    (a message with the next step) means no change at all."""
    if mode not in MODES:
        return "refuse", "praxis_install_mode %r is not one of %s; set it accordingly" % (mode, ", ".join(MODES))
    if status == "interrupted" and mode == "adopt":
        return "refuse", ("%s holds an unfinished install (%s); nothing was changed. Next: re-run install.yml without "
                          "praxis_install_mode=adopt: it undoes that install first, then installs" % (home, JOURNAL))
    if mode == "adopt":
        if status in ("absent", "empty"):
            return "refuse", ("%s holds no installation to adopt; nothing was changed. Next: install it with "
                              "praxis.upgrade.install (praxis_install_mode=install, the default)" % home)
        if status == "installed":
            return "nothing", None  # its base manifest and commit are recorded already
        if not installed_commit:
            return "refuse", "no commit identified"  # replaced by installs.refusal by the caller
        return "adopt", None
    if status in ("absent", "empty", "interrupted"):
        return "install", None
    if status == "docs":
        return "refuse", ("%s holds a prAxIs OS installation made by upstream's docs (no base manifest, no VERSION.txt"
                          "%s); nothing was changed. Next: record it with -e praxis_install_mode=adopt, then upgrade it "
                          "with %s" % (home, ", commit %s" % installed_commit[:12] if installed_commit else "", UPGRADE))
    if installed_commit == commit:
        return "check_health", None
    return "refuse", ("%s is already installed at commit %s, the source is at %s; nothing was changed. Next: upgrade "
                      "it with %s (install.yml only makes new installations)"
                      % (home, (installed_commit or "unknown")[:12], commit[:12], UPGRADE))


def inspect(project_dir: str, home_name: str, commit: str, index: Optional[Mapping], mode: str) -> dict:
    """Read-only: what the project holds and what install.yml would do there (see `decide`)."""
    if not os.path.isabs(project_dir) or not os.path.isdir(project_dir):
        raise InstallError("project directory %s does not exist or is not absolute; create it or fix "
                           "praxis_project_dir for this host" % project_dir)
    home = os.path.join(project_dir, home_name)
    status = status_of(home)
    installed, match, identified = None, None, None
    if status == "installed":
        installed = recorded_commit(home)
    elif status == "docs":
        match = installs.identify(installs.local_trees(home, index), index or {})
        installed = match["commit"] if match else None
    action, refusal = decide(status, mode, commit, installed, home)
    if action == "refuse" and mode == "adopt" and status == "docs" and not installed:
        refusal = installs.refusal(home, index or {}, (index or {}).get("source"))
    if action == "adopt":
        identified = installs.tree_of(index or {}, installed)
    held = None
    if status != "absent":
        try:
            held = lock.read_lock(lock.lock_path(home))
        except ValueError as exc:
            held = {"corrupt": str(exc)}
    return {"praxis_home": home, "status": status, "installed_commit": installed, "match": match,
            "action": action, "refusal": refusal, "adopt_manifest": identified, "lock": held,
            "journal": read_journal(home) if status == "interrupted" else None}


# ---- the journal: written before anything it names is created ----------------------------------------

def read_journal(home: str) -> Optional[dict]:
    path = journal_path(home)
    if not os.path.exists(path):
        return None
    document = read_json(path, "install journal")
    if not isinstance(document, dict) or document.get("schema") != JOURNAL_SCHEMA or \
            not isinstance(document.get("before"), list) or not isinstance(document.get("project"), dict):
        raise InstallError("%s is not an install journal of schema %d; the unfinished install cannot be undone "
                           "automatically. Next: compare the project with your VCS, remove what the install added "
                           "and %s, then re-run" % (path, JOURNAL_SCHEMA, path))
    return document


STARTED = "started_pids"


def record_started(home: str, pid: int) -> bool:
    """Journal the pid of a server this install started, as soon as it exists: a real server publishes its
    state file only after its first index build (minutes), so until then only this names it, and an undo
    (a re-run after a kill) must stop it. False when no install journal is there (not an install)."""
    try:
        journal = read_journal(home)
    except (InstallError, ValueError, OSError):
        return False
    if journal is None:
        return False
    journal[STARTED] = sorted(set(started_pids(journal)) | {int(pid)})
    atomic_write_json(journal_path(home), journal, 0o600)
    return True


def started_pids(journal: Optional[Mapping]) -> List[int]:
    """The pids `record_started` journalled (callers verify each with procutil.check_server_pid)."""
    pids = (journal or {}).get(STARTED) or []
    return [p for p in pids if isinstance(p, int) and not isinstance(p, bool) and p > 0] if isinstance(pids, list) else []


def paths_inside(home: str) -> List[str]:
    """Every path below `home` (dirs end with '/'), the lock and the journal excepted; links not followed."""
    found: List[str] = []
    for current, dirs, files in os.walk(home):
        rel_dir = os.path.relpath(current, home)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in dirs:
            found.append(prefix + name + ("" if os.path.islink(os.path.join(current, name)) else "/"))
        for name in files:
            found.append(prefix + name)
    skip = {JOURNAL, LOCK}
    return sorted(rel for rel in found if rel not in skip and not os.path.basename(rel.rstrip("/")).startswith(
        "." + LOCK + "."))


def project_state(project_dir: str) -> Dict[str, dict]:
    """Prior state of every project path the installer may write: {rel: {"existed", "data", "mode"}}."""
    state: Dict[str, dict] = {}
    for rel in PROJECT_FILES:
        path = os.path.join(project_dir, *rel.split("/"))
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isfile(path)):
            raise InstallError("%s is not a regular file; the installer writes it. Next: replace it with a file (or "
                               "remove it) and re-run" % path)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                data = handle.read()
            state[rel] = {"existed": True, "data": base64.b64encode(data).decode("ascii"),
                          "mode": os.stat(path).st_mode & 0o7777}
        else:
            state[rel] = {"existed": False}
    for rel in PROJECT_DIRS:
        state[rel + "/"] = {"existed": os.path.isdir(os.path.join(project_dir, rel))}
    return state


def begin(project_dir: str, home: str, owner: dict, commit: str, check: bool = False, **judged) -> dict:
    """Create the installation directory, take the lock and write the journal — in that order, each before
    anything else is created. Returns {"created_home", "lock", "journal"}. Check mode: what would be done."""
    created_home = not os.path.lexists(home)
    if check:
        return {"created_home": created_home, "lock": "acquired", "journal": None}
    if created_home:
        os.mkdir(home, 0o755)
        fsync_dir(project_dir)
    taken, _previous = lock.acquire(lock.lock_path(home), owner, **judged)
    journal = {"schema": JOURNAL_SCHEMA, "session_id": owner["session_id"], "run_id": owner.get("run_id"),
               "commit": commit, "started_at": now_iso(), "created_home": created_home,
               "before": [] if created_home else paths_inside(home), "project": project_state(project_dir)}
    atomic_write_json(journal_path(home), journal, 0o600)
    os.makedirs(os.path.join(home, ".cache"), exist_ok=True)  # journalled: not in `before` unless it was there
    return {"created_home": created_home, "lock": taken, "journal": journal}


def create_venv(home: str, python: Optional[str] = None, check: bool = False, timeout: float = 300.0) -> dict:
    """`python -m venv <home>/venv` (the environment pip installs the requirements into)."""
    venv = os.path.join(home, "venv")
    python = python or sys.executable
    if os.path.exists(os.path.join(venv, "bin", "python")):
        return {"venv": venv, "created": False, "python": python}
    if check:
        return {"venv": venv, "created": True, "python": python}
    try:
        done = subprocess.run([python, "-m", "venv", venv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False, preexec_fn=tied_to_module())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError("`%s -m venv %s` did not run (%s). Next: install python3-venv on the target and re-run"
                           % (python, venv, exc))
    if done.returncode != 0:
        raise InstallError("`%s -m venv %s` failed with exit %d: %s. Next: install python3-venv on the target and "
                           "re-run" % (python, venv, done.returncode,
                                       done.stdout.decode("utf-8", "replace").strip()[-800:]))
    return {"venv": venv, "created": True, "python": python}


def finish(home: str, session_id: str, staging: List[str]) -> dict:
    """The install succeeded: remove its staging, release the lock, then the journal (last: a crash before
    this leaves an unfinished install, which the next run undoes and makes again)."""
    cache = os.path.join(home, ".cache") + os.sep
    removed = []
    for path in staging:
        absolute = os.path.abspath(path)
        if not absolute.startswith(cache):
            raise InstallError("staging path %s is not under %s; refusing to remove it" % (path, cache))
        if remove_path(absolute):
            removed.append(absolute)
    journal = read_journal(home) or {}
    lock.release(lock.lock_path(home), session_id)
    os.unlink(journal_path(home))
    fsync_dir(home)
    return {"removed_staging": removed, "started_at": journal.get("started_at"), "finished_at": now_iso()}


def adopt(home: str, commit: str, manifest: Mapping[str, str], source_path: str, session: dict) -> dict:
    """Record a docs-made installation: VERSION.txt (commit) and the base manifest (what the installer of
    `commit` wrote, from the source's history), plus the usual records; no framework file is touched."""
    from ansible_collections.praxis.upgrade.plugins.module_utils.report import build_summary, write_target_records

    summary = build_summary(dict(session, installed_commit=commit, target_commit=commit),
                            {"commit": commit, "describe": "adopted", "path": source_path}, "completed")
    reports = write_target_records(home, summary, dict(manifest))
    return {"summary": summary, "reports": reports}


def session_row(session_id: str, run_id: Optional[str], started_at: Optional[str], finished_at: str) -> dict:
    """The install as the run report's `session` (one phase, `install`, on the run's time axis)."""
    duration = None
    try:
        begin = datetime.datetime.strptime(started_at or "", "%Y-%m-%dT%H:%M:%SZ")
        duration = (datetime.datetime.strptime(finished_at, "%Y-%m-%dT%H:%M:%SZ") - begin).total_seconds()
    except ValueError:
        pass
    return {"session_id": session_id, "run_id": run_id, "status": "completed", "started_at": started_at,
            "finished_at": finished_at, "completed_phases": ["install"],
            "phases": {"install": {"started_at": started_at, "finished_at": finished_at, "duration_s": duration}}}


# ---- undo: the project exactly as before -------------------------------------------------------------

def _remove_added(home: str, before: List[str]) -> List[str]:
    """Remove every path below `home` that is not in `before` (whole subtrees; the journal stays).
    Sorted paths list a directory before what is inside it, so a removed tree's contents are skipped."""
    kept = set(before)
    removed: List[str] = []
    for rel in paths_inside(home):
        if rel in kept or any(rel.startswith(done) for done in removed if done.endswith("/")):
            continue
        remove_path(os.path.join(home, *rel.rstrip("/").split("/")))
        removed.append(rel)
    return removed


def _restore_project(project_dir: str, saved: Mapping[str, dict]) -> List[str]:
    restored: List[str] = []
    for rel, prior in sorted(saved.items()):
        if rel.endswith("/"):
            continue
        path = os.path.join(project_dir, *rel.split("/"))
        if prior.get("existed"):
            data = base64.b64decode(prior["data"])
            current = None
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    current = handle.read()
            if current != data or (os.stat(path).st_mode & 0o7777) != prior["mode"]:
                atomic_write_bytes(path, data, prior["mode"])
                restored.append(rel)
        elif os.path.lexists(path):
            remove_path(path)
            restored.append(rel)
    for rel, prior in saved.items():  # a directory the install created (.cursor/), when nothing else is in it
        directory = os.path.join(project_dir, *rel.rstrip("/").split("/"))
        if rel.endswith("/") and not prior.get("existed") and os.path.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)
            restored.append(rel)
    return restored


def undo(project_dir: str, home: str, stop_server: Callable[[List[int]], Optional[str]], check: bool = False) -> dict:
    """Put the project back as the journal found it; idempotent (the journal goes last).

    `stop_server(started)` stops this project's server (by verified pid or unit, and each journalled
    `started` pid that still runs this project's mcp_server) and says what it did.
    Returns {"undone", "stopped", "removed", "restored", "removed_home"}."""
    result = {"undone": False, "stopped": None, "removed": [], "restored": [], "removed_home": False}
    journal = read_journal(home) if os.path.isdir(home) else None
    if journal is None:
        return result
    result["undone"] = True
    if check:
        return result
    result["stopped"] = stop_server(started_pids(journal))
    if journal["created_home"]:
        result["restored"] = _restore_project(project_dir, journal["project"])
        shutil.rmtree(home)
        fsync_dir(project_dir)
        result["removed_home"] = True
        return result
    result["removed"] = _remove_added(home, journal["before"])
    result["restored"] = _restore_project(project_dir, journal["project"])
    remove_path(lock.lock_path(home))
    os.unlink(journal_path(home))
    fsync_dir(home)
    return result
