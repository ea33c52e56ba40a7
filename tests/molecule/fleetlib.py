"""Shared testinfra helpers for the Molecule scenarios (controller side).

Everything is checked on the hosts over SSH (ControlMaster, see the fleet's ssh_config) against an
independent baseline: the fixture sources on the controller and the snapshot taken right after the
v1 install (extensions/molecule/shared/prepare.yml).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import testinfra

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.praxis_fixture import framework_files  # noqa: E402
from tests.fixtures.praxis_fixture.installer import PROJECT_GITIGNORE  # noqa: E402

HERE = Path(__file__).resolve().parent
PHASES = ("preflight", "backup", "content", "server", "validate", "cleanup")
HOME = ".praxis-os"
FACTS = f"{HOME}/.cache/facts.d/praxis_upgrade.fact"
LOCK = f"{HOME}/.upgrade-lock"
# written by servers, probes and the upgrade itself; never part of "unchanged" comparisons
RUNTIME = (f"{HOME}/.cache", f"{HOME}/.backups", f"{HOME}/venv", f"{HOME}/.mcp_server_state.json",
           f"{HOME}/VERSION.txt", f"{HOME}/UPDATE_LOG.txt", f"{HOME}/INSTALLATION_SUMMARY.md")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _under(rel: str, prefixes: tuple[str, ...]) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in prefixes)


class Fleet:
    """The fleet of one scenario: state written by scripts/fleet/fleet.py and shared/prepare.yml."""

    def __init__(self, state_dir: str | Path | None = None) -> None:
        if state_dir is None:
            state_dir = os.environ.get("PRAXIS_FLEET_DIR") or ""
        if not state_dir:
            raise RuntimeError("PRAXIS_FLEET_DIR is not set; run these tests through `molecule verify`")
        self.dir = Path(state_dir)
        self.state = json.loads((self.dir / "fleet.json").read_text())
        meta = json.loads((self.dir / "sources.json").read_text())
        self.sources: dict[str, dict[str, Any]] = meta["sources"]
        self.tools: dict[str, list[str]] = meta["tools"]
        self.names = [h["name"] for h in self.state["hosts"]]
        self._hosts: dict[str, Any] = {}

    # -------------------------------------------------------------- access
    def host(self, name: str) -> Any:
        if name not in self._hosts:
            self._hosts[name] = testinfra.get_host(f"ssh://{name}", ssh_config=str(self.dir / "ssh_config"))
        return self._hosts[name]

    def project(self, name: str) -> str:
        return next(h["project_dir"] for h in self.state["hosts"] if h["name"] == name)

    def baseline(self, name: str) -> dict[str, Any]:
        return json.loads((self.dir / "baseline" / f"{name}.json").read_text())

    def commit(self, version: str) -> str:
        return self.sources[version]["commit"]

    def source(self, version: str) -> Path:
        return Path(self.sources[version]["dest"])

    def facts(self, name: str) -> dict[str, Any]:
        f = self.host(name).file(f"{self.project(name)}/{FACTS}")
        assert f.exists, f"{name}: no facts file {f.path}"
        return json.loads(f.content_string)

    def run_script(self, name: str, script: str, *args: str) -> Any:
        text = (HERE / script).read_text()
        res = self.host(name).run("python3 -c " + " ".join(["%s"] * (1 + len(args))), text, *args)
        assert res.rc == 0, f"{name}: {script} failed rc={res.rc}: {res.stderr}"
        return json.loads(res.stdout)

    def snapshot(self, name: str) -> dict[str, list[Any]]:
        return self.run_script(name, "snapshot.py", self.project(name), "--no-hash", f"{HOME}/venv")

    def mcp(self, name: str, transport: str) -> dict[str, Any]:
        return self.run_script(name, "mcp_probe.py", self.project(name), transport)

    def reports(self) -> list[dict[str, Any]]:
        """Run reports on the controller, oldest first."""
        files = sorted((self.dir / "reports").glob("upgrade-*.json"), key=lambda p: p.stat().st_mtime_ns)
        return [json.loads(p.read_text()) for p in files]

    # -------------------------------------------------------------- expectations
    def framework(self, version: str) -> dict[str, str]:
        """{path relative to the project: sha256} of the framework files of `version`."""
        return {f"{HOME}/{rel}": sha256(p) for rel, p in framework_files(self.source(version)).items()}

    def user_files(self, name: str) -> dict[str, str]:
        base = self.baseline(name)
        files = list(base["install"]["user_files"]) + list(base["install"]["locally_modified"].values())
        return {rel: base["snapshot"][rel][4] for rel in files}


# ------------------------------------------------------------------ assertions shared by scenarios
def assert_lock_absent(fleet: Fleet, name: str) -> None:
    lock = fleet.host(name).file(f"{fleet.project(name)}/{LOCK}")
    assert not lock.exists, f"{name}: lock {lock.path} left behind: {lock.content_string}"


def assert_user_files_unchanged(fleet: Fleet, name: str, snap: dict[str, list[Any]]) -> None:
    """User files byte for byte as installed; the project .gitignore only appended to (SPEC §7)."""
    expected = fleet.user_files(name)
    assert expected, f"{name}: baseline has no user files; prepare.yml did not record them"
    gitignore = expected.pop(".gitignore", None)
    changed = {rel: (sha, snap.get(rel, [None] * 5)[4]) for rel, sha in expected.items()
               if snap.get(rel, [None] * 5)[4] != sha}
    assert not changed, f"{name}: user files changed or missing (baseline, now): {changed}"
    if gitignore is not None:
        assert gitignore == hashlib.sha256(PROJECT_GITIGNORE.encode()).hexdigest(), \
            f"{name}: baseline .gitignore is not the fixture's; update fleetlib with the fixture"
        now = fleet.host(name).file(f"{fleet.project(name)}/.gitignore").content_string
        assert now.startswith(PROJECT_GITIGNORE), \
            f"{name}: the project .gitignore was rewritten, not appended to: {now!r}"


def assert_upgraded(fleet: Fleet, name: str, version: str = "v2") -> None:
    """Framework files by checksum equal the source of `version`, user content untouched, state done."""
    snap = fleet.snapshot(name)
    base = fleet.baseline(name)
    local = set(base["install"]["locally_modified"].values())
    want = fleet.framework(version)
    wrong = {rel: (sha, snap.get(rel, [None] * 5)[4]) for rel, sha in want.items()
             if rel not in local and snap.get(rel, [None] * 5)[4] != sha}
    assert not wrong, f"{name}: framework files differ from {version} (source, installed): {wrong}"
    conflict = base["install"]["locally_modified"].get("conflict")
    if conflict and conflict in want:
        upstream = snap.get(conflict + ".upstream", [None] * 5)[4]
        assert upstream == want[conflict], f"{name}: {conflict}.upstream is not the {version} version"
    gone = [rel for rel in set(fleet.framework("v1")) - set(want) - local
            if not rel.startswith(f"{HOME}/usage/") and rel in snap]
    assert not gone, f"{name}: files removed upstream in {version} are still installed: {gone}"
    assert_user_files_unchanged(fleet, name, snap)
    facts = fleet.facts(name)
    assert facts["status"] == "completed", f"{name}: status {facts['status']!r}, facts: {facts}"
    assert facts["target_commit"] == fleet.commit(version), f"{name}: facts target {facts['target_commit']}"
    # cleanup (records, reports) closes the session with status completed instead of a phase entry
    assert set(PHASES[:-1]) <= set(facts["completed_phases"]), f"{name}: phases {facts['completed_phases']}"
    assert facts.get("finished_at"), f"{name}: session not finished: {facts}"
    version_txt = fleet.host(name).file(f"{fleet.project(name)}/{HOME}/VERSION.txt").content_string
    assert f"commit={fleet.commit(version)}" in version_txt, f"{name}: VERSION.txt says {version_txt!r}"
    assert_lock_absent(fleet, name)
    assert_healthy(fleet, name, version)


def assert_healthy(fleet: Fleet, name: str, version: str) -> None:
    transport = "http" if fleet.baseline(name)["http"] else "stdio"
    probe = fleet.mcp(name, transport)
    assert probe["ok"], f"{name}: MCP {transport} probe failed: {probe['error']}"
    assert probe["tools"] == sorted(fleet.tools[version]), \
        f"{name}: tools {probe['tools']} are not those of {version} {sorted(fleet.tools[version])}"


def snapshot_diff(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> list[str]:
    """Paths (outside runtime files) whose kind, mode or checksum differ, or that exist on one side only."""
    def key(entry: list[Any] | None) -> Any:
        return None if entry is None else (entry[0], entry[2], entry[4])
    return sorted(rel for rel in set(before) | set(after)
                  if not _under(rel, RUNTIME) and key(before.get(rel)) != key(after.get(rel)))


def assert_untouched(fleet: Fleet, name: str) -> None:
    """Nothing outside runtime files changed since the v1 install; no session was ever started."""
    snap = fleet.snapshot(name)
    before = fleet.baseline(name)["snapshot"]
    diff = sorted(rel for rel in set(before) | set(snap)
                  if not _under(rel, RUNTIME) and before.get(rel, [None] * 5)[4] != snap.get(rel, [None] * 5)[4])
    assert not diff, f"{name}: changed although the run stopped before its batch: {diff}"
    facts = fleet.host(name).file(f"{fleet.project(name)}/{FACTS}")
    assert not facts.exists, f"{name}: a session was started: {facts.content_string}"
    assert_healthy(fleet, name, "v1")


def assert_rolled_back(fleet: Fleet, name: str) -> dict[str, Any]:
    """The v1 tree is back exactly (no residue), healthy, state rolled_back, lock released."""
    snap = fleet.snapshot(name)
    before = fleet.baseline(name)["snapshot"]
    diff = sorted(rel for rel in set(before) | set(snap)
                  if not _under(rel, RUNTIME) and before.get(rel, [None] * 5)[4] != snap.get(rel, [None] * 5)[4])
    assert not diff, f"{name}: not restored exactly (changed, missing or residue): {diff}"
    facts = fleet.facts(name)
    assert facts["status"] == "rolled_back", f"{name}: status {facts['status']!r}, facts: {facts}"
    assert facts.get("reason"), f"{name}: rolled back without a recorded reason: {facts}"
    version_txt = fleet.host(name).file(f"{fleet.project(name)}/{HOME}/VERSION.txt").content_string
    assert f"commit={fleet.commit('v1')}" in version_txt, f"{name}: VERSION.txt says {version_txt!r}"
    assert_lock_absent(fleet, name)
    assert_healthy(fleet, name, "v1")
    return facts


def report_rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{host: row} of the hosts that reported (plugins/module_utils/report.py: `hosts` holds only
    those; `inventory` lists every host of the play; the markdown shows the rest as not_reached)."""
    return {row["host"]: row for row in report["hosts"]}


def row_commits(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(from, to) commits of a run report row, wherever the row kind keeps them."""
    session = row.get("session") or {}
    return (row.get("installed_commit") or session.get("installed_commit"),
            row.get("target_commit") or session.get("target_commit"))


def row_seconds(row: dict[str, Any]) -> dict[str, float]:
    """{phase: duration_s} of a run report row."""
    phases = (row.get("session") or {}).get("phases") or {}
    return {name: p.get("duration_s") for name, p in phases.items() if p and p.get("duration_s") is not None}


def markdown_outcomes(report_json: Path) -> dict[str, str]:
    """{host: outcome} from the markdown run report beside `report_json` (what an operator reads)."""
    text = report_json.with_suffix(".md").read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # a row starts with "| host | outcome |"; a multi-line failure cell may continue it below
        if line.startswith("| ") and len(cells) >= 2 and cells[0] != "host" and not cells[0].startswith("---"):
            out[cells[0]] = cells[1]
    return out


def assert_completed_row(fleet: Fleet, name: str, row: dict[str, Any], old: str = "v1",
                         new: str = "v2") -> None:
    """A completed row names both versions and says how long every phase took."""
    assert row["outcome"] == "completed", f"{name}: {row}"
    assert row_commits(row) == (fleet.commit(old), fleet.commit(new)), \
        f"{name}: report row versions {row_commits(row)} are not {old} -> {new}"
    seconds = row_seconds(row)
    # the working phases; preflight is recorded without a duration by the collection
    assert set(PHASES[1:-1]) <= set(seconds), f"{name}: report row lacks phase durations: {seconds}"
    assert all(isinstance(v, (int, float)) and v >= 0 for v in seconds.values()), seconds
    assert sorted(row.get("tools_after") or []) == sorted(fleet.tools[new]), f"{name}: tools {row.get('tools_after')}"
