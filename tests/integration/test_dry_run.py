"""`--check --diff` is the dry run: preflight for real, every later phase reports what it would do, and
nothing at all is written on the target (not even its cache)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from tests.integration.conftest import NO_CHANGE, facts, fx, output, recap, snapshot, tree_diff

pytestmark = pytest.mark.slow

# The running server (not the collection) logs the preflight probe's requests to its own log.
SERVER_LOG = (".praxis-os/.cache/mcp_server.log",)
CONTENT_TREES = ("scripts/", "standards/universal/", "workflows/", "usage/")  # mcp_server/ is the server phase's


def expected_counts(host: Any) -> dict[str, int]:
    """Classify v1 -> v2 per path from the fixture's trees and the host's local edits alone."""
    v1 = {k: v for k, v in fx.installed_tree("v1").items() if k.startswith(CONTENT_TREES)}
    v2 = {k: v for k, v in fx.installed_tree("v2").items() if k.startswith(CONTENT_TREES)}
    local = {}
    for path in host.home.rglob("*"):
        rel = path.relative_to(host.home).as_posix()
        if path.is_file() and rel.startswith(CONTENT_TREES) and "__pycache__" not in rel:
            local[rel] = path.read_text(encoding="utf-8")
    # the user's own workflows (entries of workflows/ no version ships) are not even looked at
    owned = {"/".join(k.split("/")[:2]) for version in fx.VERSIONS for k in fx.installed_tree(version)
             if k.startswith("workflows/")}
    local = {k: v for k, v in local.items() if not k.startswith("workflows/") or "/".join(k.split("/")[:2]) in owned}
    counts = dict.fromkeys(("add", "update", "unchanged", "keep", "conflict", "delete", "user", "keep_removed"), 0)
    for rel in set(local) | set(v2):
        if rel not in v1 and rel not in v2:
            counts["user"] += 1
        elif rel not in v1 or rel not in local:
            counts["add"] += 1
        elif rel not in v2:
            pristine = local[rel] == v1[rel]
            counts["delete" if pristine and not rel.startswith("usage/") else "keep_removed"] += 1
        elif local[rel] == v2[rel]:
            counts["unchanged"] += 1
        elif local[rel] == v1[rel]:
            counts["update"] += 1
        else:
            counts["keep" if v1[rel] == v2[rel] else "conflict"] += 1
    return counts


@pytest.fixture(scope="module")
def dry(make_fleet: Any) -> Iterator[SimpleNamespace]:
    fleet = make_fleet("dryrun")
    alpha = fleet.add("alpha", "v1", http=True)
    beta = fleet.add("beta", "v1")
    fleet.source("v2")
    before = {h.name: snapshot(h.project, SERVER_LOG) for h in (alpha, beta)}
    expected = {h.name: expected_counts(h) for h in (alpha, beta)}
    pid = fx.read_state(alpha.project)["pid"]
    proc = fleet.upgrade("v2", "--check", "--diff")
    # everything the tests look at is taken now: test_a_real_run_after_the_dry_run changes the hosts
    after = {h.name: snapshot(h.project, SERVER_LOG) for h in (alpha, beta)}
    yield SimpleNamespace(fleet=fleet, alpha=alpha, beta=beta, before=before, after=after, expected=expected,
                          pid=pid, after_pid=fx.read_state(alpha.project)["pid"], proc=proc,
                          facts={h.name: h.state() for h in (alpha, beta)},
                          report=fleet.last_report() if fleet.reports() else {"hosts": []})


def test_dry_run_succeeds(dry: SimpleNamespace) -> None:
    assert dry.proc.returncode == 0, output(dry.proc)[-6000:]
    rows = recap(dry.proc)
    assert rows["alpha"]["failed"] == 0 and rows["beta"]["failed"] == 0


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_dry_run_writes_nothing_at_all_on_the_target(dry: SimpleNamespace, name: str) -> None:
    assert tree_diff(dry.before[name], dry.after[name]) == NO_CHANGE
    assert dry.facts[name] is None


def test_dry_run_leaves_the_server_running(dry: SimpleNamespace) -> None:
    assert dry.after_pid == dry.pid


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_dry_run_reports_counts_per_class(dry: SimpleNamespace, name: str) -> None:
    rows = {row["host"]: row for row in dry.report["hosts"]}
    assert rows[name]["outcome"] == "dry_run"
    counts = {k: v for k, v in rows[name]["content_counts"].items() if k in dry.expected[name]}
    assert counts == dry.expected[name]
    assert counts["conflict"] == 1 and counts["keep"] == 1 and counts["add"] > 0 and counts["delete"] > 0


def test_dry_run_diff_names_what_would_change(dry: SimpleNamespace) -> None:
    text = output(dry.proc)
    assert fx.LOCALLY_MODIFIED_CONFLICT in text
    assert "standards/universal/ai-safety/credential-file-protection.md" in text  # would be added
    assert "standards/universal/database/indexing.md" in text  # would be deleted
    assert ".praxis-os/venv/" in text  # .gitignore entry that would be appended


def test_dry_run_shows_the_backup_and_server_plans_without_facts_json(dry: SimpleNamespace) -> None:
    text = output(dry.proc)
    assert "backup: would create " in text and "hard-link snapshot of" in text
    assert "server (process mode):" in text and "would stop pid" in text and "would swap mcp_server/" in text
    # v2 adds a requirement: the dry run must not claim pip would be skipped
    assert "would run pip install: the new version's requirement set differs" in text
    assert "session: no session -> " in text
    assert '"completed_phases"' not in text  # no facts-file JSON dumped as a diff


def test_a_real_run_after_the_dry_run_matches_its_counts(dry: SimpleNamespace) -> None:
    planned = {row["host"]: row["content_counts"] for row in dry.report["hosts"]}
    assert sorted(planned) == ["alpha", "beta"]
    proc = dry.fleet.upgrade("v2")
    assert proc.returncode == 0, output(proc)[-6000:]
    for host in (dry.alpha, dry.beta):
        assert facts(host)["status"] == "completed"
        assert facts(host)["phases"]["content"]["evidence"]["counts"] == planned[host.name]
