"""The fixture server behaves like the real upstream one where the upgrade depends on it (issue 7/8):
its search index (a table per version, built when missing, rebuilt only on `standards/.rebuild_index`,
slowly, with search finding nothing without its table), SIGTERM vs SIGINT of a dual (IDE) server, and
the port race of servers started at the same moment."""
from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import praxis_fixture as fx
from tests.integration.test_fixture import UVICORN_SHUTDOWN_ERROR, mcp_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {v: root / v for v in ("v1", "v2") if fx.make_source(root / v, v)}


def install(sources: dict[str, Path], tmp_path: Path, version: str, name: str | None = None) -> Path:
    project = tmp_path / (name or version)
    project.mkdir()
    fx.install(sources[version], project, fx.wheelhouse(), user_content=False)
    return project


def search(url: str, query: str = "workflow") -> dict[str, Any]:
    error, answer = mcp_session(url, {"search_standards": {"query": query}})["results"]["search_standards"]
    assert not error
    return answer


def test_index_table_per_version_flag_rebuild_and_empty_search_without_table(
        sources: dict[str, Path], tmp_path: Path) -> None:
    v1 = install(sources, tmp_path, "v1")
    assert fx.index_tables(v1) == ["agent_os_standards"]  # built by the installation, like upstream's guide
    shutil.rmtree(fx.index_dir(v1))
    pid, url = fx.start_http_server(v1)  # a start without the index directory builds it
    try:
        assert fx.index_tables(v1) == ["agent_os_standards"]
        assert search(url)["results"]
    finally:
        fx.stop_server(v1)

    # a v2 server finding only the v1 table: a warning, and search finds nothing (no rebuild without the flag)
    v2 = install(sources, tmp_path, "v2")
    shutil.rmtree(fx.index_dir(v2))  # the state an upgrade leaves: only the old version's table
    shutil.copytree(fx.index_dir(v1), fx.index_dir(v2))
    offset = fx.log_file(v2).stat().st_size if fx.log_file(v2).exists() else 0
    pid, url = fx.start_http_server(v2)
    try:
        answer = search(url)
        assert answer["results"] == [] and answer["retrieval_method"] == "grep_fallback"
        assert set(answer) == {"results", "total_tokens", "retrieval_method", "query_time_ms"}
        assert fx.index_tables(v2) == ["agent_os_standards"]
        log = fx.log_file(v2).read_text()[offset:]
        assert "[WARNING] mcp_server.rag: Failed to initialize LanceDB: Table 'praxis_os_standards' was not " \
               "found" in log and "grep fallback will be used" in log
        # a start that lost the port race to another test's server logs that and is retried by start_http_server
        assert [line for line in fx.error_lines(log) if line != UVICORN_SHUTDOWN_ERROR] == []
    finally:
        fx.stop_server(v2)

    # upstream's trigger: the flag makes the next start rebuild (slowly, before it listens), then go away
    fx.rebuild_flag(v2).write_text("")
    began = time.monotonic()
    pid, url = fx.start_http_server(v2, env={"PRAXIS_FIXTURE_INDEX_BUILD_S": "2.5"})
    try:
        assert time.monotonic() - began >= 2.5, "the rebuild runs before the server answers"
        assert not fx.rebuild_flag(v2).exists()
        assert fx.index_tables(v2) == ["agent_os_standards", "praxis_os_standards"]
        answer = search(url)
        assert answer["results"] and answer["retrieval_method"] == "vector"
    finally:
        fx.stop_server(v2)


def test_dual_server_ignores_sigint_while_its_ide_is_attached_but_not_sigterm(
        sources: dict[str, Path], tmp_path: Path) -> None:
    project = install(sources, tmp_path, "v2")
    proc, url = fx.start_dual_server(project)
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(1.5)
        assert proc.poll() is None and mcp_session(url)["tools"] == fx.EXPECTED_TOOLS["v2"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert fx.read_state(project)["pid"] == proc.pid  # killed: its state file stays behind (stale)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_servers_started_at_once_race_for_the_first_free_port(sources: dict[str, Path], tmp_path: Path) -> None:
    """Port choice is check-then-bind: both check the same free port, the slower bind dies (Errno 98).
    The check-bind window (5 s) outlasts the two starts' skew on a loaded 2-core machine (1.5 s did not)."""
    projects = [install(sources, tmp_path, "v1", name) for name in ("a", "b")]
    procs = []
    first_port = random.randrange(20000, 30000, 100)  # away from 4242, where other servers of this host start
    for project in projects:
        with open(fx.log_file(project), "ab") as log:
            procs.append(subprocess.Popen(fx.server_command(project, "http") + ["--port", str(first_port)], cwd=project,
                                          env=fx.server_env(project, {"PRAXIS_FIXTURE_BIND_DELAY_S": "5"}),
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.1)
        lost = [i for i, p in enumerate(procs) if p.poll() is not None]
        assert len(lost) == 1, "exactly one of two servers started together must lose the port"
        loser, winner = procs[lost[0]], procs[1 - lost[0]]
        assert loser.returncode == 1
        text = fx.log_file(projects[lost[0]]).read_text()
        assert f"ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', {first_port})" in text
        assert "address already in use" in text
        assert fx.read_state(projects[lost[0]]) is None  # it removed the state file it had published
        state = fx.read_state(projects[1 - lost[0]])
        assert state, fx.log_file(projects[1 - lost[0]]).read_text()[-3000:]
        assert state["pid"] == winner.pid and mcp_session(state["url"])["tools"] == fx.EXPECTED_TOOLS["v1"]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=15)
