"""One upgrade on a small tmpfs, run inside a private mount namespace (`unshare --mount`, as root).

    python -m tests.integration.tmpfs_case <spec.json> <result.json>

spec: {"stash": project to copy, "mount": where the tmpfs goes, "room": free bytes to leave after the copy,
       "inventory": inventory path, "source": praxis_source}. The tmpfs vanishes with the namespace, so the
judging snapshots are taken here and written to result.json: rc, output, the tree before and after
(runtime paths excluded), the bytes used and free.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.harness import BIN, REPO, RUNTIME, ansible_env, snapshot


def main(spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    mount = Path(spec["mount"])
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)], check=True)
    project = mount / "project"
    shutil.copytree(spec["stash"], project, symlinks=True)
    stats = os.statvfs(mount)
    used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    size = used + int(spec["room"])
    # shrink the file system to exactly what is used now plus the room (tmpfs allows a live resize)
    subprocess.run(["mount", "-o", "remount,size=%d" % size, str(mount)], check=True)
    free_before = os.statvfs(mount).f_bavail * stats.f_frsize
    before = snapshot(project, RUNTIME)
    command = [str(BIN / "ansible-playbook"), "-i", spec["inventory"], str(REPO / "playbooks" / "upgrade.yml"),
               "-e", json.dumps({"praxis_source": spec["source"]})]
    proc = subprocess.run(command, cwd=spec["cwd"], env=ansible_env(), text=True, capture_output=True,
                          timeout=600, check=False)
    after = snapshot(project, RUNTIME)
    version = (project / ".praxis-os" / "VERSION.txt").read_text()
    stats = os.statvfs(mount)
    Path(result_path).write_text(json.dumps({
        "rc": proc.returncode, "output": proc.stdout + proc.stderr, "before": before, "after": after,
        "size": size, "used_before": used, "free_before": free_before, "version": version,
        "free_after": stats.f_bavail * stats.f_frsize,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
