"""Faults from the environment: concurrent runs, a full disk, an immutable file, pip failing, a corrupted
backup, locks held by others, a sibling installation on the same host, eight installations in one batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.faults import lib
from tests.fixtures import praxis_fixture as fx

pytestmark = pytest.mark.slow


def test_concurrent_runs(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    """Two upgrade.yml runs against one installation from one controller at the same moment."""
    inst = case.install(prepared.old)
    first = case.start("upgrade.yml", "v2")
    second = case.start("upgrade.yml", "v2")
    runs = [case.finish(*first), case.finish(*second)]
    recovery = case.run("upgrade.yml", "v2")
    verdict = lib.judge(case, inst, prepared)
    if recovery.returncode != 0:
        verdict.problems.append(f"re-run upgrade.yml exited {recovery.returncode}")
    if all(r.returncode == 0 for r in runs) and "Nothing to do" not in "".join(r.output for r in runs):
        verdict.problems.append("both concurrent runs upgraded (exit 0, neither found the other's lock)")
    conclude("two concurrent upgrade.yml runs", "re-run upgrade.yml", verdict,
             note=f"exit codes {[r.returncode for r in runs]}")


ENOSPC_MARGINS = {"256k": 256 * 1024, "1m": 1024 * 1024, "4m": 4 * 1024 * 1024}


@pytest.mark.parametrize("free", sorted(ENOSPC_MARGINS))
def test_enospc(free: str, prepared: lib.Prepared, tmp_path: Path, conclude: Any) -> None:
    """The installation on a tmpfs with only `free` bytes left (a private mount namespace: root only)."""
    if os.geteuid() != 0:
        pytest.skip("ENOSPC cases mount a tmpfs in a private mount namespace: needs root")
    spec = {"prepared": str(prepared.root), "mount": str(tmp_path / "mnt"), "workdir": str(tmp_path / "case"),
            "name": f"enospc-{free}", "margin": ENOSPC_MARGINS[free]}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m",
                           "tests.faults.inns", json.dumps(spec)], cwd=lib.REPO, capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0 and proc.stdout.strip(), f"namespace runner failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    verdict = lib.Verdict(result["end"], [], list(result["problems"]))
    if result["end"] == "OLD" and result["returncode"] != 0:
        words = ("space", "disk", "enospc", "no space")
        if not any(w in result["message"].lower() for w in words):
            verdict.problems.append(f"failure message does not say the disk is full: {result['message'][-300:]}")
    conclude(f"tmpfs with {free} free (of {result['size'] // 1024} KiB)", "none (judged after the run)", verdict,
             note=f"exit {result['returncode']}")


def test_immutable_file(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    """A framework file the upgrade must update is immutable (chattr +i): the upgrade fails and rolls back."""
    inst = case.install(prepared.old)
    target = inst.home / "standards" / "universal" / "ai-assistant" / "commit-protocol.md"
    if subprocess.run(["chattr", "+i", str(target)], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"chattr +i is not supported on the filesystem of {case.dir}")
    try:
        run = case.run("upgrade.yml", "v2")
        verdict = lib.judge(case, inst, prepared, allowed=("OLD",))
        if run.returncode == 0:
            verdict.problems.append("the upgrade reported success with an immutable file")
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=False)
    conclude("chattr +i on a file v2 updates", "none (automatic rollback)", verdict, note=f"exit {run.returncode}")


def test_pip_failure(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    inst = case.install(prepared.old)
    run = case.run("upgrade.yml", "v2-pipfail")
    verdict = lib.judge(case, inst, prepared, allowed=("OLD",))
    text = lib.error_text(run.output).lower()
    if run.returncode == 0:
        verdict.problems.append("exit 0 with a failing pip install")
    elif "praxis-nonexistent-dep" not in text and "pip" not in text:
        verdict.problems.append("the failure message names neither pip nor the missing requirement")
    conclude("v2-pipfail: a requirement absent from the wheelhouse", "none (automatic rollback)", verdict)


def test_corrupted_backup_rollback(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    """rollback.yml against a backup whose files no longer match its MANIFEST.json: refused, nothing changed."""
    inst = case.install(prepared.old)
    assert case.run("upgrade.yml", "v2").returncode == 0
    backup = sorted((inst.home / ".backups").iterdir())[-1]
    victim = next(p for p in sorted((backup / "files").rglob("*.md")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"\ncorrupted\n")
    pid = lib.servers_of(inst.project)
    before = lib.manifest(inst.project, strict=True)
    run = case.run("rollback.yml")
    verdict = lib.refused(case, inst, before, run, ("backup",), server_pid=pid[0] if pid else None)
    new = lib.judge(case, inst, prepared, allowed=("NEW",))
    verdict.problems += [p for p in new.problems if p not in verdict.problems]
    verdict.end_state = new.end_state
    conclude("a file in the latest backup corrupted, then rollback.yml", "none (must refuse)", verdict)


def _lock(prepared: lib.Prepared, started: datetime, controller: str) -> dict[str, Any]:
    stamp = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"session_id": started.strftime("%Y%m%dT%H%M%SZ") + "-0f0f0f", "run_id": "run-of-someone-else",
            "started_at": stamp, "heartbeat_at": stamp, "controller": controller, "host": controller.split("@")[-1],
            "target_commit": fx.head_commit(prepared.sources["v2"])}


def test_foreign_lock(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    """A live lock of another controller's run: refused, naming the holder; the lock left as it is."""
    inst = case.install(prepared.old)
    lock = inst.home / ".upgrade-lock"
    lock.write_text(json.dumps(_lock(prepared, datetime.now(timezone.utc), "ops@other-controller")))
    pid = lib.servers_of(inst.project)
    before = lib.manifest(inst.project, strict=True)
    run = case.run("upgrade.yml", "v2")
    verdict = lib.refused(case, inst, before, run, ("lock", "other-controller"), server_pid=pid[0] if pid else None)
    conclude("a fresh lock held by another controller's run", "none (must refuse)", verdict)


def test_stale_lock(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    """A lock three days old (older than praxis_lock_stale_after): taken over, the upgrade completes."""
    inst = case.install(prepared.old)
    lock = inst.home / ".upgrade-lock"
    lock.write_text(json.dumps(_lock(prepared, datetime.now(timezone.utc) - timedelta(days=3),
                                     "ops@gone-controller")))
    run = case.run("upgrade.yml", "v2")
    verdict = lib.judge(case, inst, prepared, allowed=("NEW",))
    if run.returncode != 0:
        verdict.problems.append(f"exit {run.returncode}: {lib.error_summary(run.output)}")
    conclude("a lock three days old from a controller that is gone", "none (taken over)", verdict)


def test_sibling_installation(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    """Two installations on one host, each with its own server; upgrading one leaves the other untouched."""
    inst = case.install(prepared.old, alias="a")
    sibling = case.install(prepared.old, alias="b")
    sibling_pid = lib.servers_of(sibling.project)
    sibling_before = lib.manifest(sibling.project, strict=True)
    run = case.run("upgrade.yml", "v2", installs=[inst])
    verdict = lib.judge(case, inst, prepared, allowed=("NEW",))
    if run.returncode != 0:
        verdict.problems.append(f"exit {run.returncode}")
    changed = lib.diff(sibling_before, lib.manifest(sibling.project, strict=True))
    if changed:
        verdict.problems.append(f"sibling changed: {', '.join(changed[:6])}")
    if lib.servers_of(sibling.project) != sibling_pid:
        verdict.problems.append(f"sibling server pids {lib.servers_of(sibling.project)}, were {sibling_pid}")
    conclude("upgrade one installation next to a sibling with its own server", "none", verdict)


def test_eight_installations_one_batch(case: lib.Case, prepared: lib.Prepared, conclude: Any) -> None:
    """Eight installations (eight servers) on one host upgraded in one batch at forks 8."""
    installs = [case.install(prepared.old, alias=f"i{n}") for n in range(8)]
    # an extra var: Ansible decides `serial` before inventory variables exist
    run = case.run("upgrade.yml", "v2", env={"ANSIBLE_FORKS": "8"}, extra={"praxis_serial": [8]}, timeout=600)
    problems, ends = [], []
    reports = sorted((case.dir / "reports").glob("upgrade-*.json"), key=lambda p: p.stat().st_mtime)
    batches = json.loads(reports[-1].read_text()).get("batches") if reports else None
    if not batches or len(batches) != 1 or len(batches[0]) != 8:
        problems.append(f"not one batch of 8: {batches}")
    for inst in installs:
        verdict = lib.judge(case, inst, prepared, allowed=("NEW",))
        ends.append(verdict.end_state)
        problems += [f"{inst.name}: {p}" for p in verdict.problems]
    if run.returncode != 0:
        problems.append(f"exit {run.returncode}")
    ports = [(fx.read_state(i.project) or {}).get("port") for i in installs]
    if len(set(ports)) != len(ports):
        problems.append(f"ports not distinct: {ports}")
    end = ends[0] if len(set(ends)) == 1 else "/".join(ends)
    conclude("8 installations on one host, one batch, forks 8", "none", lib.Verdict(end, [], problems))
