"""Run one ENOSPC case inside a private mount namespace (`unshare --mount`), on a small tmpfs.

    unshare --mount --propagation private -- python -m tests.faults.inns '<json spec>'

The tmpfs exists only in this namespace: the installation is copied onto it, its server started, the
upgrade run and the end state judged here; the servers are stopped before the namespace goes away.
Prints one JSON line `{"verdict": ..., ...}` last.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tests.conftest  # noqa: F401  # pylint: disable=unused-import  # makes the collection importable
from tests.faults import lib


def main(spec: dict) -> dict:
    prepared = lib.prepare(Path(spec["prepared"]))
    mnt = Path(spec["mount"])
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m,mode=0755", "tmpfs", str(mnt)], check=True)
    case = lib.Case(Path(spec["workdir"]), prepared.sources, spec["name"])
    try:
        inst = case.install(prepared.old, http=True, project=mnt / lib.PROJECT)
        fs = os.statvfs(mnt)
        used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        size = used + int(spec["margin"])
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)
        run = case.run("upgrade.yml", "v2")
        verdict = lib.judge(case, inst, prepared)
        fs = os.statvfs(mnt)
        return {"end": verdict.end_state, "problems": verdict.problems, "returncode": run.returncode,
                "message": lib.error_text(run.output)[-600:], "used_before": used, "size": size,
                "free_after": fs.f_bavail * fs.f_frsize}
    finally:
        case.stop_servers()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


if __name__ == "__main__":
    result = main(json.loads(sys.argv[1]))
    sys.stdout.flush()
    print(json.dumps(result))
