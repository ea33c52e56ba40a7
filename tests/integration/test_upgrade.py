"""v1 -> v2 through `playbooks/upgrade.yml` on two installations (one http server run as a process,
one IDE-launched), while a third project on the same machine keeps its own server; then a re-run at
the target, which must change nothing; then each conflict policy."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from tests.integration.conftest import (RUNTIME, facts, framework_view, fx, lock_path, output, probe_http,
                                        probe_stdio, read_json, recap, snapshot)

pytestmark = pytest.mark.slow

CONFLICT, KEPT = fx.LOCALLY_MODIFIED_CONFLICT, fx.LOCALLY_MODIFIED_KEPT
TREES = tuple(dst + "/" for _src, dst in fx.MAPPING)


def user_bytes(host: Any) -> dict[str, bytes]:
    return {rel: (host.project / rel).read_bytes() for rel in host.install["user_files"]}


def expected_framework(before: dict[str, bytes], local_edit: dict[str, str]) -> dict[str, str]:
    """What the framework trees must hold after v1 -> v2 with keep_local, from the fixture alone."""
    v1, v2 = fx.installed_tree("v1"), fx.installed_tree("v2")
    expected = dict(v2)
    expected.update({rel: text for rel, text in v1.items() if rel.startswith("usage/")})  # merge, never delete
    for rel, data in before.items():  # user files inside the framework trees stay as they are
        inner = rel[len(".praxis-os/"):]
        if rel.startswith(".praxis-os/") and inner.startswith(TREES):
            expected[inner] = data.decode("utf-8")
    expected[KEPT] = local_edit[KEPT]
    expected[CONFLICT] = local_edit[CONFLICT]
    expected[CONFLICT + ".upstream"] = v2[CONFLICT]
    return expected


@pytest.fixture(scope="module")
def run(make_fleet: Any) -> Iterator[SimpleNamespace]:
    fleet = make_fleet("upgrade")
    alpha = fleet.add("alpha", "v1", http=True)
    beta = fleet.add("beta", "v1")
    other = fleet.workdir / "projects" / "other"  # same machine, same command line, not in the inventory
    fx.install(fleet.source("v1"), other, fx.wheelhouse(), user_content=False)
    fx.start_http_server(other)
    try:
        before = SimpleNamespace(
            user={h.name: user_bytes(h) for h in (alpha, beta)},
            local_edit={h.name: {rel: (h.home / rel).read_text() for rel in (CONFLICT, KEPT)} for h in (alpha, beta)},
            alpha_pid=fx.read_state(alpha.project)["pid"],
            other_state=fx.read_state(other),
            other_tree=snapshot(other),
        )
        proc = fleet.upgrade("v2")
        yield SimpleNamespace(fleet=fleet, alpha=alpha, beta=beta, other=other, before=before, proc=proc,
                              v2=fx.head_commit(fleet.source("v2")))
    finally:
        fx.stop_server(other)


def test_upgrade_succeeds_on_every_host(run: SimpleNamespace) -> None:
    assert run.proc.returncode == 0, output(run.proc)[-6000:]
    rows = recap(run.proc)
    for name in ("alpha", "beta"):
        assert rows[name]["failed"] == 0 and rows[name]["changed"] > 0, rows


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_framework_files_are_v2_and_local_edits_survive(run: SimpleNamespace, name: str) -> None:
    host = getattr(run, name)
    expected = expected_framework(run.before.user[name], run.before.local_edit[name])
    actual = framework_view(host)
    assert sorted(set(actual) - set(expected)) == [], "residue or unexpected files"
    assert sorted(set(expected) - set(actual)) == [], "missing files"
    assert [rel for rel in expected if actual[rel] != expected[rel]] == []


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_user_files_are_byte_identical_and_gitignore_only_appended(run: SimpleNamespace, name: str) -> None:
    host = getattr(run, name)
    now = user_bytes(host)
    old_gitignore = run.before.user[name][".gitignore"]
    assert now[".gitignore"].startswith(old_gitignore)
    assert b".praxis-os/venv/" in now[".gitignore"][len(old_gitignore):]
    changed = [rel for rel in now if rel != ".gitignore" and now[rel] != run.before.user[name][rel]]
    assert changed == []


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_records_state_and_lock(run: SimpleNamespace, name: str) -> None:
    host = getattr(run, name)
    assert host.version_commit() == run.v2
    log = (host.home / "UPDATE_LOG.txt").read_text()
    assert run.v2[:12] in log and "completed" in log
    state = facts(host)
    assert state["status"] == "completed" and state["target_commit"] == run.v2
    assert set(state["completed_phases"]) >= {"backup", "content", "server", "validate"}
    assert not lock_path(host).exists()
    base = read_json(host.home / ".cache" / "base-manifest.json")
    assert base["commit"] == run.v2
    assert len(list(host.home.joinpath(".backups").iterdir())) == 1


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_target_summary_reports(run: SimpleNamespace, name: str) -> None:
    host = getattr(run, name)
    cache = host.home / ".cache"
    jsons, mds = sorted(cache.glob("upgrade-summary-*.json")), sorted(cache.glob("upgrade-summary-*.md"))
    assert len(jsons) == 1 and len(mds) == 1
    summary = read_json(jsons[0])
    assert summary["outcome"] == "completed" and summary["target_commit"] == run.v2
    assert summary["conflicts"] == [CONFLICT]
    assert summary["counts"]["conflict"] == 1 and summary["counts"]["add"] > 0
    assert sorted(summary["tools_before"]) == fx.EXPECTED_TOOLS["v1"]
    assert sorted(summary["tools_after"]) == fx.EXPECTED_TOOLS["v2"]
    assert summary["backup_path"] and Path(summary["backup_path"]).is_dir()
    assert CONFLICT in mds[0].read_text()


def test_controller_run_report(run: SimpleNamespace) -> None:
    reports = run.fleet.reports()
    assert len(reports) == 1
    document = read_json(reports[0])
    assert reports[0].with_suffix(".md").exists()
    rows = {row["host"]: row for row in document["hosts"]}
    assert sorted(rows) == ["alpha", "beta"]
    for row in rows.values():
        assert row["outcome"] == "completed"
        assert sorted(row["tools_after"]) == fx.EXPECTED_TOOLS["v2"]
    assert document["source"]["commit"] == run.v2


def test_process_mode_server_replaced_and_healthy(run: SimpleNamespace) -> None:
    state = fx.read_state(run.alpha.project)
    assert state["pid"] != run.before.alpha_pid
    assert fx.pid_alive(state["pid"]) and not fx.pid_alive(run.before.alpha_pid)
    health = probe_http(run.alpha.project)
    assert health["healthy"], health
    assert sorted(health["tools"]) == fx.EXPECTED_TOOLS["v2"]


def test_ide_mode_installation_answers_stdio_with_v2_tools(run: SimpleNamespace) -> None:
    assert fx.read_state(run.beta.project) is None  # nothing was started for an IDE-launched server
    health = probe_stdio(run.beta.project)
    assert health["healthy"], health
    assert sorted(health["tools"]) == fx.EXPECTED_TOOLS["v2"]


def test_other_projects_server_untouched(run: SimpleNamespace) -> None:
    state = fx.read_state(run.other)
    assert state == run.before.other_state and fx.pid_alive(state["pid"])
    assert snapshot(run.other, (".praxis-os/.cache/mcp_server.log",)) == {
        k: v for k, v in run.before.other_tree.items() if not k.startswith(".praxis-os/.cache/mcp_server.log")}


def test_rerun_at_target_changes_nothing(run: SimpleNamespace) -> None:
    assert run.proc.returncode == 0
    hosts = (run.alpha, run.beta)
    before = {h.name: snapshot(h.project, (".praxis-os/.cache",)) for h in hosts}
    pid = fx.read_state(run.alpha.project)["pid"]
    proc = run.fleet.upgrade("v2")
    assert proc.returncode == 0, output(proc)[-6000:]
    rows = recap(proc)
    assert all(row["changed"] == 0 and row["failed"] == 0 for row in rows.values()), rows
    for host in hosts:
        assert snapshot(host.project, (".praxis-os/.cache",)) == before[host.name]
        assert len(list(host.home.joinpath(".backups").iterdir())) == 1
    assert fx.read_state(run.alpha.project)["pid"] == pid
    document = run.fleet.last_report()
    assert {row["host"]: row["outcome"] for row in document["hosts"]} == {"alpha": "up_to_date", "beta": "up_to_date"}


# ---- conflict policies (keep_local is the default, proven above) -----------------------------------

@pytest.fixture(scope="module")
def policy_fleet(make_fleet: Any) -> Any:
    return make_fleet("policy")


def test_take_upstream_replaces_the_conflict_and_keeps_the_local_copy_in_the_backup(policy_fleet: Any) -> None:
    host = policy_fleet.add("take", "v1")
    local = (host.home / CONFLICT).read_bytes()
    proc = policy_fleet.upgrade("v2", praxis_conflict_policy="take_upstream")
    assert proc.returncode == 0, output(proc)[-6000:]
    assert (host.home / CONFLICT).read_text() == fx.installed_tree("v2")[CONFLICT]
    assert not (host.home / (CONFLICT + ".upstream")).exists()
    assert (host.home / KEPT).read_text() != fx.installed_tree("v2")[KEPT]  # not a conflict: kept
    backup = Path(facts(host)["backup_path"])
    assert (backup / "files" / CONFLICT).read_bytes() == local
    summary = read_json(sorted((host.home / ".cache").glob("upgrade-summary-*.json"))[-1])
    assert summary["conflicts"] == [CONFLICT]


def test_fail_policy_rolls_back(policy_fleet: Any) -> None:
    host = policy_fleet.add("strict", "v1")
    policy_fleet.hosts = [host]  # the take_upstream host is done; run only this one
    before = snapshot(host.project, RUNTIME)
    proc = policy_fleet.upgrade("v2", praxis_conflict_policy="fail")
    assert proc.returncode != 0
    text = output(proc)
    assert "phase content" in text and CONFLICT in text, text[-6000:]
    assert snapshot(host.project, RUNTIME) == before
    state = facts(host)
    assert state["status"] == "rolled_back" and CONFLICT in (state["reason"] or "")
    assert not lock_path(host).exists()
