"""The benchmark cases; each returns a dict of raw numbers (seconds, phases, tasks, probes)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import padding, runs, sshfleet
from bench.cpu import CpuMeter
from bench.probe import Probe
from bench.report import slope
from tests.harness import BIN, COLLECTIONS, REPO, ansible_env


def _phases_and_tasks(tasks: list[dict[str, Any]], host: str = "h00") -> dict[str, Any]:
    mine = [t for t in runs.module_tasks(tasks) if t["host"] in (host, "localhost")]
    return {"phases": runs.phase_costs(tasks, host),
            "tasks": [{k: t[k] for k in ("task", "role", "action", "seconds", "wall_start")} for t in mine]}


def _marks(tasks: list[dict[str, Any]], wall0: float) -> list[tuple[float, float, str]]:
    """Phase spans (seconds since the probe started) for the timeline chart."""
    spans: dict[str, list[float]] = {}
    for task in runs.module_tasks(tasks):
        phase = task["role"].rsplit(".", 1)[-1] or "source"
        start = task["wall_start"] - wall0
        span = spans.setdefault(phase, [start, start + task["seconds"]])
        span[0], span[1] = min(span[0], start), max(span[1], start + task["seconds"])
    return [(round(a, 2), round(b, 2), name) for name, (a, b) in spans.items()]


def fixture_case() -> dict[str, Any]:
    """One fixture installation: upgrade, no-op, --check, rollback vs the bare shell procedure."""
    seconds: dict[str, float] = {}
    upgrade_fleet, check_fleet, shell_fleet = (runs.fresh_fleet("fixture-" + n) for n in ("upgrade", "check", "shell"))
    try:
        with Probe(shell_fleet.hosts[0].home) as shell_probe:
            seconds["shell procedure (+ first answer)"] = runs.shell_procedure(shell_fleet)
        with Probe(upgrade_fleet.hosts[0].home) as upgrade_probe:
            seconds["upgrade"], tasks = runs.upgrade_timed(upgrade_fleet, "upgrade")
        seconds["no-op re-run"] = runs.upgrade_timed(upgrade_fleet, "noop")[0]
        seconds["--check --diff"] = runs.upgrade_timed(check_fleet, "check", "--check", "--diff")[0]
        seconds["rollback.yml"] = runs.playbook_timed(upgrade_fleet, "rollback.yml", "rollback")[0]
    finally:
        for fleet in (upgrade_fleet, check_fleet, shell_fleet):
            fleet.stop()
    return dict(seconds=seconds, **_phases_and_tasks(tasks),
                downtime={"upgrade": upgrade_probe.summary(), "shell": shell_probe.summary()},
                marks={"upgrade": _marks(tasks, upgrade_probe.wall0)})


def index_rebuild_seconds(log: Path) -> float | None:
    """Seconds of the first index rebuild the server log shows (the fixture server logs
    "<flag> found: rebuilding ..." and "<flag> removed: ..."), None when it shows none."""
    stamps: dict[str, float] = {}
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        for key, words in (("found", ".rebuild_index found"), ("removed", ".rebuild_index removed")):
            if words in line and key not in stamps and ("found" in stamps or key == "found"):
                try:
                    stamps[key] = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    pass
    if "found" in stamps and "removed" in stamps:
        return round(stamps["removed"] - stamps["found"], 3)
    return None


def prebuild_seconds(home: Path) -> float | None:
    """Seconds the server phase spent building the new search index before the old server stopped
    (the session's server evidence, index_rebuild.prebuild.duration_s), None when it built none."""
    try:
        session = json.loads((home / ".cache" / "facts.d" / "praxis_upgrade.fact").read_text(encoding="utf-8"))
        value = session["phases"]["server"]["evidence"]["index_rebuild"]["prebuild"]["duration_s"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


SNAPSHOT_TIMER = """
import sys, time
from ansible_collections.praxis.upgrade.plugins.module_utils.backup import snapshot_venv
started = time.monotonic()
snapshot_venv(sys.argv[1], sys.argv[2])
print(time.monotonic() - started)
"""


def snapshot_vs_cp(venv: Path, workdir: Path, repeats: int) -> dict[str, float]:
    """`cp -al` of the venv and the collection's own snapshot (`backup.snapshot_venv`, the code praxis_backup
    runs, timed inside its process) under the same conditions: idle, warm cache, interleaved, best of
    `repeats` each."""
    copy = workdir / "snapshot-vs-cp"
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    cp, ours = [], []
    for _attempt in range(repeats):
        cp.append(runs.timed_cmd(["cp", "-al", str(venv), str(copy)]))
        shutil.rmtree(copy)
        out = subprocess.run([str(BIN / "python"), "-c", SNAPSHOT_TIMER, str(venv), str(copy)], env=env,
                             check=True, capture_output=True, text=True).stdout
        ours.append(float(out.strip().splitlines()[-1]))
        shutil.rmtree(copy)
    return {"cp -al venv": min(cp), "the collection's venv snapshot, same conditions (backup.snapshot_venv)": min(ours)}


def scale_case(cache: Path, files: int, total: int) -> dict[str, Any]:
    """A venv padded to real size: upgrade (probed), bare restart, cp -al vs backup, rollback, shell."""
    pad = padding.venv_padding(cache, files, total)

    def prepare(project: Path) -> None:
        padding.link_into(pad, padding.site_packages(project / ".praxis-os" / "venv"))

    seconds: dict[str, float] = {}
    fleet = runs.fresh_fleet("scale", prepare=prepare)
    shell_fleet = runs.fresh_fleet("scale-shell", prepare=prepare)
    host = fleet.hosts[0]
    venv_files, venv_bytes = padding.tree_size(host.home / "venv")
    try:
        seconds.update(snapshot_vs_cp(host.home / "venv", fleet.workdir, repeats=3))
        with Probe(host.home) as upgrade_probe:
            seconds["upgrade"], tasks = runs.upgrade_timed(fleet, "upgrade")
        prebuilt = prebuild_seconds(host.home)
        if prebuilt is not None:
            seconds["new search index built before the stop (old server serving; not downtime)"] = prebuilt
        restart = runs.bare_restart(host.project)
        seconds["bare stop + start + first answer (median)"] = restart["median"]
        seconds["rollback.yml"], rollback_tasks = runs.playbook_timed(fleet, "rollback.yml", "rollback")
        with Probe(shell_fleet.hosts[0].home) as shell_probe:
            seconds["shell procedure (+ first answer)"] = runs.shell_procedure(shell_fleet)
    finally:
        fleet.stop()
        shell_fleet.stop()
    taken = [t for t in tasks if t["action"].endswith("praxis_backup") and t["role"].endswith(".backup")
             and t["status"] == "ok"]  # the backup phase's task, not the cleanup's prune (same module)
    if taken:
        seconds["praxis_backup task (venv snapshot)"] = sum(t["seconds"] for t in taken)
    inner = [t["module_duration_s"] for t in taken if "module_duration_s" in t]
    if inner:
        seconds["praxis_backup module duration_s (pip freeze + trees + venv links + verify)"] = sum(inner)
    snapshot = [t["module_timings"]["venv_snapshot_s"] for t in taken
                if isinstance(t.get("module_timings", {}).get("venv_snapshot_s"), (int, float))]
    if snapshot:
        seconds["venv snapshot inside praxis_backup (timings.venv_snapshot_s)"] = sum(snapshot)
    rebuild = index_rebuild_seconds(host.home / ".cache" / "mcp_server.log")
    if rebuild is not None:
        seconds["new server's index rebuild (its log)"] = rebuild
    return dict(seconds=seconds, venv={"files": venv_files, "bytes": venv_bytes}, restart=restart,
                **_phases_and_tasks(tasks), rollback_phases=runs.phase_costs(rollback_tasks, "h00"),
                downtime={"upgrade": upgrade_probe.summary(), "shell": shell_probe.summary()},
                marks={"upgrade": _marks(tasks, upgrade_probe.wall0)},
                note="venv padded to %d files / %.2f GB (hard links to real data cached under .cache/bench)"
                     % (venv_files, venv_bytes / 1e9))


def user_content_case(cache: Path, files: int, total: int, repeats: int) -> dict[str, Any]:
    """The same upgrade with and without `files` user files (specs/ + a user workflow) in the installation."""
    tree = padding.user_content(cache, files, total)

    def prepare(project: Path) -> None:
        padding.link_into(tree, project / ".praxis-os")

    plain: list[float] = []
    big: list[float] = []
    phases: dict[str, Any] = {}
    for i in range(repeats):
        for label, prep, out in (("plain", None, plain), ("big", prepare, big)):
            fleet = runs.fresh_fleet("user-content-" + label, prepare=prep)
            try:
                seconds, tasks = runs.upgrade_timed(fleet, label)
            finally:
                fleet.stop()
            out.append(seconds)
            phases[label] = runs.phase_costs(tasks, "h00")
    files_made, bytes_made = padding.tree_size(tree)
    return {"seconds": {"upgrade without user content (best)": min(plain),
                        "upgrade with user content (best)": min(big)},
            "runs": {"plain": plain, "big": big}, "phases_by_run": phases,
            "user_content": {"files": files_made, "bytes": bytes_made},
            "note": "%d user files / %.2f GB under .praxis-os/specs/ and workflows/bench_user_workflow/; "
                    "best of %d run(s) each" % (files_made, bytes_made / 1e9, repeats)}


def fleet_case(sizes: list[int], repeats: int = 1) -> dict[str, Any]:
    """Local installations, forks = hosts, praxis_serial 100%: seconds and CPU seconds per run, best of `repeats`
    per size (the sizes interleaved, so a slow minute of the machine does not land on one size only)."""
    runs_of: dict[int, list[dict[str, Any]]] = {hosts: [] for hosts in sizes}
    why = ""
    phases: dict[str, Any] = {}
    for _attempt in range(max(1, repeats)):
        for hosts in sizes:
            fleet = runs.fresh_fleet("fleet-%d" % hosts, hosts=hosts)
            try:
                # an extra var: Ansible decides `serial` before inventory variables exist (praxis_inputs warns)
                with CpuMeter() as meter:
                    seconds, tasks = runs.upgrade_timed(fleet, "fleet", "--forks", str(max(1, hosts)),
                                                        extra={"praxis_serial": ["100%"]})
            finally:
                fleet.stop()
            runs_of[hosts].append({"seconds": round(seconds, 3), "cpu_seconds": meter.seconds})
            why = why or meter.why
            best = min(r["seconds"] for r in runs_of[hosts])
            if round(seconds, 3) == best:
                phases[str(hosts)] = runs.phase_costs(tasks, "h00")
    curve = [[hosts, min(r["seconds"] for r in runs_of[hosts])] for hosts in sizes]
    cpu_curve = [[hosts, min(r["cpu_seconds"] for r in runs_of[hosts])] for hosts in sizes
                 if all(r["cpu_seconds"] is not None for r in runs_of[hosts])]
    label = " (best of %d)" % repeats if repeats > 1 else ""
    seconds_of = {"%d host(s)%s" % (h, label): s for h, s in curve}
    seconds_of.update({"%d host(s): CPU seconds (all processes of the run)%s" % (h, label): c for h, c in cpu_curve})
    return {"curve": curve, "marginal_per_host": slope((h, s) for h, s in curve), "phases_of_h00": phases,
            "cpu_curve": cpu_curve, "cpu_marginal_per_host": slope((h, c) for h, c in cpu_curve),
            "cpu_not_measured": why, "cores": os.cpu_count() or 1, "seconds": seconds_of, "repeats": repeats,
            "runs": {str(h): r for h, r in runs_of.items()}}


def ssh_case(repeats: int, hosts: int = 4) -> dict[str, Any]:
    """upgrade.yml over real SSH (bench/sshfleet.py) on 1 host and on `hosts` hosts at forks `hosts`, one batch,
    fresh v1 installations for every run; best of `repeats`. Not measured (with the reason) when the fleet
    cannot be started here."""
    why = sshfleet.unavailable()
    if why:
        return {"not_measured": why, "note": "not measured: " + why}
    measured: dict[int, list[dict[str, Any]]] = {1: [], hosts: []}
    try:
        for _attempt in range(repeats):
            for size in (1, hosts):
                with sshfleet.up(size) as state:
                    prepared = sshfleet.prepare(state)
                    seconds, tasks, sockets = sshfleet.upgrade_timed("%d-of-%d" % (size, hosts), hosts)
                    done = sshfleet.outcomes(state)
                    settings = sshfleet.ssh_settings()
                wrong = {h: o for h, o in done.items() if o["status"] != "completed" or o["server_mode"] != "process"}
                if wrong:
                    raise SystemExit("bench: upgrade.yml over SSH exited 0 but not every host completed in process "
                                     "mode: %s. Next: read the facts of those hosts" % wrong)
                measured[size].append({"seconds": round(seconds, 3), "prepare": round(prepared, 3), "tasks": tasks,
                                       "sockets": sockets, "settings": settings, "outcomes": done,
                                       "first": state["hosts"][0]["name"]})
    except sshfleet.FleetUnavailable as exc:
        return {"not_measured": str(exc), "note": "not measured: %s" % exc}
    one, many = (min(measured[n], key=lambda r: r["seconds"]) for n in (1, hosts))
    ratio = many["seconds"] / one["seconds"]
    marginal = (many["seconds"] - one["seconds"]) / (hosts - 1)
    ssh = sshfleet.describe(many["settings"], many["sockets"])
    return {"curve": [[1, one["seconds"]], [hosts, many["seconds"]]], "hosts": hosts, "ratio": ratio,
            "marginal_per_host": marginal, "ssh": ssh, "ssh_settings": many["settings"],
            "server_mode": many["outcomes"][many["first"]]["server_mode"],
            "runs": {str(n): [r["seconds"] for r in measured[n]] for n in measured},
            "prepare_seconds": {str(n): [r["prepare"] for r in measured[n]] for n in measured},
            "seconds": {"1 host (best of %d)" % repeats: one["seconds"],
                        "%d hosts at forks %d (best of %d)" % (hosts, hosts, repeats): many["seconds"]},
            "phases_by_run": {"1 host, %s" % one["first"]: runs.phase_costs(one["tasks"], one["first"]),
                              "%d hosts, %s" % (hosts, many["first"]): runs.phase_costs(many["tasks"], many["first"])},
            "note": "upgrade.yml v1 -> v2 over real SSH (scripts/fleet/fleet.py: one user + one sshd per host on "
                    "127.0.%d.N, users %sN), one batch (praxis_serial 100%%), --forks %d in both runs, server mode %s; "
                    "fresh v1 installations for every run (fleet up + extensions/molecule/shared/prepare.yml, "
                    "not timed). %d hosts / 1 = %.2f×, %.2f s per extra host. %s." % (
                        sshfleet.NET, sshfleet.PREFIX, hosts, many["outcomes"][many["first"]]["server_mode"], hosts,
                        ratio, marginal, ssh)}


def real_case(mirror: Path | None) -> dict[str, Any]:
    """The real product at real scale: scripts/realworld (upstream's own installer steps, its 2 GB venv, its
    server and index) upgrades and rolls back one installation and runs the bare shell procedure on a second
    one; its seconds give the real-scale goals. Not measured without a mirror of upstream (`--mirror`)."""
    if mirror is None:
        why = "needs a clone or bare mirror of honeyhiveai/praxis-os: make bench MIRROR=<path>"
        return {"not_measured": why, "note": "not measured: " + why}
    out = runs.WORK / "realworld.json"
    out.unlink(missing_ok=True)
    log = runs.WORK / "realworld.log"
    with open(log, "wb") as handle:
        rc = subprocess.run([sys.executable, str(REPO / "scripts" / "realworld"), "--mirror", str(mirror),
                             "--no-forced", "--json", str(out)], stdout=handle, stderr=subprocess.STDOUT,
                            check=False).returncode
    if not out.is_file():
        raise SystemExit("bench: scripts/realworld (rc %d) wrote no %s; see %s" % (rc, out, log))
    doc = json.loads(out.read_text())
    if rc != 0 or doc["failures"]:
        raise SystemExit("bench: scripts/realworld failed (rc %d): %s; see %s and %s"
                         % (rc, "; ".join(doc["failures"]) or "no failure recorded", doc["report"], log))
    return {"seconds": doc["seconds"], "old": doc["old"], "new": doc["new"],
            "note": "scripts/realworld --no-forced (the same run as `make realworld`): upstream %s -> %s in "
                    "process mode on a real installation (its installer docs' steps, 2 GB venv, real server "
                    "and index), then rollback; the bare shell procedure on a second installation does the same "
                    "backup copy, pip, index rebuild and restart. Every check it makes passed; its report: %s."
                    % (doc["old"], doc["new"], doc["report"])}


def _ping_playbook(path: Path, tasks: int) -> Path:
    lines = ["- hosts: all", "  gather_facts: false", "  tasks:"]
    lines += ["    - ansible.builtin.ping:"] * tasks
    if not tasks:
        lines[-1] = "  tasks: []"
    path.write_text("\n".join(lines) + "\n")
    return path


def floor_case(tasks: int, hosts_list: list[int]) -> dict[str, Any]:
    """Ansible's own cost of one module task (ansible.builtin.ping, local connection), per host and fork."""
    work = runs.WORK / "runs" / "floor"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result: dict[str, Any] = {"ping_tasks": tasks, "per_task": {}, "seconds": {}}
    for hosts in hosts_list:
        inventory = work / ("inventory-%d.json" % hosts)
        inventory.write_text(json.dumps({"all": {"hosts": {"p%02d" % i: {} for i in range(hosts)}, "vars": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
        measured = {}
        for count in (0, tasks):
            book = _ping_playbook(work / ("ping-%d.yml" % count), count)
            started = time.monotonic()
            runs.check(subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "--forks", str(hosts),
                                       str(book)], cwd=work, env=ansible_env(), text=True, capture_output=True,
                                      check=False), "the ping floor playbook")
            measured[count] = time.monotonic() - started
            result["seconds"]["%d host(s), %d ping task(s)" % (hosts, count)] = round(measured[count], 3)
        result["per_task"][str(hosts)] = round((measured[tasks] - measured[0]) / tasks, 4)
    return result
