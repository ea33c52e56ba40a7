"""Benchmark of one fixture installation: the collection against the bare shell procedure.

Every number comes from one run on this machine (timings vary 2-3x with load, so compare ratios):
upgrade v1->v2, no-op re-run, --check, rollback.yml, and the seed's shell procedure (cp -r backup,
rsync of the three content trees, copy the server, pip install, restart) on an identical install.
Writes bench/results/bench-<stamp>.{json,md} and prints the table.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from tests.fixtures import praxis_fixture as fx
from tests.harness import REPO, Fleet

RESULTS = REPO / "bench" / "results"
WORK = REPO / ".cache" / "bench"
TIMING = {"ANSIBLE_CALLBACK_PLUGINS": str(REPO / "bench" / "callback_plugins"),
          "ANSIBLE_CALLBACKS_ENABLED": "praxis_timing"}
# controller-side bookkeeping, not module executions on the target
NOT_A_MODULE = {"ansible.builtin.validate_argument_spec", "ansible.builtin.include_role", "ansible.builtin.set_fact",
                "ansible.builtin.meta"}

SHELL_PROCEDURE = r"""
set -euo pipefail
home="$PROJECT/.praxis-os"; src="$SOURCE"; backup="$home/.backups/shell-$(date +%s)"
mkdir -p "$backup"
for d in mcp_server standards usage workflows; do [ -d "$home/$d" ] && cp -r "$home/$d" "$backup/"; done
cp "$home/config.json" "$backup/" 2>/dev/null || true
rsync -a --delete "$src/universal/standards/" "$home/standards/universal/"
rsync -a --delete "$src/universal/workflows/" "$home/workflows/"
rsync -a "$src/scripts/" "$home/scripts/"
rsync -a --delete --exclude __pycache__ "$src/mcp_server/" "$home/mcp_server/"
"$home/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$WHEELHOUSE" \
    -r "$home/mcp_server/requirements.txt"
pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$home/.mcp_server_state.json")
kill -INT "$pid"; while kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" != Z ]; do sleep 0.05; done
cd "$PROJECT"
PYTHONPATH="$home" setsid "$home/venv/bin/python" -m mcp_server --transport http >>"$home/.cache/mcp_server.log" 2>&1 </dev/null &
until [ -f "$home/.mcp_server_state.json" ]; do sleep 0.05; done
"""


def fresh_fleet(name: str) -> Fleet:
    workdir = WORK / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    fleet = Fleet(workdir)
    fleet.add("bench", "v1", http=True)
    return fleet


def timed(step) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    result = step()
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit("bench: a step failed:\n%s\n%s" % (result.stdout[-4000:], result.stderr[-2000:]))
    return elapsed, result


def phase_costs(timing_file: Path) -> dict[str, list]:
    """{phase: [module tasks, seconds]} of one run, from the praxis_timing callback's lines."""
    costs: dict[str, list] = {}
    for line in timing_file.read_text().splitlines():
        task = json.loads(line)
        if task["action"] in NOT_A_MODULE or task["status"] == "skipped":
            continue
        phase = task["role"].rsplit(".", 1)[-1] or "playbook"
        entry = costs.setdefault(phase, [0, 0.0])
        entry[0] += 1
        entry[1] += task["seconds"]
    return costs


def shell_procedure(fleet: Fleet) -> tuple[float, subprocess.CompletedProcess]:
    host = fleet.hosts[0]
    env = {"PROJECT": str(host.project), "SOURCE": str(fleet.source("v2")), "WHEELHOUSE": str(fx.wheelhouse()),
           "PATH": "/usr/bin:/bin"}
    return timed(lambda: subprocess.run(["bash", "-c", SHELL_PROCEDURE], env=env, text=True, capture_output=True,
                                        check=False))


def main() -> int:
    if shutil.which("rsync") is None:
        raise SystemExit("bench: rsync is needed for the shell baseline; apt-get install rsync")
    rows: dict[str, float] = {}
    upgrade_fleet = fresh_fleet("upgrade")
    check_fleet = fresh_fleet("check")
    shell_fleet = fresh_fleet("shell")
    try:
        rows["shell procedure (seed)"] = shell_procedure(shell_fleet)[0]
        timing_file = upgrade_fleet.workdir / "timing.jsonl"
        rows["upgrade"] = timed(lambda: upgrade_fleet.upgrade(
            "v2", env=dict(TIMING, PRAXIS_TIMING_FILE=str(timing_file))))[0]
        rows["no-op re-run"] = timed(lambda: upgrade_fleet.upgrade("v2"))[0]
        rows["--check --diff"] = timed(lambda: check_fleet.upgrade("v2", "--check", "--diff"))[0]
        rows["rollback.yml"] = timed(lambda: upgrade_fleet.playbook("rollback.yml"))[0]
    finally:
        for fleet in (upgrade_fleet, check_fleet, shell_fleet):
            fleet.stop()
    costs = phase_costs(timing_file)
    tasks = {phase: count for phase, (count, _seconds) in costs.items()}
    upgrade = rows["upgrade"]
    ratios = {
        "upgrade / shell (target <= 2)": upgrade / rows["shell procedure (seed)"],
        "no-op / upgrade (target <= 0.3)": rows["no-op re-run"] / upgrade,
        "rollback / upgrade (target <= 0.5)": rows["rollback.yml"] / upgrade,
        "check / upgrade (target <= 0.5)": rows["--check --diff"] / upgrade,
    }
    lines = ["| run | seconds |", "|---|---|"] + ["| %s | %.1f |" % (k, v) for k, v in rows.items()]
    lines += ["", "| ratio | value |", "|---|---|"] + ["| %s | %.2f |" % (k, v) for k, v in ratios.items()]
    lines += ["", "| phase | module tasks | seconds |", "|---|---|---|"]
    lines += ["| %s | %d | %.1f |" % (k, n, sec) for k, (n, sec) in costs.items()]
    lines += ["| **total** | **%d** (target <= 25) | %.1f |" % (sum(tasks.values()), sum(c[1] for c in costs.values()))]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"bench-{stamp}.md").write_text(table + "\n")
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps({"seconds": rows, "ratios": ratios, "tasks": tasks},
                                                            indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
