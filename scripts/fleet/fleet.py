"""A real multi-host fleet on one machine: one user + one sshd per host, over real SSH.
Run it with an interpreter (it is not executable):

    python3 scripts/fleet/fleet.py --state-dir DIR up --hosts 4 [--wheelhouse .cache/wheelhouse]
    python3 scripts/fleet/fleet.py --state-dir DIR stop-host 2      # host 2 becomes unreachable (sshd and its sessions stop)
    python3 scripts/fleet/fleet.py --state-dir DIR start-host 2
    python3 scripts/fleet/fleet.py --state-dir DIR status
    python3 scripts/fleet/fleet.py --state-dir DIR down [--keep-state]

Host N is user ``<prefix>N`` (``useradd -m``, locked password ``*``) reached over SSH on
``127.0.0.N:2222`` (``--net X`` gives ``127.0.X.N``) by its own ``sshd -D -e -f CONFIG``: own host key,
own pid file, ``UsePAM no``, key auth only, ``AllowUsers`` that user. Everything lives under the
state dir: the client key, per-host sshd files and logs, ``inventory.yml`` (group ``praxis``),
``ssh_config`` (ControlMaster for testinfra), ``fleet.json`` (what ``down`` undoes) and a
world-readable copy of the wheelhouse. Outside it: the users and one sudoers file
``/etc/sudoers.d/praxis-fleet-<name>`` (NOPASSWD for ``become``), both removed by ``down``.

Processes are stopped only by the pids this tool recorded (plus their descendants, checked via
/proc), and processes owned by users this tool created; never by name pattern. Must run as root.
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COMMENT = "praxis-fleet"
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
STATE_FILE = "fleet.json"


class FleetError(Exception):
    """A problem the operator can fix; the message says what and how."""


# ---------------------------------------------------------------------------- small helpers
def run(cmd: list[str], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, text=True, capture_output=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise FleetError(f"command {' '.join(cmd)!r} failed with rc={proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()}")
    return proc


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def install_authorized_key(host: dict[str, Any], pubkey: str) -> None:
    """The run's public key as the only entry of the host user's ~/.ssh/authorized_keys."""
    ssh_dir = Path(host["home"]) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    atomic_write(ssh_dir / "authorized_keys", pubkey, 0o600)
    gid = pwd.getpwnam(host["user"]).pw_gid
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, host["uid"], gid)


def load_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / STATE_FILE
    if not path.is_file():
        raise FleetError(f"no fleet at {state_dir} ({STATE_FILE} missing); run `python3 scripts/fleet/fleet.py --state-dir "
                         f"{state_dir} up --hosts N` first")
    return json.loads(path.read_text(encoding="utf-8"))


def save_state(state_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(state_dir / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    kids = children_map()
    out: list[int] = []
    todo = list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pids_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def signal_and_wait(pids: list[int], timeout: float = 3.0) -> None:
    """TERM the pids, wait up to timeout, then KILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.02)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


# ---------------------------------------------------------------------------- provisioning
def ensure_packages() -> None:
    missing = [pkg for pkg, binary in (("openssh-server", SSHD), ("sudo", "/usr/bin/sudo"))
               if not Path(binary).exists()]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
        run(["apt-get", "update", "-q"], env=env)
        run(cmd, env=env)


def ensure_user(name: str, state_dir: Path) -> tuple[int, str]:
    """Create user `name` fresh; take over a leftover of a dead fleet; refuse anything else."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        pw = None
    if pw is not None:
        owner = pw.pw_gecos.split(" ", 1)
        if owner[0] != COMMENT:
            raise FleetError(f"user {name} exists and was not created by the fleet tool (GECOS "
                             f"{pw.pw_gecos!r}); use another --prefix or remove that user")
        other = Path(owner[1]) if len(owner) > 1 else None
        if other and other != state_dir and (other / STATE_FILE).is_file():
            st = json.loads((other / STATE_FILE).read_text())
            live = [h for h in st.get("hosts", []) if h.get("pid") and alive(h["pid"])]
            if live:
                raise FleetError(f"user {name} belongs to the live fleet at {other}; run "
                                 f"`python3 scripts/fleet/fleet.py --state-dir {other} down` or use another --prefix")
        signal_and_wait(pids_of_uid(pw.pw_uid))
        run(["userdel", "-r", name], check=False)
    run(["useradd", "-m", "-s", "/bin/bash", "-c", f"{COMMENT} {state_dir}", name])
    run(["usermod", "-p", "*", name])
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_dir


def sshd_config(host: dict[str, Any], hdir: Path) -> str:
    return "\n".join([
        f"ListenAddress {host['ip']}",
        f"Port {host['port']}",
        f"HostKey {hdir / 'ssh_host_ed25519_key'}",
        f"PidFile {hdir / 'sshd.pid'}",
        # in the user's home, where StrictModes stops checking: the checkout (and so hdir) may sit
        # below a world-writable directory such as /tmp, which sshd would refuse
        "AuthorizedKeysFile .ssh/authorized_keys",
        f"AllowUsers {host['user']}",
        "UsePAM no",
        "PermitRootLogin no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "StrictModes yes",
        "UseDNS no",
        "AcceptEnv PRAXIS_FAULT_POINT",   # tests inject faults per run: ssh -o SetEnv=PRAXIS_FAULT_POINT=...
        "MaxSessions 64",
        "MaxStartups 64:30:128",
        "LogLevel ERROR",
        f"Subsystem sftp {SFTP_SERVER}",
        "",
    ])


def wait_listening(ip: str, port: int, pid: int, log: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise FleetError(f"sshd for {ip}:{port} exited at start; see {log}: "
                             f"{log.read_text(errors='replace').strip()[-500:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((ip, port)) == 0:
                return
        time.sleep(0.01)
    raise FleetError(f"sshd for {ip}:{port} (pid {pid}) did not listen within {timeout}s; see {log}")


def start_sshd(host: dict[str, Any], state_dir: Path) -> int:
    hdir = state_dir / "hosts" / host["name"]
    log = hdir / "sshd.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(hdir / "sshd_config")],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    wait_listening(host["ip"], host["port"], proc.pid, log)
    return proc.pid


def stop_sshd(host: dict[str, Any], state_dir: Path) -> None:
    """Stop exactly the sshd we started for this host and every session it spawned."""
    pid = host.get("pid")
    if not pid:
        return
    config = str(state_dir / "hosts" / host["name"] / "sshd_config")
    if alive(pid) and config in pid_cmdline(pid):
        tree = descendants(pid)
        signal_and_wait([pid])            # master first: no new sessions
        signal_and_wait([p for p in tree if alive(p)], timeout=1.0)
    host["pid"] = None


def render_inventory(state: dict[str, Any], state_dir: Path) -> str:
    key = state_dir / "id_ed25519"
    lines = ["# generated by scripts/fleet/fleet.py; one host per installation", "praxis:", "  hosts:"]
    for h in state["hosts"]:
        lines += [
            f"    {h['name']}:",
            f"      ansible_host: {h['ip']}",
            f"      ansible_port: {h['port']}",
            f"      ansible_user: {h['user']}",
            f"      ansible_ssh_private_key_file: {key}",
            f"      praxis_project_dir: {h['project_dir']}",
        ]
    lines += [
        "  vars:",
        "    ansible_connection: ssh",
        "    ansible_python_interpreter: /usr/bin/python3",
        "    ansible_ssh_common_args: >-",
        "      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
        "      -o LogLevel=ERROR -o ConnectTimeout=5",
        f"    __praxis_fleet_state_dir: {state_dir}",
        f"    __praxis_fleet_wheelhouse: {state['wheelhouse'] or ''}",
        "",
    ]
    return "\n".join(lines)


def render_ssh_config(state: dict[str, Any], state_dir: Path) -> str:
    out = []
    for h in state["hosts"]:
        out += [
            f"Host {h['name']}",
            f"  HostName {h['ip']}",
            f"  Port {h['port']}",
            f"  User {h['user']}",
            f"  IdentityFile {state_dir / 'id_ed25519'}",
            "  IdentitiesOnly yes",
            "  StrictHostKeyChecking no",
            "  UserKnownHostsFile /dev/null",
            "  LogLevel ERROR",
            "  ConnectTimeout 5",
            "  ControlMaster auto",
            "  ControlPersist 30s",
            f"  ControlPath {state_dir / 'cm'}/%C",
            "",
        ]
    return "\n".join(out)


def cmd_up(args: argparse.Namespace) -> dict[str, Any]:
    state_dir: Path = args.state_dir
    if (state_dir / STATE_FILE).exists():
        old = load_state(state_dir)
        if any(h.get("pid") and alive(h["pid"]) for h in old["hosts"]):
            raise FleetError(f"a fleet is already up at {state_dir}; run `down` first")
        cmd_down(argparse.Namespace(state_dir=state_dir, keep_state=False))
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,20}", args.prefix):
        raise FleetError(f"--prefix {args.prefix!r} must be a short lowercase user name stem")
    if not 1 <= args.hosts <= 50:
        raise FleetError(f"--hosts {args.hosts} must be between 1 and 50")
    started = time.monotonic()
    ensure_packages()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)    # sshd's privilege separation dir
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o755)             # targets read the wheelhouse below it
    for sub in ("hosts", "cm"):
        (state_dir / sub).mkdir(exist_ok=True)
    os.chmod(state_dir / "cm", 0o700)
    name = re.sub(r"[^A-Za-z0-9_-]", "-", args.name or state_dir.name)
    state: dict[str, Any] = {"name": name, "prefix": args.prefix, "hosts": [], "sudoers": None,
                             "wheelhouse": None, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                          time.gmtime())}
    save_state(state_dir, state)          # from here on, `down` can undo whatever follows
    key = state_dir / "id_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"praxis-fleet-{name}", "-f", str(key)])
    pubkey = (state_dir / "id_ed25519.pub").read_text()
    if args.wheelhouse:
        dest = state_dir / "wheelhouse"
        shutil.copytree(args.wheelhouse, dest, dirs_exist_ok=True)
        for p in [dest, *dest.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        state["wheelhouse"] = str(dest)
    try:
        for i in range(1, args.hosts + 1):
            user = f"{args.prefix}{i}"
            host: dict[str, Any] = {"index": i, "name": user, "user": user, "ip": f"127.0.{args.net}.{i}",
                                    "port": args.port, "pid": None, "uid": None}
            state["hosts"].append(host)
            host["uid"], host["home"] = ensure_user(user, state_dir)
            host["project_dir"] = f"{host['home']}/project"
            save_state(state_dir, state)
            hdir = state_dir / "hosts" / user
            hdir.mkdir(exist_ok=True)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hdir / "ssh_host_ed25519_key")])
            install_authorized_key(host, pubkey)
            atomic_write(hdir / "sshd_config", sshd_config(host, hdir), 0o644)
            run([SSHD, "-t", "-f", str(hdir / "sshd_config")])
            host["pid"] = start_sshd(host, state_dir)
            save_state(state_dir, state)
        sudoers = Path(f"/etc/sudoers.d/praxis-fleet-{name}")
        text = "".join(f"{h['user']} ALL=(ALL) NOPASSWD: ALL\n" for h in state["hosts"])
        tmp = state_dir / "sudoers.check"
        atomic_write(tmp, text, 0o440)
        run(["visudo", "-c", "-q", "-f", str(tmp)])
        state["sudoers"] = str(sudoers)
        save_state(state_dir, state)
        shutil.move(str(tmp), sudoers)
        atomic_write(state_dir / "inventory.yml", render_inventory(state, state_dir))
        atomic_write(state_dir / "ssh_config", render_ssh_config(state, state_dir))
    except BaseException:
        cmd_down(argparse.Namespace(state_dir=state_dir, keep_state=True))
        raise
    state["up_seconds"] = round(time.monotonic() - started, 3)
    save_state(state_dir, state)
    return state


def cmd_down(args: argparse.Namespace) -> dict[str, Any]:
    state_dir: Path = args.state_dir
    if not (state_dir / STATE_FILE).is_file():
        return {"down": str(state_dir), "note": "no fleet state; nothing to do"}
    state = load_state(state_dir)
    if (state_dir / "ssh_config").is_file():
        for h in state["hosts"]:        # close testinfra's control masters for this fleet
            subprocess.run(["ssh", "-F", str(state_dir / "ssh_config"), "-O", "exit", h["name"]],
                           capture_output=True, timeout=5, check=False)
    for h in state["hosts"]:
        stop_sshd(h, state_dir)
        if h.get("uid") is not None:
            try:
                pw = pwd.getpwnam(h["user"])
            except KeyError:
                continue
            if pw.pw_uid == h["uid"] and pw.pw_gecos.startswith(COMMENT):
                signal_and_wait(pids_of_uid(pw.pw_uid))   # servers the tests started as that user
                run(["userdel", "-r", h["user"]], check=False)
    if state.get("sudoers"):
        Path(state["sudoers"]).unlink(missing_ok=True)
    if args.keep_state:
        save_state(state_dir, state)
    else:
        shutil.rmtree(state_dir, ignore_errors=True)
    return {"down": str(state_dir), "hosts": [h["name"] for h in state["hosts"]]}


def host_by_index(state: dict[str, Any], n: int, state_dir: Path) -> dict[str, Any]:
    for h in state["hosts"]:
        if h["index"] == n:
            return h
    raise FleetError(f"no host {n} in the fleet at {state_dir} (hosts 1..{len(state['hosts'])})")


def cmd_stop_host(args: argparse.Namespace) -> dict[str, Any]:
    state = load_state(args.state_dir)
    h = host_by_index(state, args.n, args.state_dir)
    stop_sshd(h, args.state_dir)
    save_state(args.state_dir, state)
    return {"stopped": h["name"]}


def cmd_start_host(args: argparse.Namespace) -> dict[str, Any]:
    state = load_state(args.state_dir)
    h = host_by_index(state, args.n, args.state_dir)
    if h.get("pid") and alive(h["pid"]):
        return {"started": h["name"], "pid": h["pid"], "note": "already running"}
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    h["pid"] = start_sshd(h, args.state_dir)
    save_state(args.state_dir, state)
    return {"started": h["name"], "pid": h["pid"]}


def cmd_status(args: argparse.Namespace) -> dict[str, Any]:
    state = load_state(args.state_dir)
    for h in state["hosts"]:
        h["up"] = bool(h.get("pid") and alive(h["pid"]))
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=lambda p: Path(p).resolve(), required=True,
                        help="directory holding everything this fleet creates")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="create users, keys and one sshd per host")
    up.add_argument("--hosts", type=int, default=1)
    up.add_argument("--prefix", default="praxis-h", help="user name stem (default praxis-h)")
    up.add_argument("--net", type=int, default=0, help="hosts listen on 127.0.NET.N (default 0)")
    up.add_argument("--port", type=int, default=2222)
    up.add_argument("--name", help="fleet name (default: state dir name)")
    up.add_argument("--wheelhouse", type=Path, help="copy this wheelhouse to <state-dir>/wheelhouse")
    down = sub.add_parser("down", help="stop sshds, remove users, sudoers file and the state dir")
    down.add_argument("--keep-state", action="store_true")
    for name in ("stop-host", "start-host"):
        p = sub.add_parser(name)
        p.add_argument("n", type=int, help="host number (1-based)")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("scripts/fleet/fleet.py must run as root (it creates users and starts sshd)", file=sys.stderr)
        return 2
    handler = {"up": cmd_up, "down": cmd_down, "stop-host": cmd_stop_host,
               "start-host": cmd_start_host, "status": cmd_status}[args.command]
    try:
        result = handler(args)
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
