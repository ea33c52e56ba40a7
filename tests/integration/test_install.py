"""playbooks/install.yml: fresh installs (dry run first, then idempotent), refusals that change nothing,
failures undone to the byte, adopting a docs-made installation, and install -> upgrade -> rollback."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.faults.lib import manifest
from tests.harness import BIN, ansible_env
from tests.integration.conftest import fx, output, probe_http, probe_stdio, read_json, recap

pytestmark = pytest.mark.slow

USER_GITIGNORE = "node_modules/\n*.log\n"
USER_MCP = {"mcpServers": {"github": {"command": "npx", "args": ["-y", "@example/github-mcp"]}}}
PROJECT_FILES = {".gitignore": USER_GITIGNORE, ".cursor/mcp.json": json.dumps(USER_MCP, indent=2) + "\n",
                 "src/app.py": "print('the project itself')\n"}
DEFAULT_REPORTS = "praxis-reports"  # the default praxis_report_dir: below the operator's working directory
GITIGNORE_ENTRIES = [".praxis-os/venv/", ".praxis-os/.cache/", ".praxis-os/.backups/", ".praxis-os/.upgrade-lock",
                     ".praxis-os/.mcp_server_state.json"]


def commit_of(version_source: Path) -> str:
    return subprocess.run(["git", "-C", str(version_source), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def rows(fleet: Any, reports: str = "reports") -> dict[str, dict[str, Any]]:
    """{host: row} of the newest run report in `<workdir>/<reports>`."""
    newest = sorted((fleet.workdir / reports).glob("install-*.json"), key=lambda p: p.stat().st_mtime)[-1]
    assert newest.with_suffix(".html").is_file() and newest.with_suffix(".md").is_file()  # kind=install: its own page
    return {row["host"]: row for row in read_json(newest)["hosts"]}


def assert_installed(host: Any, source: Path, version: str, http: bool = False) -> None:
    home = host.home
    commit = commit_of(source)
    assert f"commit={commit}" in (home / "VERSION.txt").read_text()
    base = read_json(home / ".cache" / "base-manifest.json")
    assert base["commit"] == commit and "mcp_server/__main__.py" in base["files"]
    assert not (home / ".install-journal.json").exists() and not (home / ".upgrade-lock").exists()
    assert not (home / ".cache" / "upgrade").exists()
    health = probe_http(host.project) if http else probe_stdio(host.project)
    assert health["healthy"], health
    assert sorted(health["tools"]) == fx.EXPECTED_TOOLS[version]
    lines = (host.project / ".gitignore").read_text().splitlines()
    assert lines[:2] == USER_GITIGNORE.splitlines() and all(entry in lines for entry in GITIGNORE_ENTRIES)
    servers = read_json(host.project / ".cursor" / "mcp.json")["mcpServers"]
    assert servers["github"] == USER_MCP["mcpServers"]["github"]  # the user's entry kept
    key, value = fx.docs_mcp_entry(source)
    assert servers[key] == value  # the entry the source's installer writes
    assert (host.project / ".cursorrules").read_bytes() == (source / "installation" / ".cursorrules").read_bytes()


def test_operator_surface_minimal_inventory_dry_run_install_and_idempotent_rerun(make_fleet: Any) -> None:
    """Only praxis_project_dir in the inventory, praxis_source on the command line, the FQCN playbook."""
    fleet = make_fleet("install-operator")
    host = fleet.add_project("h", PROJECT_FILES)
    source = fleet.source("v1")
    inventory = fleet.workdir / "minimal.yml"
    inventory.write_text(json.dumps({"praxis": {"hosts": {"h": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "praxis_project_dir": str(host.project)}}}}))
    # offline like a fleet with a wheelhouse, through pip's own environment (the inventory stays minimal)
    env = ansible_env({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(fx.wheelhouse())})

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "praxis.upgrade.install",
                               "-e", f"praxis_source={source}", *args], cwd=fleet.workdir, env=env, text=True,
                              capture_output=True, timeout=600, check=False)

    before = manifest(host.project, strict=True)
    dry = run("--check", "--diff")
    assert dry.returncode == 0, output(dry)[-6000:]
    assert manifest(host.project, strict=True) == before  # the dry run changed nothing
    text = dry.stdout
    assert "mcp_server/__main__.py" in text and "(added)" in text
    assert "../.gitignore  + .praxis-os/venv/" in text and "../.cursor/mcp.json" in text
    assert "python -m venv" in text
    assert rows(fleet, DEFAULT_REPORTS)["h"]["outcome"] == "dry_run" and rows(fleet, DEFAULT_REPORTS)["h"]["kind"] == "install"

    first = run()
    assert first.returncode == 0, output(first)[-6000:]
    assert_installed(host, source, "v1")
    row = rows(fleet, DEFAULT_REPORTS)["h"]
    assert row["outcome"] == "installed" and row["content_counts"]["add"] > 50 and row["pip_ran"]
    assert sorted(row["tools_after"]) == fx.EXPECTED_TOOLS["v1"]

    installed = manifest(host.project)
    again = run()
    assert again.returncode == 0, output(again)[-6000:]
    assert recap(again)["h"]["changed"] == 0, output(again)[-4000:]
    assert rows(fleet, DEFAULT_REPORTS)["h"]["outcome"] == "up_to_date"
    assert manifest(host.project) == installed


def test_refuses_an_installation_at_another_commit_changing_nothing(make_fleet: Any) -> None:
    fleet = make_fleet("install-refuse")
    host = fleet.add("h", "v1")
    fleet.source("v2")
    before = manifest(host.project, strict=True)
    proc = fleet.install("v2")
    text = output(proc)
    assert proc.returncode != 0, text[-4000:]
    assert "already installed at commit" in text and "praxis.upgrade.upgrade" in text, text[-4000:]
    assert manifest(host.project, strict=True) == before


# variant -> (what an existing project holds inside .praxis-os before, group vars, words of the failure)
FAILURES = {
    "v2-pipfail": ({}, {}, ["praxis-nonexistent-dep"]),
    "v2-hang": ({".praxis-os/specs/2026-01-01-x/srd.md": "# ours\n"},
                {"praxis_server_mode": "process", "praxis_health_timeout": 8}, ["did not come up healthy"]),
}


@pytest.mark.parametrize("variant", sorted(FAILURES))
def test_failure_midway_leaves_the_project_exactly_as_it_was(make_fleet: Any, variant: str) -> None:
    inside, group_vars, words = FAILURES[variant]
    fleet = make_fleet("install-" + variant)
    host = fleet.add_project("h", dict(PROJECT_FILES, **inside))
    fleet.source(variant)
    before = manifest(host.project, strict=True)
    proc = fleet.install(variant, **group_vars)
    text = output(proc)
    assert proc.returncode != 0, text[-6000:]
    assert "undone: the project is as it was before this run" in text and all(w in text for w in words), text[-6000:]
    assert manifest(host.project, strict=True) == before
    assert (host.home.exists()) == bool(inside)  # created by the install: removed; there before: kept
    row = rows(fleet)["h"]
    assert row["outcome"] == "install_failed" and row["undone"]["undone"], row
    assert servers_of(host.project) == [], row  # the never-healthy server does not outlive the undo


def servers_of(project: Path) -> list[int]:
    """Pids of processes running in `project` (the install's server would be one)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")) == project:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_adopt_records_a_docs_made_installation_without_changing_framework_files(make_fleet: Any) -> None:
    fleet = make_fleet("install-adopt")
    host = fleet.add("h", "v1", mode="docs")
    source = fleet.source("v1")
    assert not (host.home / "VERSION.txt").exists()
    before = manifest(host.project, strict=True)

    refused = fleet.install("v1")
    assert refused.returncode != 0 and "praxis_install_mode=adopt" in output(refused), output(refused)[-4000:]
    assert manifest(host.project, strict=True) == before

    dry = fleet.install("v1", "--check", "--diff", praxis_install_mode="adopt")
    assert dry.returncode == 0 and "base manifest" in dry.stdout, output(dry)[-4000:]
    assert manifest(host.project, strict=True) == before

    proc = fleet.install("v1", praxis_install_mode="adopt")
    assert proc.returncode == 0, output(proc)[-6000:]
    after = manifest(host.project, strict=True)
    changed = sorted(rel for rel in set(before) | set(after) if before.get(rel) != after.get(rel))
    records = {".praxis-os/VERSION.txt", ".praxis-os/UPDATE_LOG.txt", ".praxis-os/INSTALLATION_SUMMARY.md",
               ".praxis-os/.cache/base-manifest.json"}
    assert set(changed) - records == {rel for rel in changed if "upgrade-summary-" in rel}, changed
    commit = commit_of(source)
    assert f"commit={commit}" in (host.home / "VERSION.txt").read_text()
    base = read_json(host.home / ".cache" / "base-manifest.json")
    assert base["commit"] == commit
    assert base["files"]["mcp_server/__main__.py"] == hashlib.sha256(
        (host.home / "mcp_server" / "__main__.py").read_bytes()).hexdigest()
    assert rows(fleet)["h"]["outcome"] == "adopted"

    again = fleet.install("v1", praxis_install_mode="adopt")
    assert again.returncode == 0 and recap(again)["h"]["changed"] == 0, output(again)[-4000:]


def test_install_then_upgrade_then_rollback(make_fleet: Any) -> None:
    fleet = make_fleet("install-lifecycle")
    host = fleet.add_project("h", PROJECT_FILES)
    v1 = fleet.source("v1")
    proc = fleet.install("v1", praxis_server_mode="process")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert_installed(host, v1, "v1", http=True)

    upgraded = fleet.upgrade("v2")
    assert upgraded.returncode == 0, output(upgraded)[-6000:]
    assert sorted(probe_http(host.project)["tools"]) == fx.EXPECTED_TOOLS["v2"]
    assert host.version_commit() == commit_of(fleet.source("v2"))

    rolled = fleet.playbook("rollback.yml")
    assert rolled.returncode == 0, output(rolled)[-6000:]
    assert sorted(probe_http(host.project)["tools"]) == fx.EXPECTED_TOOLS["v1"]
    assert host.version_commit() == commit_of(v1)


def test_an_install_killed_midway_is_undone_by_the_next_run_which_installs(make_fleet: Any) -> None:
    fleet = make_fleet("install-killed")
    host = fleet.add_project("h", PROJECT_FILES)
    source = fleet.source("v1")
    killed = fleet.install("v1", env={"PRAXIS_FAULT_POINT": "server.during_pip"})
    assert killed.returncode != 0
    assert (host.home / ".install-journal.json").exists() and (host.home / ".upgrade-lock").exists()
    proc = fleet.install("v1")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert_installed(host, source, "v1")
    assert read_json(host.project / ".cursor" / "mcp.json")["mcpServers"]["github"]  # restored, then installed
