"""Shared helpers of the playbook-level integration tests: fleets of fixture installations driven by
the real `ansible-playbook` (tests/harness.py), with their servers always stopped afterwards."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.fixtures import praxis_fixture as fx
from tests.harness import RUNTIME, Fleet, Host, snapshot

__all__ = ["RUNTIME", "Host", "Fleet", "snapshot", "recap", "output", "tree", "framework_view", "fx", "facts",
           "lock_path", "read_json", "probe_http", "probe_stdio", "KEEP", "tree_diff", "NO_CHANGE"]

# "the whole project tree but the cache and the backups": what a rollback must restore byte for byte
KEEP = (".praxis-os/.cache", ".praxis-os/.backups")


@pytest.fixture(scope="module")
def make_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Fleet]]:
    """make_fleet(name) -> an empty fleet in its own directory; every server it started is stopped."""
    fleets: list[Fleet] = []

    def make(name: str) -> Fleet:
        fleet = Fleet(tmp_path_factory.mktemp(name))
        fleets.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in fleets:
            fleet.stop()


def output(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout or "") + (proc.stderr or "")


def recap(proc: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from the PLAY RECAP of a run."""
    text = proc.stdout.split("PLAY RECAP", 1)
    assert len(text) == 2, f"no PLAY RECAP in the output:\n{output(proc)[-4000:]}"
    rows: dict[str, dict[str, int]] = {}
    for line in text[1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match:
            rows[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return rows


def tree(host: Host) -> dict[str, tuple[str, int]]:
    """Snapshot of a host's whole project, runtime paths left out."""
    return snapshot(host.project, RUNTIME)


def framework_view(host: Host) -> dict[str, str]:
    """{installed rel path: text} of the framework files now installed (per the fixture's mapping)."""
    found: dict[str, str] = {}
    for _src, dst in fx.MAPPING:
        root = host.home / dst
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            rel = path.relative_to(host.home).as_posix()
            if path.is_file() and "__pycache__" not in rel and not rel.endswith(".pyc"):
                found[rel] = path.read_text(encoding="utf-8")
    return found


def facts(host: Host) -> dict[str, Any]:
    state = host.state()
    assert state is not None, f"no facts file on {host.name}"
    return state


def lock_path(host: Host) -> Path:
    return host.home / ".upgrade-lock"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def probe_stdio(project: Path) -> dict[str, Any]:
    """MCP handshake + tools/list against a freshly spawned stdio server of `project`."""
    from ansible_collections.praxis.upgrade.plugins.module_utils import mcp_client

    return mcp_client.probe("stdio", command=fx.server_command(project, "stdio"), cwd=str(project),
                            env=fx.server_env(project), timeout=30)


def probe_http(project: Path) -> dict[str, Any]:
    """MCP handshake + tools/list against the http server named by `project`'s state file."""
    from ansible_collections.praxis.upgrade.plugins.module_utils import mcp_client

    state = fx.read_state(project)
    assert state, f"{project} has no server state file"
    return mcp_client.probe("http", url=state["url"], timeout=30)


def tree_diff(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]) -> dict[str, list[str]]:
    """{"added": [...], "removed": [...], "changed": [...]} between two snapshots (empty lists: identical)."""
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(rel for rel in set(before) & set(after) if before[rel] != after[rel]),
    }


NO_CHANGE = {"added": [], "removed": [], "changed": []}
