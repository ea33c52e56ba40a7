"""The measured steps: playbook runs with the timing callback, the bare shell procedure, a bare restart."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from bench import probe
from tests.fixtures import praxis_fixture as fx
from tests.harness import REPO, Fleet

WORK = REPO / ".cache" / "bench"
TIMING = {"ANSIBLE_CALLBACK_PLUGINS": str(REPO / "bench" / "callback_plugins"),
          "ANSIBLE_CALLBACKS_ENABLED": "praxis_timing"}
# controller-side bookkeeping, not module executions on the target
NOT_A_MODULE = {"ansible.builtin.validate_argument_spec", "ansible.builtin.include_role", "ansible.builtin.set_fact",
                "ansible.builtin.meta", "ansible.builtin.fail", "ansible.builtin.assert", "ansible.builtin.debug"}

# The seed's procedure: back up content (cp -r), replace the three content trees and the server,
# pip install into the live venv, restart. The caller then waits for the first MCP answer.
SHELL_PROCEDURE = r"""
set -euo pipefail
home="$PROJECT/.praxis-os"; src="$SOURCE"; backup="$home/.backups/shell-$(date +%s)"
mkdir -p "$backup"
for d in mcp_server standards usage workflows; do [ -d "$home/$d" ] && cp -r "$home/$d" "$backup/"; done
cp "$home/config.json" "$backup/" 2>/dev/null || true
replace() { rm -rf "$2"; mkdir -p "$2"; cp -a "$1/." "$2/"; }  # = rsync -a --delete, no rsync needed
replace "$src/universal/standards" "$home/standards/universal"
replace "$src/universal/workflows" "$home/workflows"
mkdir -p "$home/scripts"; cp -a "$src/scripts/." "$home/scripts/"
replace "$src/mcp_server" "$home/mcp_server"
"$home/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$WHEELHOUSE" \
    -r "$home/mcp_server/requirements.txt"
touch "$home/standards/.rebuild_index"  # the new standards need the new index, as in the collection's upgrade
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$home/.mcp_server_state.json")
kill -INT "$pid"; while kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" != Z ]; do sleep 0.05; done
cd "$PROJECT"
PYTHONPATH="$home" setsid "$home/venv/bin/python" -m mcp_server --transport http >>"$home/.cache/mcp_server.log" 2>&1 </dev/null &
until [ -f "$home/.mcp_server_state.json" ]; do sleep 0.05; done
"""


def fresh_fleet(name: str, hosts: int = 1, http: bool = True,
                prepare: Callable[[Path], None] | None = None) -> Fleet:
    """A new fleet under .cache/bench/<name> with `hosts` v1 installations; `prepare(project)` runs
    on each before its server starts (padding, user content)."""
    workdir = WORK / "runs" / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    fleet = Fleet(workdir)
    for i in range(hosts):
        host = fleet.add("h%02d" % i, "v1", http=False)
        if prepare:
            prepare(host.project)
        if http:
            fx.start_http_server(host.project)
            host.http = True
    return fleet


def check(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise SystemExit("bench: %s failed (exit %s):\n%s\n%s\nNext: fix the failure above (a bench run "
                         "needs a green upgrade) and re-run bench/run"
                         % (what, result.returncode, result.stdout[-4000:], result.stderr[-2000:]))
    return result


def timed(what: str, step: Callable[[], subprocess.CompletedProcess]) -> float:
    started = time.monotonic()
    check(step(), what)
    return time.monotonic() - started


def upgrade_timed(fleet: Fleet, label: str, *args: str, **group_vars: Any) -> tuple[float, list[dict[str, Any]]]:
    """Seconds of one upgrade.yml run and the per-task lines of the timing callback."""
    timing_file = fleet.workdir / ("timing-%s.jsonl" % label)
    timing_file.unlink(missing_ok=True)
    seconds = timed(label, lambda: fleet.upgrade("v2", *args, env=dict(TIMING, PRAXIS_TIMING_FILE=str(timing_file)),
                                                 **group_vars))
    return seconds, read_tasks(timing_file)


def playbook_timed(fleet: Fleet, name: str, label: str, **kwargs: Any) -> tuple[float, list[dict[str, Any]]]:
    timing_file = fleet.workdir / ("timing-%s.jsonl" % label)
    timing_file.unlink(missing_ok=True)
    seconds = timed(label, lambda: fleet.playbook(name, env=dict(TIMING, PRAXIS_TIMING_FILE=str(timing_file)),
                                                  **kwargs))
    return seconds, read_tasks(timing_file)


def read_tasks(timing_file: Path) -> list[dict[str, Any]]:
    if not timing_file.exists():
        return []
    return [json.loads(line) for line in timing_file.read_text().splitlines() if line.strip()]


def module_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tasks if t["action"] not in NOT_A_MODULE and t["status"] != "skipped"]


def phase_costs(tasks: list[dict[str, Any]], host: str | None = None) -> dict[str, list]:
    """{phase: [module tasks, seconds]} of one run (one host's tasks, or all)."""
    costs: dict[str, list] = {}
    for task in module_tasks(tasks):
        if host is not None and task["host"] not in (host, "localhost"):
            continue
        phase = task["role"].rsplit(".", 1)[-1] or "playbook"
        entry = costs.setdefault(phase, [0, 0.0])
        entry[0] += 1
        entry[1] = round(entry[1] + task["seconds"], 3)
    return costs


def shell_procedure(fleet: Fleet) -> float:
    """Seconds of the bare shell procedure on the fleet's first host, up to the new server's first answer.
    It does the upgrade's work: backup copy, new trees, pip, and upstream's rebuild flag so the new server
    rebuilds its search index at start (without it search would answer from the old version's index)."""
    host = fleet.hosts[0]
    env = {"PROJECT": str(host.project), "SOURCE": str(fleet.source("v2")), "WHEELHOUSE": str(fx.wheelhouse()),
           "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    check(subprocess.run(["bash", "-c", SHELL_PROCEDURE], env=env, text=True, capture_output=True, check=False),
          "the bare shell procedure")
    probe.first_answer(host.home)
    seconds = time.monotonic() - started
    if (host.home / "standards" / ".rebuild_index").exists():
        raise SystemExit("bench: the shell procedure's server answered without rebuilding its search index "
                         "(standards/.rebuild_index is still there); the comparison would not be the same work")
    return seconds


def bare_restart(project: Path, repeats: int = 3) -> dict[str, Any]:
    """Bare stop + start + first answer of the installation's server (median of `repeats`)."""
    home = Path(project) / ".praxis-os"
    runs = []
    for _attempt in range(repeats):
        probe.first_answer(home)
        started = time.monotonic()
        fx.stop_server(project)
        stopped = time.monotonic()
        fx.start_http_server(project)
        state = time.monotonic()
        probe.first_answer(home)
        runs.append({"stop": round(stopped - started, 3), "start": round(state - stopped, 3),
                     "total": round(time.monotonic() - started, 3)})
    totals = sorted(r["total"] for r in runs)
    return {"runs": runs, "median": totals[len(totals) // 2]}


def timed_cmd(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True)
    return time.monotonic() - started
