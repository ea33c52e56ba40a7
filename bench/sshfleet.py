"""The SSH fleet of the `ssh` case: one user + one sshd per host on loopback (scripts/fleet/fleet.py), v1
installations made over SSH by the Molecule scenarios' own prepare playbook (extensions/molecule/shared/prepare.yml),
upgrade.yml timed over real SSH with the timing callback.

The fleet has its own users, addresses and state dir (praxis-bN on 127.0.7.N, .cache/bench/ssh/fleet), so it never
meets a Molecule fleet (praxis-hN on 127.0.0.N, /var/tmp/praxis-fleet). It is always brought down through the tool
(its recorded pids, its users), also when a run fails.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from bench import runs
from tests.fixtures import praxis_fixture as fx
from tests.harness import BIN, REPO, ansible_env

PREFIX, NET, NAME = "praxis-b", 7, "bench-ssh"
TOOL = REPO / "scripts" / "fleet" / "fleet.py"
PREPARE = REPO / "extensions" / "molecule" / "shared" / "prepare.yml"
# prepare.yml keeps its venv cache beside the state dir (.cache/bench/ssh/venv-cache), so it outlives `down`
STATE = runs.WORK / "ssh" / "fleet"
FACTS = ".praxis-os/.cache/facts.d/praxis_upgrade.fact"


class FleetUnavailable(Exception):
    """The SSH fleet cannot be started here (not root, no sshd, ...): the case is not measured."""


def unavailable() -> str | None:
    """Why this machine cannot run the SSH fleet, None when it can try."""
    if os.geteuid() != 0:
        return "the SSH fleet needs root (scripts/fleet/fleet.py creates users and starts one sshd per host)"
    return None


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), "--state-dir", str(STATE), *args], text=True,
                          capture_output=True, check=False, timeout=600)


def control_dir() -> Path:
    """Ansible's ssh ControlMaster sockets for this fleet (closed after every playbook run)."""
    return STATE / "cp-ansible"


def close_control_masters() -> int:
    """Close every ControlMaster Ansible left (ControlPersist keeps them after the run); returns how many."""
    closed = 0
    if control_dir().is_dir():
        for sock in sorted(control_dir().iterdir()):
            subprocess.run(["ssh", "-o", "ControlPath=%s" % sock, "-O", "exit", "fleet-host"], capture_output=True,
                           timeout=10, check=False)
            closed += 1
    return closed


@contextmanager
def up(hosts: int) -> Iterator[dict[str, Any]]:
    """A fleet of `hosts` (its fleet.json); down through the tool afterwards, also when the body failed."""
    leftover = tool("down")  # a bench run killed before its `down` left this fleet up
    if leftover.returncode != 0:
        raise FleetUnavailable("`fleet.py down` of a leftover fleet at %s failed: %s"
                               % (STATE, (leftover.stderr or leftover.stdout).strip()[-500:]))
    ok = False
    try:
        started = tool("up", "--hosts", str(hosts), "--prefix", PREFIX, "--net", str(NET), "--name", NAME,
                       "--wheelhouse", str(fx.wheelhouse()))
        if started.returncode != 0:
            raise FleetUnavailable("`fleet.py up --hosts %d` failed (exit %d): %s" % (
                hosts, started.returncode, (started.stderr or started.stdout).strip()[-500:]))
        control_dir().mkdir(mode=0o700)
        yield json.loads(started.stdout)
        ok = True
    finally:
        close_control_masters()
        down = tool("down")
        if down.returncode != 0:
            problem = ("bench: `python3 %s --state-dir %s down` failed (exit %d): %s\nNext: run it again by hand"
                       % (TOOL, STATE, down.returncode, (down.stderr or down.stdout).strip()[-500:]))
            print(problem, file=sys.stderr)
            if ok:
                raise SystemExit(problem)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return ansible_env(dict(extra or {}, ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir())))


def prepare(state: dict[str, Any]) -> float:
    """v1 on every host as its own user over SSH, each server in http mode (so auto resolves to `process`), the
    group_vars of the run (praxis_source = v2, the fleet's wheelhouse); seconds it took."""
    names = [h["name"] for h in state["hosts"]]
    argv = [str(BIN / "ansible-playbook"), "-i", str(STATE / "inventory.yml"), str(PREPARE),
            "-e", json.dumps({"fleet_http_hosts": names})]
    env = _env({"PRAXIS_REPO": str(REPO), "PRAXIS_FLEET_DIR": str(STATE)})
    seconds = runs.timed("the SSH fleet's prepare (%s)" % PREPARE.relative_to(REPO), lambda: subprocess.run(
        argv, cwd=STATE, env=env, text=True, capture_output=True, check=False, timeout=1800))
    close_control_masters()  # the timed run opens its own connections, as an operator's first run does
    return seconds


def upgrade_timed(label: str, forks: int) -> tuple[float, list[dict[str, Any]], int]:
    """Seconds of upgrade.yml on every host of the fleet (one batch, `forks` forks), its per-task lines and the
    ControlMaster sockets it left behind (ControlPersist at work); the masters are closed afterwards."""
    timing_file = STATE / ("timing-%s.jsonl" % label)
    argv = [str(BIN / "ansible-playbook"), "-i", str(STATE / "inventory.yml"), str(REPO / "playbooks" / "upgrade.yml"),
            "--forks", str(forks), "-e", json.dumps({"praxis_serial": ["100%"]})]
    env = _env(dict(runs.TIMING, PRAXIS_TIMING_FILE=str(timing_file)))
    seconds = runs.timed("upgrade.yml over SSH (%s)" % label, lambda: subprocess.run(
        argv, cwd=STATE, env=env, text=True, capture_output=True, check=False, timeout=1800))
    return seconds, runs.read_tasks(timing_file), close_control_masters()


def outcomes(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{host: status, server mode, target commit} from each host's facts file (read on this machine's disk)."""
    out = {}
    for host in state["hosts"]:
        path = Path(host["project_dir"]) / FACTS
        facts = json.loads(path.read_text()) if path.is_file() else {}
        evidence = ((facts.get("phases") or {}).get("preflight") or {}).get("evidence") or {}
        out[host["name"]] = {"status": facts.get("status"), "server_mode": evidence.get("server_mode"),
                             "target_commit": facts.get("target_commit")}
    return out


def ssh_settings() -> dict[str, Any]:
    """The ssh connection settings the timed runs use (ansible-config, with this bench's environment) and the
    extra ssh arguments of the fleet's inventory."""
    proc = subprocess.run([str(BIN / "ansible-config"), "dump", "-t", "connection", "--format", "json"],
                          env=_env(), text=True, capture_output=True, check=False, timeout=120)
    try:
        dump = json.loads(proc.stdout)
    except ValueError:
        dump = []
    settings = pick_ssh_settings(dump)
    inventory = STATE / "inventory.yml"
    if inventory.is_file():
        fleet_vars = (yaml.safe_load(inventory.read_text()) or {}).get("praxis", {}).get("vars", {})
        settings["ansible_ssh_common_args (fleet inventory)"] = fleet_vars.get("ansible_ssh_common_args", "")
    return settings


def pick_ssh_settings(dump: list[dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """{setting: "value (origin)"} of the ssh plugin's pipelining, ssh_args and control_path_dir in
    `ansible-config dump -t connection --format json` output; "unknown" for what it does not show."""
    wanted = ("pipelining", "ssh_args", "control_path_dir")
    found: dict[str, Any] = {name: "unknown" for name in wanted}
    for plugin in dump:
        for option in plugin.get("ssh", []):
            if option.get("name") in wanted:
                found[option["name"]] = "%s (%s)" % (option.get("value"), option.get("origin"))
    return found


def describe(settings: dict[str, Any], sockets: int) -> str:
    """One line on what the timed runs' ssh connections actually used."""
    pipelining = str(settings.get("pipelining", ""))
    state = "on" if pipelining.startswith("True") else "off" if pipelining.startswith("False") else "unknown"
    args = " ".join(str(settings.get(k, "")) for k in ("ssh_args", "ansible_ssh_common_args (fleet inventory)"))
    master, persist = (re.findall(r"%s=(\S+)" % opt, args) for opt in ("ControlMaster", "ControlPersist"))
    return "SSH pipelining %s, ControlMaster %s, ControlPersist %s (%d control socket(s) open after the run)" % (
        state, master[-1] if master else "off", persist[-1] if persist else "off", sockets)
