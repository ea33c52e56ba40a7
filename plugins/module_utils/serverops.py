# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server phase operations on a target: staged + renamed swap of `mcp_server/`, and its dependencies.

The swap is journalled in the session facts file (`journal` entry with `op: swap`) before every
rename, so a crash at any point is finished (or undone) by `recover_swap`:

    staging    <home>/mcp_server.new-<session> is being copied (journalled before it exists); live untouched
    staged     <home>/mcp_server.new-<session> is complete and verified; live untouched
    old_moved  live renamed to <home>/mcp_server.old-<session>
    swapped    new renamed to live; the old tree (also in the backup) is removed next
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils import faults, state
from ansible_collections.praxis.upgrade.plugins.module_utils.child import tied_to_module
from ansible_collections.praxis.upgrade.plugins.module_utils.requirements import requirements_file_key
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    copy_file_hashed,
    fsync_dir,
    remove_path,
    sha256_file,
    sync_filesystem,
)
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import (
    build_manifest,
    compare,
    validate_manifest,
)

PREFIX = "mcp_server/"
SWAP_OP = "swap"
PIP_TAIL = 3000
ROLLBACK_HINT = "playbooks/rollback.yml"

# Run by the venv's python: which requirements of a requirements file are not satisfied.
# Uses pip's vendored `packaging` (markers, specifiers) when it imports, plain names otherwise.
_CHECK_SCRIPT = r"""
import json, re, sys
from importlib import metadata
try:
    from pip._vendor.packaging.requirements import Requirement
except Exception:
    Requirement = None
missing, checked = [], 0
for raw in open(sys.argv[1], encoding="utf-8"):
    line = raw.split(" #")[0].strip()
    if not line or line.startswith(("#", "-")):
        continue
    if Requirement is not None:
        try:
            req = Requirement(line)
        except Exception:
            missing.append(line); continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        name, spec = req.name, req.specifier
    else:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if not match:
            missing.append(line); continue
        name, spec = match.group(0), None
    checked += 1
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        missing.append(line); continue
    if spec is not None and not spec.contains(version, prereleases=True):
        missing.append("%s (installed %s)" % (line, version))
print(json.dumps({"missing": missing, "checked": checked}))
"""


class SwapError(RuntimeError):
    """The swap cannot proceed or recover; the message says where and what to do next."""


class DependencyError(RuntimeError):
    """pip failed; carries the output tail for the task result."""

    def __init__(self, message: str, output_tail: str = "") -> None:
        super().__init__(message)
        self.output_tail = output_tail


# ---------------------------------------------------------------- swap

def swap_paths(praxis_home: str, session_id: str) -> Dict[str, str]:
    home = os.path.abspath(praxis_home)
    return {"live": os.path.join(home, "mcp_server"),
            "new": os.path.join(home, "mcp_server.new-%s" % session_id),
            "old": os.path.join(home, "mcp_server.old-%s" % session_id)}


def server_subset(manifest: Dict[str, str]) -> Dict[str, str]:
    """The `mcp_server/...` entries of a manifest (validated: safe paths, sha256 digests)."""
    subset = {rel: digest for rel, digest in manifest.items() if rel.startswith(PREFIX)}
    return validate_manifest(subset, "server manifest")


def _check_entry(praxis_home: str, entry: dict) -> Dict[str, str]:
    """Refuse a journal entry whose paths are not this installation's swap paths (never rmtree elsewhere)."""
    home = os.path.abspath(praxis_home)
    live, new, old = (entry.get(k) for k in ("live", "new", "old"))
    ok = (live == os.path.join(home, "mcp_server")
          and isinstance(new, str) and os.path.dirname(new) == home
          and os.path.basename(new).startswith("mcp_server.new-")
          and isinstance(old, str) and os.path.dirname(old) == home
          and os.path.basename(old).startswith("mcp_server.old-"))
    if not ok:
        raise SwapError("the swap journal entry %r does not name %s/mcp_server and its .new-/.old- "
                        "siblings; the facts file is corrupt or from another installation — restore with %s"
                        % (entry, home, ROLLBACK_HINT))
    return {"live": live, "new": new, "old": old}


STARTED_OP = "server_started"


def record_started(state_path: str, pid: int, praxis_home: Optional[str] = None) -> None:
    """Journal the pid of a server this run started, as soon as it exists. A real server publishes its
    state file only after its index rebuild (minutes): until then this entry is the only thing that names
    it, and a failed wait, a rollback or an install's undo must stop it. An upgrade journals it in its
    session; an install (no session) in its install journal (`praxis_home`); otherwise a no-op."""
    if state.load(state_path) is not None:
        state.journal_set(state_path, {"op": STARTED_OP, "pid": pid})
    elif praxis_home:
        from ansible_collections.praxis.upgrade.plugins.module_utils import install  # install imports lock, not us
        install.record_started(praxis_home, pid)


def started_pid(state_path: str) -> Optional[int]:
    """The pid `record_started` journalled, if any (callers verify it with procutil.check_server_pid)."""
    entry = state.journal_get(state.load(state_path), STARTED_OP)
    pid = (entry or {}).get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def clear_started(state_path: str) -> None:
    if started_pid(state_path) is not None:
        state.journal_clear(state_path, STARTED_OP)


def journal_in_flight(state_path: str) -> bool:
    """Whether the session journal holds a swap that did not finish."""
    return state.journal_get(state.load(state_path), "swap") is not None


def recover_swap(praxis_home: str, state_path: str, check: bool = False) -> dict:
    """Finish (or undo) a swap interrupted at any journal step; idempotent; a no-op without a journal.

    Returns ``recovered`` (bool), ``action`` (``none``, ``completed``, ``undone``) and ``step``.
    """
    entry = state.journal_get(state.load(state_path), SWAP_OP)
    if entry is None:
        return {"recovered": False, "action": "none", "step": None}
    paths = _check_entry(praxis_home, entry)
    live, new, old = paths["live"], paths["new"], paths["old"]
    step = entry.get("step")
    if step == "staging":  # died while copying: the staged tree is incomplete, live was never touched
        result = {"recovered": True, "action": "undone", "step": step}
        if not check:
            remove_path(new)
            state.journal_clear(state_path, SWAP_OP)
        return result
    has_live, has_new, has_old = (os.path.isdir(p) for p in (live, new, old))
    if not has_live and not has_new and not has_old:
        raise SwapError("interrupted swap (step %s) left no server tree: %s, %s and %s are all missing — "
                        "restore the backup with %s" % (step, live, new, old, ROLLBACK_HINT))
    if has_live and has_new:
        action = "completed"  # the renames had not started (live is still the old tree)
    elif not has_live:
        action = "completed" if has_new else "undone"
    else:  # live present, new gone: either both renames happened, or the staged copy was lost
        action = "undone" if step == "staged" else "completed"
    result = {"recovered": True, "action": action, "step": step}
    if check:
        return result
    if has_live and has_new:
        remove_path(old)  # cannot exist before the first rename; never rename onto it
        os.rename(live, old)
    if not os.path.isdir(live):
        os.rename(new if has_new else old, live)
    fsync_dir(os.path.dirname(live))
    remove_path(old)
    remove_path(new)
    state.journal_clear(state_path, SWAP_OP)
    return result


def _stage(source_server: str, new: str, subset: Dict[str, str]) -> None:
    """Copy every manifest file to `new`, hashing while copying; any mismatch aborts and cleans up."""
    try:
        for rel, expected in sorted(subset.items()):
            inner = rel[len(PREFIX):]
            src = os.path.join(source_server, *inner.split("/"))
            if not os.path.isfile(src):
                raise SwapError("source file %s named in the manifest is missing; the shipped source is "
                                "incomplete — re-run the upgrade so it is shipped again" % src)
            got = copy_file_hashed(src, os.path.join(new, *inner.split("/")))  # published by the swap
            if inner == "__main__.py":
                faults.fault_point("server.during_staging")  # test seam: a crash with the staging half made
            if got != expected:
                raise SwapError("source file %s has sha256 %s, the manifest says %s; the shipped source "
                                "changed after validation — re-run the upgrade" % (src, got, expected))
        sync_filesystem(new)  # every staged file durable, once, before the swap renames it into place
    except BaseException:
        remove_path(new)
        raise


def swap_server(praxis_home: str, source_dir: str, manifest_subset: Dict[str, str], state_path: str,
                session_id: str, check: bool = False) -> dict:
    """Replace `<home>/mcp_server` by `<source_dir>/mcp_server` (only the manifest's files), staged
    complete and verified, then swapped in with two journalled renames.

    Returns ``changed``, ``swapped``, ``files``, ``added``/``updated``/``removed`` (paths relative to
    the installation), ``journal_recovered`` and ``recovery`` (what recover_swap did).
    """
    subset = server_subset(manifest_subset)
    if not subset:
        raise SwapError("the manifest has no mcp_server/ entries; pass the source manifest of the target "
                        "commit (praxis_source) — refusing to swap in an empty server")
    paths = swap_paths(praxis_home, session_id)
    recovery = recover_swap(praxis_home, state_path, check=check)
    diff = compare(subset, build_manifest(paths["live"], prefix=PREFIX))
    result = {"changed": False, "swapped": False, "files": len(subset), "added": diff.missing,
              "updated": diff.changed, "removed": diff.extra, "journal_recovered": recovery["recovered"],
              "recovery": recovery, "live": paths["live"]}
    if diff.ok:
        result["changed"] = recovery["recovered"]
        return result
    result["changed"] = True
    if check:
        return result
    if state.load(state_path) is None:
        raise SwapError("no upgrade session recorded in %s: the swap journal lives there; start the session "
                        "first (praxis.upgrade.praxis_state)" % state_path)
    source_server = os.path.join(source_dir, "mcp_server")
    if not os.path.isdir(source_server):
        raise SwapError("%s does not exist; the shipped source is incomplete — re-run the upgrade" % source_server)
    remove_path(paths["new"])  # leftovers of an attempt that died while staging
    entry = dict(op=SWAP_OP, step="staging", **paths)
    state.journal_set(state_path, entry)  # write-ahead: the staging dir is journalled before it exists
    try:
        _stage(source_server, paths["new"], subset)
    except Exception:
        state.journal_clear(state_path, SWAP_OP)  # _stage removed the partial copy
        raise
    entry = dict(entry, step="staged")
    state.journal_set(state_path, entry)
    if os.path.isdir(paths["live"]):
        os.rename(paths["live"], paths["old"])
    state.journal_set(state_path, dict(entry, step="old_moved"))
    faults.fault_point("server.between_renames")
    os.rename(paths["new"], paths["live"])
    fsync_dir(os.path.dirname(paths["live"]))
    state.journal_set(state_path, dict(entry, step="swapped"))
    remove_path(paths["old"])
    state.journal_clear(state_path, SWAP_OP)
    result["swapped"] = True
    return result


# ---------------------------------------------------------------- dependencies

def _tail(text: str, limit: int = PIP_TAIL) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def venv_tool_env(extra_env: Optional[Dict[str, object]]) -> Dict[str, str]:
    """The environment of a tool run by the venv's python (pip, the index builder): this process's, less
    PYTHONPATH/PYTHONHOME and the fault point, plus ``extra_env`` (praxis_server_env)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PRAXIS_FAULT_POINT")}
    env.update({str(k): str(v) for k, v in (extra_env or {}).items()})
    env.setdefault("PIP_NO_INPUT", "1")
    return env


def unsatisfied_requirements(python: str, requirements: str, timeout: float = 60.0) -> List[str]:
    """Requirement lines not satisfied in the venv of `python` (one subprocess). Raises DependencyError
    when the venv's python does not run."""
    try:
        done = subprocess.run([python, "-c", _CHECK_SCRIPT, requirements], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False,
                              env=venv_tool_env(None))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DependencyError("the venv python %s does not run (%s); the venv is broken — restore it with %s"
                              % (python, exc, ROLLBACK_HINT))
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace")
        raise DependencyError("the venv python %s failed to inspect its packages (exit %d); the venv is "
                              "broken — restore it with %s" % (python, done.returncode, ROLLBACK_HINT), _tail(err))
    return list(json.loads(done.stdout.decode("utf-8"))["missing"])


def ensure_dependencies(praxis_home: str, previous_requirements_sha256: Optional[str], pip_args: Sequence[str] = (),
                        check: bool = False, timeout: float = 900.0,
                        post_install_commands: Sequence[Sequence[str]] = (),
                        env: Optional[Dict[str, object]] = None, requirements: Optional[str] = None,
                        previous_requirements_key: Optional[str] = None, planned_key: Optional[str] = None) -> dict:
    """Install `mcp_server/requirements.txt` (or `requirements`, e.g. the staged new version's) into the
    venv unless it is unchanged and satisfied.

    Unchanged means the same file hash, or the same requirement set (`requirements.requirements_key`:
    comments, blank lines and order do not count) as `previous_requirements_key`.

    `planned_key` (a dry run only, `check`): the new version's requirement-set key when its file is not
    staged yet. A set other than `previous_requirements_key` would run pip; the same set is judged on the
    installed file by the rule above (same requirements, so the same unsatisfied ones).

    Returns ``changed``, ``pip_ran``, ``would_run_pip``, ``reason``, ``requirements_sha256``,
    ``previous_requirements_sha256``, ``unsatisfied``, ``pip_output_tail``, ``warnings``, ``duration_s``.
    Raises DependencyError (with the pip output tail) when pip fails or times out.
    """
    begin = time.monotonic()
    home = os.path.abspath(praxis_home)
    python = os.path.join(home, "venv", "bin", "python")
    requirements = requirements or os.path.join(home, "mcp_server", "requirements.txt")
    result = {"changed": False, "pip_ran": False, "would_run_pip": False, "reason": None,
              "requirements_sha256": None, "previous_requirements_sha256": previous_requirements_sha256,
              "unsatisfied": [], "pip_output_tail": "", "warnings": [], "duration_s": 0.0}
    if planned_key is not None:
        if not check:
            raise ValueError("planned_key is for a dry run (check mode): a real install needs the new requirements file")
        if planned_key != previous_requirements_key:
            result.update(reason="the new version's requirement set differs from the installed one",
                          would_run_pip=True, changed=True)
            return _done(result, begin)
    if not os.path.isfile(requirements):
        result["reason"] = "%s does not exist: nothing to install" % requirements
        return _done(result, begin)
    sha = sha256_file(requirements)
    result["requirements_sha256"] = sha
    unsatisfied = unsatisfied_requirements(python, requirements)
    result["unsatisfied"] = unsatisfied
    # requirement SET, not bytes (module_utils/requirements.py)
    same_set = previous_requirements_key is not None and requirements_file_key(requirements) == previous_requirements_key
    if (sha == previous_requirements_sha256 or same_set) and not unsatisfied:
        result["reason"] = "requirements.txt unchanged and every requirement installed"
        if sha != previous_requirements_sha256:
            result["reason"] = "requirement set unchanged (only comments, blank lines or order differ) and every requirement installed"
        return _done(result, begin)
    reasons = []
    if not previous_requirements_sha256:
        reasons.append("no previous requirements hash recorded")
    elif sha != previous_requirements_sha256:
        reasons.append("requirements.txt changed (%s... -> %s...)" % (previous_requirements_sha256[:12], sha[:12]))
    if unsatisfied:
        reasons.append("%d requirement(s) not installed: %s" % (len(unsatisfied), ", ".join(unsatisfied[:10])))
    result.update(reason="; ".join(reasons), would_run_pip=True, changed=True)
    if check:
        return _done(result, begin)
    argv = [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", requirements] + list(pip_args)
    output = _run_pip(argv, home, timeout, env)
    result.update(pip_ran=True, pip_output_tail=_tail(output))
    still = unsatisfied_requirements(python, requirements)
    if still:
        raise DependencyError("pip finished but %d requirement(s) are still not satisfied in %s: %s — check "
                              "praxis_pip_args (wheelhouse/index), then re-run the upgrade or roll back with %s"
                              % (len(still), python, ", ".join(still[:10]), ROLLBACK_HINT), _tail(output))
    for command in post_install_commands:
        result["warnings"].extend(_post_install(list(command), os.path.dirname(home), timeout, env))
    return _done(result, begin)


def run_venv_tool(argv: List[str], cwd: str, env: Dict[str, str], timeout: float,
                  fault: str) -> Tuple[Optional[int], str]:
    """Run a tool of the venv (pip, the index builder) in this process group - a killed run takes it
    along - and tied to this module (it dies with it: no writer outlives a killed module), with stdout and
    stderr captured together; (exit code, output), exit code None when it ran
    out of time (it was killed). OSError when it cannot start. ``fault``: its fault point's name."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=tied_to_module())
    faults.fault_point(fault)
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return None, proc.communicate()[0].decode("utf-8", "replace")
    return proc.returncode, out.decode("utf-8", "replace")


def _run_pip(argv: List[str], cwd: str, timeout: float, env: Optional[Dict[str, object]]) -> str:
    shown = " ".join(argv)
    try:
        code, text = run_venv_tool(argv, cwd, venv_tool_env(env), timeout, "server.during_pip")
    except OSError as exc:
        raise DependencyError("cannot run `%s`: %s — the venv is broken; restore it with %s"
                              % (shown, exc, ROLLBACK_HINT))
    if code is None:
        raise DependencyError("`%s` did not finish within %g s (killed); the index may be unreachable — set "
                              "praxis_pip_args (e.g. --no-index --find-links DIR) and re-run, or roll back "
                              "with %s" % (shown, timeout, ROLLBACK_HINT), _tail(text))
    if code != 0:
        raise DependencyError("`%s` failed with exit %d; last output:\n%s\nNext: fix the index/wheelhouse in "
                              "praxis_pip_args and re-run the upgrade, or roll back with %s"
                              % (shown, code, _tail(text, 1200), ROLLBACK_HINT), _tail(text))
    return text


def _post_install(argv: List[str], cwd: str, timeout: float, env: Optional[Dict[str, object]]) -> List[str]:
    """Run one optional post-install step; failures become warnings."""
    shown = " ".join(argv)
    try:
        done = subprocess.run(argv, cwd=cwd, env=venv_tool_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False, preexec_fn=tied_to_module())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ["optional post-install step `%s` did not run: %s (the upgrade continues)" % (shown, exc)]
    if done.returncode != 0:
        return ["optional post-install step `%s` failed with exit %d: %s (the upgrade continues)"
                % (shown, done.returncode, _tail(done.stdout.decode("utf-8", "replace"), 500))]
    return []


def _done(result: dict, begin: float) -> dict:
    result["duration_s"] = round(time.monotonic() - begin, 3)
    return result
