"""`make demo`: upgrade a local demo fleet of three prAxIs OS installations from v1 to v2.

Each installation is a real project: a fixture prAxIs OS v1 (real MCP server, real venv) with the
user's own specs, standards, workflow and a locally edited framework standard. One of them runs
its server in http mode. A fourth, empty project gets v1 from `playbooks/install.yml` as a new user
would install it. The demo runs `playbooks/upgrade.yml` exactly as an operator would, prints the run
report, then runs it again to show that a re-run at the target changes nothing.
"""
from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

from tests.fixtures import praxis_fixture as fx
from tests.harness import REPO, Fleet

WORKDIR = REPO / ".cache" / "demo"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def banner(text: str) -> None:
    print("\n" + "=" * 78 + "\n" + text + "\n" + "=" * 78, flush=True)


STATUS = ("ok: ", "skipping: ", "included: ", "changed: ", "TASK [")


def first_batch_diff(stdout: str) -> str:
    """The --diff text of the first batch (the canary host): every task that printed more than a status."""
    start = stdout.find("PLAY [Upgrade")
    end = stdout.find("PLAY [Upgrade", start + 1)
    shown = []
    for chunk in stdout[start:end if end > 0 else None].split("\nTASK [")[1:]:
        header, _sep, body = chunk.partition("\n")
        lines = [line for line in body.splitlines() if line.strip() and not line.startswith(STATUS)
                 and not set(line.strip()) <= set("*")]
        if lines:
            shown.append("TASK [" + header.rstrip(" *") + "\n" + "\n".join(lines))
    return "\n\n".join(shown)


def run(fleet: Fleet, title: str, *args: str) -> Path:
    """Run the upgrade, print its recap and Markdown run report; return the run's HTML report."""
    banner(title)
    started = time.monotonic()
    result = fleet.upgrade("v2", *args)
    elapsed = time.monotonic() - started
    if "--diff" in args and result.returncode == 0:
        print("What the dry run says for the canary host (%s):\n" % fleet.hosts[0].name)
        print(first_batch_diff(result.stdout) + "\n")
    recap = result.stdout[result.stdout.rfind("PLAY RECAP"):] if "PLAY RECAP" in result.stdout else result.stdout[-3000:]
    print(recap.rstrip())
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-3000:], sep="\n")
        raise SystemExit(f"demo: ansible-playbook failed with exit code {result.returncode}")
    report = fleet.reports()[-1].with_suffix(".md")
    print(f"\n{report.read_text()}\n(report: {report}; {elapsed:.1f} s)")
    return report.with_suffix(".html")


def main() -> int:
    if WORKDIR.exists():
        for project in (WORKDIR / "projects").glob("*"):
            try:
                fx.stop_server(project)
            except fx.FixtureError:
                pass
        shutil.rmtree(WORKDIR)
    WORKDIR.mkdir(parents=True)
    fleet = Fleet(WORKDIR)
    try:
        banner("Installing prAxIs OS v1 into three demo projects (real venvs from the local wheelhouse)")
        for name, http in (("alpha", True), ("beta", False), ("gamma", False)):
            host = fleet.add(name, "v1", http=http)
            mode = "server running in http mode" if http else "IDE-launched (stdio)"
            print(f"  {name:6} {host.project}  v1 {host.install['commit'][:7]}  {mode}")
        banner("Installing prAxIs OS v1 into a fourth, empty project with playbooks/install.yml")
        fleet.add_project("delta", {".gitignore": "node_modules/\n"}, http=True)
        started = time.monotonic()
        installed = fleet.install("v1", "--limit", "delta,localhost")
        if installed.returncode != 0:
            print(installed.stdout[-6000:], installed.stderr[-3000:], sep="\n")
            raise SystemExit(f"demo: install.yml failed with exit code {installed.returncode}")
        print(installed.stdout[installed.stdout.rfind("PLAY RECAP"):].rstrip())
        print(f"  delta  installed at {fleet.hosts[-1].version_commit()[:7]} in {time.monotonic() - started:.1f} s")
        # the project .gitignore is the user's too, but the upgrade appends its entries to it (never rewrites)
        user_files = {h.name: {rel: sha256(h.project / rel) for rel in h.install.get("user_files", ()) if rel != ".gitignore"}
                      for h in fleet.hosts}
        run(fleet, "Dry run: what would change (--check --diff writes nothing on the targets)", "--check", "--diff")
        page = run(fleet, "Upgrading the fleet to v2 (canary first: serial 1, 25%, 100%)")
        for host in fleet.hosts:
            kept = sum(sha256(host.project / rel) == digest for rel, digest in user_files[host.name].items())
            conflict = host.home / (fx.LOCALLY_MODIFIED_CONFLICT + ".upstream")
            print(f"  {host.name:6} VERSION.txt commit={host.version_commit()[:7]}  state={host.state()['status']}"
                  f"  user files byte-identical: {kept}/{len(user_files[host.name])}"
                  f"  conflict kept, upstream beside it: {conflict.exists()}")
        run(fleet, "Running the upgrade again: already at the target, nothing to do")
    finally:
        fleet.stop()
    banner(f"Done. Projects, reports and logs stay in {WORKDIR}")
    print(f"The upgrade's HTML report (hosts, phase timeline; open it in a browser):\n  {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
