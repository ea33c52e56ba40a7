"""Run one step of a Molecule scenario's converge (controller side, stdlib only).

    python run_step.py --fleet-dir DIR --step NAME --expect success|failure
                       [--interrupt HOST PHASE ACTION] -- ANSIBLE-PLAYBOOK ARGS...

Runs ansible-playbook as its own process group (a separate controller process: failures and
interruptions are real), keeps under DIR/steps/NAME/: `ansible.log`, the run report it wrote
(`report.json` + `report.md`), every host's facts file (`facts-<host>.json`, absent when the host has
none) and tree snapshot (`snapshot-<host>.json`, tests/molecule/snapshot.py) taken right after the
run, and `result.json` (rc, seconds, interruption). Facts and snapshots are read straight from the
hosts' directories: the fleet shares the controller's filesystem, and it must work while a host's
sshd is down.

--interrupt HOST PHASE ACTION: as soon as HOST's facts file lists PHASE in completed_phases (i.e. the
next phase is under way), either
  kill-controller  SIGKILL the whole ansible-playbook process group (the operator's terminal dies),
                   then wait until HOST has no more module processes (what the target was doing
                   runs to its end or dies with its connection), or
  stop-host        stop HOST's sshd and every session it spawned (scripts/fleet/fleet.py stop-host):
                   the host becomes unreachable mid-run; the playbook goes on with the others.
Ansible's ssh ControlMasters live in DIR/cp-ansible and are closed after every step, so nothing is
left running. Exit 0 when the playbook ended as --expect says, 1 otherwise (with the log's tail).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import proctree  # noqa: E402

FACTS = ".praxis-os/.cache/facts.d/praxis_upgrade.fact"
ACTIONS = ("kill-controller", "stop-host")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def proc_uid_cmdlines(uid: int) -> list[tuple[int, str]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmd:
            out.append((int(entry), cmd))
    return out


def module_processes(uid: int) -> list[tuple[int, str]]:
    """The host user's processes that are neither its sshd sessions nor an MCP server."""
    return [(pid, cmd) for pid, cmd in proc_uid_cmdlines(uid)
            if not cmd.startswith("sshd:") and "mcp_server" not in cmd]


def kill_run(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole run like a dying terminal would take the controller: its process group and
    every worker below it (each in its own session)."""
    proctree.kill_run(proc.pid)
    proc.wait()


def close_control_masters(cp_dir: Path) -> None:
    if not cp_dir.is_dir():
        return
    for sock in cp_dir.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "fleet-host"],
                       capture_output=True, timeout=10, check=False)


def wait_host_quiet(name: str, uid: int, quiet: float = 2.0, timeout: float = 180.0) -> None:
    """Wait until the host user has run no module process for `quiet` seconds on end. One empty sample is not
    enough: a command the controller sent just before it died (e.g. Ansible's removal of its remote temp dir)
    can still be started by sshd after the kill, through the SSH connection master."""
    started = time.monotonic()
    quiet_since = started
    while True:
        now = time.monotonic()
        left = module_processes(uid)
        if left:
            quiet_since = now
        elif now - quiet_since >= quiet:
            return
        if now - started > timeout:
            raise SystemExit(f"run_step: {name} still runs {left} {now - started:.0f} s after the controller "
                             "was killed")
        time.sleep(0.1)


def wait_for_phase(proc: subprocess.Popen[bytes], facts: Path, phase: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = read_json(facts)
        if isinstance(doc, dict) and phase in (doc.get("completed_phases") or []) \
                and doc.get("status") == "in_progress":
            return doc
        if proc.poll() is not None:
            raise SystemExit(f"run_step: ansible-playbook exited (rc={proc.returncode}) before {facts} "
                             f"recorded phase {phase!r} in progress; the interruption point was never "
                             f"reached (facts now: {doc}); see its log")
        time.sleep(0.05)
    raise SystemExit(f"run_step: {facts} did not record phase {phase!r} within {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fleet-dir", type=Path, required=True)
    parser.add_argument("--step", required=True)
    parser.add_argument("--expect", choices=("success", "failure"), required=True)
    parser.add_argument("--interrupt", nargs=3, metavar=("HOST", "PHASE", "ACTION"))
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("playbook_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    fleet_dir: Path = args.fleet_dir.resolve()
    fleet = json.loads((fleet_dir / "fleet.json").read_text(encoding="utf-8"))
    hosts = {h["name"]: h for h in fleet["hosts"]}
    cmd = [a for a in args.playbook_args if a != "--"]
    if args.interrupt and (args.interrupt[0] not in hosts or args.interrupt[2] not in ACTIONS):
        parser.error(f"--interrupt {args.interrupt}: HOST must be one of {sorted(hosts)}, ACTION one of {ACTIONS}")

    step_dir = fleet_dir / "steps" / args.step
    shutil.rmtree(step_dir, ignore_errors=True)
    step_dir.mkdir(parents=True)
    reports = fleet_dir / "reports"
    before = set(reports.glob("upgrade-*.json"))
    cp_dir = fleet_dir / "cp-ansible"
    cp_dir.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp_dir))
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    started = time.monotonic()
    interrupted: dict[str, Any] | None = None
    with open(step_dir / "ansible.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=fleet_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            if args.interrupt:
                name, phase, action = args.interrupt
                host = hosts[name]
                seen = wait_for_phase(proc, Path(host["project_dir"]) / FACTS, phase, args.timeout)
                at = round(time.monotonic() - started, 2)
                if action == "kill-controller":
                    kill_run(proc)
                    wait_host_quiet(name, host["uid"])
                else:
                    subprocess.run([sys.executable, str(REPO / "scripts/fleet/fleet.py"), "--state-dir",
                                    str(fleet_dir), "stop-host", str(host["index"])], check=True,
                                   capture_output=True)
                interrupted = {"host": name, "after_phase": phase, "action": action, "at_s": at,
                               "completed_phases": seen.get("completed_phases")}
            proc.wait(timeout=max(1.0, args.timeout - (time.monotonic() - started)))
        except BaseException:
            if proc.poll() is None:
                kill_run(proc)
            raise
        finally:
            close_control_masters(cp_dir)
    seconds = round(time.monotonic() - started, 2)

    new = sorted(set(reports.glob("upgrade-*.json")) - before)
    if len(new) > 1:
        raise SystemExit(f"run_step: step {args.step} wrote {len(new)} run reports, expected one: {new}")
    for path in new:
        shutil.copy2(path, step_dir / "report.json")
        if path.with_suffix(".md").is_file():
            shutil.copy2(path.with_suffix(".md"), step_dir / "report.md")
    for name, host in hosts.items():
        project = Path(host["project_dir"])
        if (project / FACTS).is_file():
            shutil.copy2(project / FACTS, step_dir / f"facts-{name}.json")
        snap = subprocess.run([sys.executable, str(HERE / "snapshot.py"), str(project), "--no-hash",
                               ".praxis-os/venv"], capture_output=True, text=True, check=True)
        (step_dir / f"snapshot-{name}.json").write_text(snap.stdout, encoding="utf-8")
    result = {"step": args.step, "rc": proc.returncode, "expect": args.expect, "seconds": seconds,
              "interrupted": interrupted, "report": str(new[0]) if new else None}
    (step_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    ok = (proc.returncode == 0) == (args.expect == "success")
    print(json.dumps(result))
    if not ok:
        tail = (step_dir / "ansible.log").read_text(encoding="utf-8", errors="replace").splitlines()[-60:]
        print(f"step {args.step}: expected {args.expect} but ansible-playbook exited {proc.returncode}; "
              f"last lines of {step_dir / 'ansible.log'}:\n" + "\n".join(tail), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
