"""Installations as upstream's own docs make them (no base manifest, no VERSION.txt), sources as users
have them (a touched committed runtime file, shallow or one-commit clones), IDE config the installer
wrote, and content that changes only once the old server has stopped (issue 7 items 3, 5, 6, 7, 10)."""
from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from tests.integration.conftest import RUNTIME, facts, framework_view, fx, output, read_json, recap, snapshot

pytestmark = pytest.mark.slow

CONFLICT, KEPT = fx.LOCALLY_MODIFIED_CONFLICT, fx.LOCALLY_MODIFIED_KEPT
MY_RULES = "# Our rules\n\nAlways answer in British English.\n"


def mcp(host: Any) -> dict:
    return json.loads((host.project / ".cursor" / "mcp.json").read_text())


@pytest.fixture(scope="module")
def run(make_fleet: Any) -> Iterator[SimpleNamespace]:
    fleet = make_fleet("docs")
    docs = fleet.add("docs", "v1", mode="docs", http=True)
    edited = fleet.add("edited", "v1", mode="docs")
    (edited.project / ".cursorrules").write_text(MY_RULES)
    edited_mcp = mcp(edited)
    edited_mcp["mcpServers"][fx.MCP_SERVER_KEY["v1"]]["autoApprove"].append("pos_browser")
    (edited.project / ".cursor" / "mcp.json").write_text(json.dumps(edited_mcp, indent=4))
    v1 = fx.head_commit(fleet.source("v1"))
    source = fleet.source("v2")
    (source / fx.COMMITTED_RUNTIME_FILE).write_text("a running server appended this\n")  # dirty, never installed
    before = {h.name: {"mcp": mcp(h), "local": {rel: (h.home / rel).read_text() for rel in (CONFLICT, KEPT)}}
              for h in (docs, edited)}
    proc = fleet.upgrade("v2")
    yield SimpleNamespace(fleet=fleet, docs=docs, edited=edited, v1=v1, v2=fx.head_commit(source), proc=proc,
                          before=before)


def test_docs_made_installs_upgrade_with_the_installed_commit_identified(run: SimpleNamespace) -> None:
    assert run.proc.returncode == 0, output(run.proc)[-6000:]
    for host in (run.docs, run.edited):
        state = facts(host)
        assert state["status"] == "completed" and state["installed_commit"] == run.v1
        log = (host.home / "UPDATE_LOG.txt").read_text()
        assert run.v1[:12] in log and run.v2[:12] in log
        summary = read_json(sorted((host.home / ".cache").glob("upgrade-summary-*.json"))[-1])
        assert summary["installed_commit"] == run.v1
        assert run.v1[:12] in sorted((host.home / ".cache").glob("upgrade-summary-*.md"))[-1].read_text()
    report = run.fleet.reports()[-1].with_suffix(".md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| docs") or line.startswith("| edited")]
    assert len(rows) == 2 and all(run.v1[:7] in row and "| ? |" not in row for row in rows), report


def test_no_silent_mix_pristine_files_updated_local_edits_kept_removed_files_deleted(run: SimpleNamespace) -> None:
    v1, v2 = fx.installed_tree("v1"), fx.installed_tree("v2")
    for host in (run.docs, run.edited):
        view = framework_view(host)
        stale = [rel for rel, text in v2.items() if rel not in (CONFLICT, KEPT) and view.get(rel) != text]
        assert stale == [], "files left at the old version"
        removed = [rel for rel in v1 if rel not in v2 and not rel.startswith("usage/") and rel in view]
        assert removed == [], "files removed upstream kept as if they were the user's"
        assert view[CONFLICT] == run.before[host.name]["local"][CONFLICT]
        assert view[CONFLICT + ".upstream"] == v2[CONFLICT]
        assert view[KEPT] == run.before[host.name]["local"][KEPT]
        summary = read_json(sorted((host.home / ".cache").glob("upgrade-summary-*.json"))[-1])
        assert CONFLICT in summary["conflicts"]


def test_pristine_ide_config_follows_the_new_installer(run: SimpleNamespace) -> None:
    now = mcp(run.docs)["mcpServers"]
    assert list(now) == [fx.MCP_SERVER_KEY["v2"], fx.USER_MCP_SERVER]  # renamed in place, the user's entry kept
    assert now[fx.MCP_SERVER_KEY["v2"]] == fx.mcp_entry("v2")
    assert now[fx.USER_MCP_SERVER] == run.before["docs"]["mcp"]["mcpServers"][fx.USER_MCP_SERVER]
    assert "${workspaceFolder}" in (run.docs.project / ".cursor" / "mcp.json").read_text()
    assert (run.docs.project / ".cursorrules").read_text() == fx.CURSORRULES["v2"]
    assert not (run.docs.project / ".cursorrules.upstream").exists()


def test_user_modified_ide_config_is_a_conflict_kept_with_upstream_beside(run: SimpleNamespace) -> None:
    project = run.edited.project
    assert (project / ".cursorrules").read_text() == MY_RULES
    assert (project / ".cursorrules.upstream").read_text() == fx.CURSORRULES["v2"]
    assert mcp(run.edited) == run.before["edited"]["mcp"]
    beside = json.loads((project / ".cursor" / "mcp.json.upstream").read_text())["mcpServers"]
    assert beside[fx.MCP_SERVER_KEY["v2"]] == fx.mcp_entry("v2") and fx.MCP_SERVER_KEY["v1"] not in beside
    summary = read_json(sorted((run.edited.home / ".cache").glob("upgrade-summary-*.json"))[-1])
    assert {".cursorrules", ".cursor/mcp.json"} <= set(summary["conflicts"])


def test_rollback_restores_the_ide_config_and_removes_upstream_copies(run: SimpleNamespace) -> None:
    assert run.proc.returncode == 0
    host = run.edited
    backup = facts(host)["backup_path"]
    proc = run.fleet.playbook("rollback.yml", "--limit", "edited",
                              extra={"praxis_backup_name": backup.rsplit("/", 1)[1]})
    assert proc.returncode == 0, output(proc)[-6000:]
    assert mcp(host) == run.before["edited"]["mcp"]
    assert (host.project / ".cursorrules").read_text() == MY_RULES
    assert not (host.project / ".cursorrules.upstream").exists()
    assert not (host.project / ".cursor" / "mcp.json.upstream").exists()


# ---- sources whose history cannot prove pristine files ------------------------------------------------

@pytest.mark.parametrize("kind", ["shallow", "one-commit"])
def test_source_without_history_is_refused_before_any_change(make_fleet: Any, kind: str) -> None:
    fleet = make_fleet("nohistory-" + kind)
    host = fleet.add("h", "v1", mode="docs")
    if kind == "shallow":
        source = fleet.workdir / "sources" / "v2-shallow"
        fx.make_shallow_source(fleet.source("v2"), source)
    else:
        source = fleet.workdir / "sources" / "v2-one-commit"
        fx.make_one_commit_source(source, "v2")
    before = snapshot(host.project)
    proc = fleet.playbook("upgrade.yml", extra={"praxis_source": str(source)})
    assert proc.returncode != 0
    text = output(proc)
    assert "a full clone is needed" in text
    assert ("shallow clone" if kind == "shallow" else "single commit") in text
    assert "TASK [praxis.upgrade.backup" not in text
    assert snapshot(host.project) == before


def test_base_manifest_install_from_a_shallow_source_still_upgrades_in_check_mode(make_fleet: Any) -> None:
    """With a base manifest, pristine files need no history: a shallow source is fine (dry run)."""
    fleet = make_fleet("shallow-base")
    host = fleet.add("h", "v1")
    source = fleet.workdir / "sources" / "v2-shallow"
    fx.make_shallow_source(fleet.source("v2"), source)
    before = snapshot(host.project, RUNTIME)
    proc = fleet.playbook("upgrade.yml", "--check", "--diff", extra={"praxis_source": str(source)})
    assert proc.returncode == 0, output(proc)[-6000:]
    assert snapshot(host.project, RUNTIME) == before


# ---- content changes only once the old server has stopped --------------------------------------------

def test_content_phase_only_stages_the_plan_is_applied_in_the_server_phase(make_fleet: Any) -> None:
    fleet = make_fleet("staged")
    host = fleet.add("s", "v1", http=True)
    live_before = framework_view(host)
    ide_before = {rel: (host.project / rel).read_bytes() for rel in fx.IDE_FILES}
    pid = fx.read_state(host.project)["pid"]
    killed = fleet.upgrade("v2", env={"PRAXIS_FAULT_POINT": "content.planned"})
    died = killed.returncode == -signal.SIGKILL or "A worker was found in a dead state" in killed.stderr
    assert died, output(killed)[-4000:]
    state = facts(host)
    assert state["completed_phases"] == ["preflight", "backup", "content"]
    evidence = state["phases"]["content"]["evidence"]
    plan = read_json(Path(evidence["plan_path"]))
    assert plan["writes"] and evidence["plan_sha256"]
    # the old server, still running, sees the v1 files and the old IDE config: nothing live was written
    assert fx.pid_alive(pid) and framework_view(host) == live_before
    assert {rel: (host.project / rel).read_bytes() for rel in fx.IDE_FILES} == ide_before
    resumed = fleet.upgrade("v2")
    assert resumed.returncode == 0, output(resumed)[-6000:]
    assert recap(resumed)["s"]["failed"] == 0
    view = framework_view(host)
    assert all(view.get(rel) == text for rel, text in fx.installed_tree("v2").items() if rel not in (CONFLICT, KEPT))
    assert mcp(host)["mcpServers"][fx.MCP_SERVER_KEY["v2"]] == fx.mcp_entry("v2")
