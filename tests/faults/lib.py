"""The fault-matrix machinery: prepared installations, full-tree manifests, runs that can be killed, verdicts.

Everything here drives the real `ansible-playbook` (like tests/harness.py) against fixture installations
copied with `cp -a` from one prepared installation (tests/fixtures/praxis_fixture), and judges the end
state of each case against two full-tree manifests: OLD (the installation before any run) and NEW (an
identical installation after a reference upgrade that succeeded). See tests/faults/__init__.py for what
a manifest holds and which volatile runtime files it leaves out, and why.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tests import proctree
from tests.fixtures import praxis_fixture as fx
from tests.fixtures.praxis_fixture.venvs import _relocate
from tests.harness import BIN, REPO, ansible_env

HERE = Path(__file__).resolve().parent
CALLBACKS = HERE / "callback_plugins"
PROJECT = "app"  # every case's project has this name, so config.json (it records the name) is comparable
HOME = ".praxis-os"
VERSIONS = ("v1", "v2", "v2-crash", "v2-pipfail")
PLACEHOLDER = b"<PROJECT>"

# ---- what a manifest leaves out (see the package docstring for the reasons) ----------------------------
VOLATILE_EXACT = {
    f"{HOME}/.cache/mcp_server.log",          # the server's log: appended by every start and stop
    f"{HOME}/.mcp_server_state.json",         # pid/port/start time of the running server: judged by the server check
    f"{HOME}/.upgrade-lock",                  # the lock: judged by the leftover check (must be gone)
}
VOLATILE_PREFIX = (
    f"{HOME}/.cache/facts.d/",                # the session facts file: ids and timestamps of this run
    f"{HOME}/.backups/",                      # backups: timestamped per session, pruned by count
)
# bytecode inside the venv: pip compiles it and a rollback restores the venv from its snapshot, but the
# product promises byte-identical bytecode only outside the venv (ARCHITECTURE "Runtime residue")
VENV_BYTECODE = re.compile(rf"^{re.escape(HOME)}/venv/(.*/)?(__pycache__(/|$)|[^/]*\.pyc$)")
VOLATILE_RE = re.compile(
    rf"^{re.escape(HOME)}/\.cache/upgrade-summary-[^/]*$"  # the per-run summary reports
)
# "refused before any change" compares everything but the venv's bytecode and the server's log (the
# preflight probe talks to the running server, which logs the request)
STRICT_SKIP = re.compile(rf"^{re.escape(HOME)}/\.cache/mcp_server\.log$")
# Cases and their servers run like a real host's: python writes bytecode (the test environment sets
# PYTHONDONTWRITEBYTECODE; an empty value turns it off)
WRITE_BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}
# Records whose lines carry the time and the session of the run that wrote them: compared with those
# values replaced, so "the same records, written by another run" compares equal.
# (the index's metadata.json too: every build rewrites it with its build time)
RECORDS = {f"{HOME}/VERSION.txt", f"{HOME}/UPDATE_LOG.txt", f"{HOME}/INSTALLATION_SUMMARY.md",
           f"{HOME}/.cache/vector_index/metadata.json"}
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?|\d{8}T\d{6}Z(-[0-9a-f]+)?"
                       rb"|\d{4}-\d\d-\d\d-\d{6}(-\d+)?")
# runtime junk a run must not leave behind
LEFTOVER_RE = re.compile(r"\.(new|old)-[^/]*$|\.tmp$|(^|/)\.[^/]+\.tmp(/|$)|^\.praxis-os/\.cache/upgrade(/|$)"
                         r"|^\.praxis-os/\.cache/praxis-source-[^/]*$|^\.praxis-os/\.upgrade-lock$")


def volatile(rel: str) -> bool:
    return (rel in VOLATILE_EXACT or rel.startswith(VOLATILE_PREFIX) or rel + "/" in VOLATILE_PREFIX
            or bool(VOLATILE_RE.search(rel)) or bool(VENV_BYTECODE.search(rel)))


def _bytecode(path: Path) -> str:
    """What a .pyc was compiled from, not its bytes (they hold the absolute path it was compiled at):
    `fresh` when its header names its source's current mtime and size, `stale` when not (bytecode of
    another version of the source), `orphan` when the source is gone."""
    try:
        source = Path(importlib.util.source_from_cache(str(path)))
    except ValueError:  # not below a __pycache__/ (a legacy or sourceless .pyc): compare its bytes
        return hashlib.sha256(path.read_bytes()).hexdigest()
    with open(path, "rb") as handle:
        header = handle.read(16)
    flags, mtime, size = (int.from_bytes(header[i:i + 4], "little") for i in (4, 8, 12))
    try:
        info = source.stat()
    except OSError:
        return f"bytecode orphan {header[:4].hex()}"
    if flags & 1:  # hash-based bytecode (PEP 552): the source hash is in place of mtime and size
        fresh = header[8:16] == importlib.util.source_hash(source.read_bytes())
    else:
        fresh = (mtime, size) == (int(info.st_mtime) & 0xFFFFFFFF, info.st_size & 0xFFFFFFFF)
    return f"bytecode {'fresh' if fresh else 'stale'} {header[:4].hex()}"


def _digest(data: bytes, project: Path, rel: str) -> str:
    data = data.replace(str(project).encode(), PLACEHOLDER)
    if rel in RECORDS:
        data = TIMESTAMP.sub(b"<TIME>", data)
    return hashlib.sha256(data).hexdigest()


def walk(project: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    for current, dirs, files in os.walk(project):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(current) / name
            yield path.relative_to(project).as_posix(), path, path.lstat()


def manifest(project: Path, strict: bool = False) -> dict[str, str]:
    """Full-tree manifest of a project: {rel: "sha mode" | "-> target mode" | "dir mode"} plus `pip freeze`.

    Every file, directory and symlink (as a link) below the project, the venv included; file contents
    with the project's own absolute path replaced (venv scripts and pyvenv.cfg name it), so installations
    at different paths compare; bytecode outside the venv by what it was compiled from (`_bytecode`).
    `strict=False` leaves out VOLATILE paths; `strict=True` only the venv's bytecode and the server's log
    (for "refused before any change").
    """
    project = Path(project)
    result: dict[str, str] = {}
    for rel, path, info in walk(project):
        if volatile(rel) if not strict else bool(STRICT_SKIP.search(rel) or VENV_BYTECODE.search(rel)):
            continue
        mode = oct(stat.S_IMODE(info.st_mode))
        if stat.S_ISLNK(info.st_mode):
            result[rel] = f"-> {os.readlink(path).replace(str(project), '<PROJECT>')} {mode}"
        elif stat.S_ISDIR(info.st_mode):
            result[rel + "/"] = f"dir {mode}"
        elif stat.S_ISREG(info.st_mode):
            try:
                value = _bytecode(path) if rel.endswith(".pyc") else _digest(path.read_bytes(), project, rel)
                result[rel] = f"{value} {mode}"
            except OSError as exc:
                result[rel] = f"unreadable ({exc.strerror}) {mode}"
        else:
            result[rel] = f"special {oct(info.st_mode)}"
    result["<pip freeze>"] = pip_freeze(project)
    return result


def pip_freeze(project: Path) -> str:
    python = Path(project) / HOME / "venv" / "bin" / "python"
    try:
        proc = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                              capture_output=True, text=True, check=False, timeout=120)
    except OSError as exc:
        return f"pip freeze failed ({exc.strerror})"
    if proc.returncode != 0:
        return f"pip freeze failed ({proc.returncode})"
    return ",".join(sorted(proc.stdout.split()))


def diff(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(rel for rel in set(a) | set(b) if a.get(rel) != b.get(rel))


def classify(now: dict[str, str], old: dict[str, str], new: dict[str, str]) -> tuple[str, list[str]]:
    """("OLD" | "NEW" | "MIXED", differing paths against the nearer of the two)."""
    to_old, to_new = diff(now, old), diff(now, new)
    if not to_old:
        return "OLD", []
    if not to_new:
        return "NEW", []
    return "MIXED", (to_old if len(to_old) <= len(to_new) else to_new)


# ---- the prepared installations, built once per session and shared by the xdist workers ------------------

@dataclass
class Prepared:
    root: Path
    sources: dict[str, Path]
    old: Path                      # the OLD installation (project dir), never run against
    ref: Path                      # the reference installation (upgraded, then rolled back)
    data: dict[str, Any]           # manifests, task lists, timings

    @property
    def old_manifest(self) -> dict[str, str]:
        return self.data["old"]

    @property
    def new_manifest(self) -> dict[str, str]:
        return self.data["new"]


def prepare(root: Path) -> Prepared:
    """Build (once, under a file lock) sources, the OLD installation and the NEW reference."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sources = {v: root / "sources" / v for v in VERSIONS}
        done = root / "prepared.json"
        if not done.exists():
            for version, dest in sources.items():
                if not dest.exists():
                    fx.make_source(dest, version)
                subprocess.run(["git", "-C", str(dest), "update-index", "-q", "--refresh"], check=False)
            old = root / "old" / PROJECT
            shutil.rmtree(old.parent, ignore_errors=True)
            fx.install(sources["v1"], old, fx.wheelhouse())
            # a host whose server has run: its bytecode is part of the installation a rollback must restore
            fx.start_http_server(old, env=WRITE_BYTECODE)
            fx.stop_server(old)
            data: dict[str, Any] = {"old": manifest(old)}
            ref_case = Case(root / "ref", sources, "ref")
            ref = ref_case.install(old, http=True)
            log = ref_case.dir / "tasks-upgrade.jsonl"
            started = time.monotonic()
            proc = ref_case.run("upgrade.yml", "v2", env={"PRAXIS_TEST_TASK_LOG": str(log)})
            data["upgrade_s"] = round(time.monotonic() - started, 1)
            if proc.returncode != 0:
                raise RuntimeError(f"reference upgrade failed:\n{proc.output[-6000:]}")
            data["new"] = manifest(ref.project)
            data["upgrade_events"] = [json.loads(line) for line in log.read_text().splitlines()]
            data["ref_new_server"] = ref_case.server_report(ref, "v2")
            log = ref_case.dir / "tasks-rollback.jsonl"
            started = time.monotonic()
            proc = ref_case.run("rollback.yml", env={"PRAXIS_TEST_TASK_LOG": str(log)})
            data["rollback_s"] = round(time.monotonic() - started, 1)
            if proc.returncode != 0:
                raise RuntimeError(f"reference rollback failed:\n{proc.output[-6000:]}")
            data["rollback_events"] = [json.loads(line) for line in log.read_text().splitlines()]
            data["ref_rollback_state"] = classify(manifest(ref.project), data["old"], data["new"])
            ref_case.stop_servers()
            done.write_text(json.dumps(data))
        data = json.loads(done.read_text())
        return Prepared(root, sources, root / "old" / PROJECT, root / "ref" / "h" / PROJECT, data)


# ---- one case: its own directory, installations copied from the prepared one, runs, verdict ---------------

@dataclass
class Run:
    argv: list[str]
    returncode: int
    output: str
    killed: str = ""
    seconds: float = 0.0


@dataclass
class Install:
    name: str
    project: Path
    http: bool

    @property
    def home(self) -> Path:
        return self.project / HOME


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def kill_run(pid: int) -> None:
    """SIGKILL a run like a crashed controller: its process tree (not detached servers) and its group."""
    proctree.kill_run(pid, spare=proctree.is_server)


def project_processes(project: Path) -> list[tuple[int, list[str]]]:
    """Live processes that belong to `project`: cwd inside it or its path on the command line."""
    project_s = str(project)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        if not fx.pid_alive(pid):
            continue
        argv, cwd = proctree.cmdline(pid), _cwd(pid)
        if cwd == project_s or cwd.startswith(project_s + "/") or any(project_s in a for a in argv):
            found.append((pid, argv))
    return found


def servers_of(project: Path) -> list[int]:
    return sorted(pid for pid, argv in project_processes(project) if proctree.is_server_argv(argv) and _cwd(pid) == str(project))


class Case:
    """A case directory: installations, an inventory, runs of the real playbooks."""

    def __init__(self, workdir: Path, sources: dict[str, Path], name: str) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sources = sources
        self.name = name
        self.installs: list[Install] = []
        self.runs: list[Run] = []

    def install(self, template: Path, http: bool = True, alias: str = "h", project: Path | None = None) -> Install:
        """cp -a the prepared installation into this case (venv relocated), optionally start its http server."""
        project = Path(project or self.dir / alias / PROJECT)
        project.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(template), str(project)], check=True)
        _relocate(project / HOME / "venv", template / HOME / "venv")
        inst = Install(alias, project, http)
        if http:
            fx.start_http_server(project, env=WRITE_BYTECODE)
        self.installs.append(inst)
        return inst

    def inventory(self, installs: list[Install] | None = None, **group_vars: Any) -> Path:
        installs = self.installs if installs is None else installs
        hosts = {i.name: {"ansible_connection": "local", "praxis_project_dir": str(i.project)} for i in installs}
        variables: dict[str, Any] = {
            "ansible_python_interpreter": sys.executable,
            "praxis_pip_args": ["--no-index", "--find-links", str(fx.wheelhouse())],
            "praxis_report_dir": str(self.dir / "reports"),
            "praxis_health_timeout": 30,
        }
        if installs and all(i.http for i in installs):
            variables["praxis_server_mode"] = "process"
        variables.update(group_vars)
        path = self.dir / f"inventory-{len(self.runs)}.json"
        path.write_text(json.dumps({"praxis": {"hosts": hosts, "vars": variables}}, indent=2))
        return path

    def command(self, playbook: str, version: str | None = None, extra: dict[str, Any] | None = None,
                installs: list[Install] | None = None, args: tuple[str, ...] = (), **group_vars: Any) -> list[str]:
        extra = dict(extra or {})
        if version is not None:
            extra.setdefault("praxis_source", str(self.sources[version]))
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory(installs, **group_vars)),
                str(REPO / "playbooks" / playbook), *args]
        if extra:
            argv += ["-e", json.dumps(extra)]
        return argv

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return ansible_env({"ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
                            "ANSIBLE_CALLBACKS_ENABLED": "praxis_fault_kill", **WRITE_BYTECODE, **(extra or {})})

    def start(self, playbook: str, version: str | None = None, env: dict[str, str] | None = None,
              **kwargs: Any) -> tuple[subprocess.Popen[str], list[str], Path]:
        argv = self.command(playbook, version, **kwargs)
        out = self.dir / f"run-{len(self.runs)}-{playbook}.log"
        self.runs.append(Run(argv, -999, ""))
        handle = open(out, "w")  # noqa: SIM115 - closed by finish()
        proc = subprocess.Popen(argv, cwd=self.dir, env=self.env(env), text=True, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc._fault_handle = handle  # type: ignore[attr-defined]
        proc._fault_started = time.monotonic()  # type: ignore[attr-defined]
        return proc, argv, out

    def finish(self, proc: subprocess.Popen[str], argv: list[str], out: Path, timeout: float = 300,
               mark: Path | None = None) -> Run:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_run(proc.pid)
            proc.wait()
        proc._fault_handle.close()  # type: ignore[attr-defined]
        killed = ""
        if mark is not None and mark.exists():
            killed = json.loads(mark.read_text())["killed_at"]
        run = Run(argv, proc.returncode, out.read_text(errors="replace"), killed,
                  round(time.monotonic() - proc._fault_started, 1))  # type: ignore[attr-defined]
        for index, old in enumerate(self.runs):
            if old.argv is argv:
                self.runs[index] = run
        # a killed controller leaves orphaned module processes behind only for a moment: let them finish
        # or die before anyone looks at the tree (they are not servers; servers are judged separately)
        return run

    def run(self, playbook: str, version: str | None = None, env: dict[str, str] | None = None,
            kill_after: float | None = None, kill_at: str | None = None, timeout: float = 300,
            **kwargs: Any) -> Run:
        """Run a playbook to its end; `kill_at` = "<start|end>:<n>[:<anchor>]" (callback) or `kill_after` s."""
        env = dict(env or {})
        mark = None
        if kill_at:
            mark = self.dir / f"kill-mark-{len(self.runs)}.json"
            env.update({"PRAXIS_TEST_KILL": kill_at, "PRAXIS_TEST_KILL_MARK": str(mark)})
        proc, argv, out = self.start(playbook, version, env=env, **kwargs)
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                kill_run(proc.pid)
                mark = self.dir / f"kill-mark-{len(self.runs)}-time.json"
                mark.write_text(json.dumps({"killed_at": f"{kill_after}s"}))
        run = self.finish(proc, argv, out, timeout=timeout, mark=mark)
        if run.killed:
            settle(self.installs)
        return run

    # ---- judging ----------------------------------------------------------------------------------------
    def server_report(self, inst: Install, version: str | None) -> dict[str, Any]:
        """Servers of `inst`: pids, the state file's pid, MCP health and tools (against `version`'s)."""
        pids = servers_of(inst.project)
        report: dict[str, Any] = {"pids": pids, "healthy": False, "tools_ok": False}
        state = fx.read_state(inst.project)
        report["state_pid"] = state.get("pid") if state else None
        if state and state.get("url"):
            from ansible_collections.praxis.upgrade.plugins.module_utils import mcp_client
            try:
                health = mcp_client.probe("http", url=state["url"], timeout=20)
            except Exception as exc:  # noqa: BLE001 - any failure is "not healthy", reported
                health = {"healthy": False, "errors": [repr(exc)]}
            report["healthy"] = bool(health.get("healthy"))
            report["tools"] = sorted(health.get("tools") or [])
            if version in fx.EXPECTED_TOOLS:
                report["tools_ok"] = report["tools"] == sorted(fx.EXPECTED_TOOLS[version])
            report["errors"] = health.get("errors")
        return report

    def stop_servers(self) -> None:
        for inst in self.installs:
            for pid in servers_of(inst.project):
                try:
                    fx.stop_server(inst.project, pid=pid)
                except fx.FixtureError:
                    pass


def settle(installs: list[Install], timeout: float = 60) -> None:
    """Wait until no process of these projects but their servers runs (orphans of a killed run finish)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [p for i in installs for p, argv in project_processes(i.project) if not proctree.is_server_argv(argv)]
        if not busy:
            return
        time.sleep(0.2)


def leftovers(inst: Install) -> list[str]:
    """Staging, swap and temp residue, a held lock, an unfinished session, stray processes of the project."""
    found: list[str] = []
    for rel, _path, _info in walk(inst.project):
        if LEFTOVER_RE.search(rel) and "/venv/" not in f"/{rel}" and not any(rel.startswith(f + "/") for f in found):
            found.append(rel)
    state_path = inst.home / ".cache" / "facts.d" / "praxis_upgrade.fact"
    try:
        status = json.loads(state_path.read_text()).get("status") if state_path.exists() else None
    except (OSError, ValueError):
        status = "unreadable"
    if status not in (None, "completed", "rolled_back", "failed"):
        found.append(f"session status {status!r}")
    for pid, argv in project_processes(inst.project):
        if not proctree.is_server_argv(argv):
            found.append(f"process {pid}: {' '.join(argv)[:120]}")
    return found


@dataclass
class Verdict:
    end_state: str
    mixed_paths: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def user_files(prepared: Prepared) -> list[str]:
    """The user's own files of the fixture installation (never modified by an upgrade or a rollback)."""
    owned = ("specs/", "standards/development/", "workspace/", "config.json", "usage/my-notes.md",
             "workflows/my_custom_workflow/", "standards/universal/team/")
    return sorted(rel for rel in prepared.old_manifest
                  if rel.startswith(HOME + "/") and rel[len(HOME) + 1:].startswith(owned) and not rel.endswith("/"))


def judge(case: Case, inst: Install, prepared: Prepared, allowed: tuple[str, ...] = ("OLD", "NEW"),
          server: bool | None = None) -> Verdict:
    """The end state of `inst` against OLD/NEW, user files, exactly one healthy server, leftovers."""
    settle([inst])
    now = manifest(inst.project)
    # leftovers (staging, the shipped archive, swap dirs, temp files) are judged by the leftover check below;
    # the end state is the rest of the tree
    kept = {rel: value for rel, value in now.items() if not LEFTOVER_RE.search(rel.rstrip("/"))}
    end, paths = classify(kept, prepared.old_manifest, prepared.new_manifest)
    verdict = Verdict(end, paths)
    if end == "MIXED":
        verdict.problems.append(f"MIXED: {', '.join(paths[:8])}{' …' if len(paths) > 8 else ''}")
    elif end not in allowed:
        verdict.problems.append(f"ended {end}, expected {' or '.join(allowed)}")
    changed_user = [rel for rel in user_files(prepared) if now.get(rel) != prepared.old_manifest.get(rel)]
    if changed_user:
        verdict.problems.append(f"user files changed: {', '.join(changed_user)}")
    if server if server is not None else inst.http:
        version = {"OLD": "v1", "NEW": "v2"}.get(end)
        report = case.server_report(inst, version)
        if len(report["pids"]) != 1:
            verdict.problems.append(f"{len(report['pids'])} servers of this project running {report['pids']}")
        elif report["state_pid"] != report["pids"][0]:
            verdict.problems.append(f"state file names pid {report['state_pid']}, server is {report['pids'][0]}")
        if not report["healthy"]:
            verdict.problems.append(f"server not healthy: {report.get('errors')}")
        elif version and not report["tools_ok"]:
            verdict.problems.append(f"server tools {report.get('tools')} are not {version}'s")
    left = leftovers(inst)
    if left:
        verdict.problems.append(f"leftovers: {', '.join(left[:6])}")
    return verdict


def error_text(output: str) -> str:
    """Only the failure messages of a run (fatal task results and ERROR! lines), not task names."""
    blocks, current = [], None
    for line in output.splitlines():
        if re.match(r"^(fatal|failed): \[|^ERROR!|^\[ERROR\]|^An exception occurred", line) or "FAILED!" in line:
            current = [line]
            blocks.append(current)
        elif current is not None:
            if re.match(r"^(TASK|PLAY|RUNNING HANDLER|NO MORE HOSTS|\.\.\.ignoring)", line):
                current = None
            else:
                current.append(line)
    return "\n".join("\n".join(b) for b in blocks)


def error_summary(output: str, limit: int = 300) -> str:
    """The `msg` of the failures of a run (or the tail of the failure text), for a matrix cell."""
    text = error_text(output)
    msgs: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^( *)msg: (.*)$", line)
        if match:  # a YAML `msg:` and its continuation lines (indented deeper than the key)
            parts = [match.group(2)]
            for more in lines[index + 1:]:
                if len(more) - len(more.lstrip(" ")) <= len(match.group(1)) or not more.strip():
                    break
                parts.append(more.strip())
            msgs.append(" ".join(parts).strip("'\""))
    msgs += re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', text)
    msgs += [line for line in text.splitlines() if line.startswith("ERROR!")]
    found = " / ".join(" ".join(m.split()) for m in msgs) or " ".join(text.split()[-60:])
    return found[:limit]


# an imperative that tells the operator what to do ("Next: ...", "set praxis_x to ...", "point ... at ...")
NEXT_STEP = re.compile(r"\b(next|re-?run|fix|run|use|set|remove|choose|give|check|restore|wait|rename|install|clone|"
                       r"point|pass|provide|create|commit|stash|move|replace|delete|add|list|try|stop|free|make|"
                       r"correct|unset|drop)\b", re.IGNORECASE)


def refused(case: Case, inst: Install, before: dict[str, str], run: Run, cause: tuple[str, ...],
            server_pid: int | None = None) -> Verdict:
    """"Refused before any change": non-zero exit, the tree strictly unchanged, a message naming the cause
    (every item of `cause`, case-insensitive, "a|b" = either) and a next step, the server (if any) the same healthy pid."""
    settle([inst])
    after = manifest(inst.project, strict=True)
    changed = diff(before, after)
    verdict = Verdict("OLD (unchanged)" if not changed else "CHANGED", changed)
    if run.returncode == 0:
        verdict.problems.append("accepted (exit 0), expected a refusal")
    if changed:
        verdict.problems.append(f"tree changed: {', '.join(changed[:8])}{' …' if len(changed) > 8 else ''}")
    text = error_text(run.output)
    missing = [w for w in cause if not any(alt.lower() in text.lower() for alt in w.split("|"))]
    if run.returncode != 0 and missing:
        verdict.problems.append(f"message does not name {missing}: {error_summary(run.output) or run.output[-300:]}")
    if run.returncode != 0 and not NEXT_STEP.search(text):
        verdict.problems.append(f"message names no next step: {error_summary(run.output)}")
    if server_pid is not None:
        report = case.server_report(inst, None)
        if report["pids"] != [server_pid] or not report["healthy"]:
            verdict.problems.append(f"server changed: pids {report['pids']} (was {server_pid}), "
                                    f"healthy {report['healthy']}")
    # a lock or a session record the case itself planted (and the run rightly left alone) is not a leftover;
    # any change to them is caught by the strict tree comparison above
    planted = {x for x in ("session status", ".upgrade-lock")
               if (x == ".upgrade-lock" and f"{HOME}/.upgrade-lock" in before)
               or (x == "session status" and f"{HOME}/.cache/facts.d/praxis_upgrade.fact" in before)}
    verdict.problems += [f"leftover {x}" for x in leftovers(inst) if not any(p in x for p in planted)]
    return verdict
