"""The new version's search index: does it need a rebuild, the shadow it is built in, the build, and
putting it in place (issue 10: the rebuild out of the downtime; issue 7: never a stale index)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import backup, searchindex
from ansible_collections.praxis.upgrade.plugins.module_utils.manifest import build_manifest

# A builder with upstream's CLI: imports the server package beside scripts/ (upstream: mcp_server.chunker),
# writes one "table" per run into --index-path from the markdown under --standards-path.
BUILDER = textwrap.dedent('''
    import argparse, json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import mcp_server
    p = argparse.ArgumentParser()
    p.add_argument("--force", action="store_true")
    p.add_argument("--index-path", type=Path)
    p.add_argument("--standards-path", type=Path)
    a = p.parse_args()
    time.sleep(float(os.environ.get("BUILD_S", "0")))
    if os.environ.get("BUILD_FAIL"):
        print("embedding model not found", file=sys.stderr)
        sys.exit(3)
    docs = sorted(str(f.relative_to(a.standards_path)) for f in a.standards_path.rglob("*.md"))
    (a.index_path / "t.lance").mkdir(parents=True)
    (a.index_path / "t.lance" / "data.json").write_text(json.dumps({"docs": docs, "server": mcp_server.VERSION}))
    print("built", len(docs))
''')


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def inst(tmp_path: Path) -> dict:
    """An installation (standards, scripts, mcp_server v1, a live index, a venv whose python is this one)
    and a staged source (mcp_server v2, a new standard) with a content plan that adds it and deletes one."""
    project = tmp_path / "proj"
    home = project / ".praxis-os"
    write(home / "standards" / "universal" / "a.md", "# A\n")
    write(home / "standards" / "universal" / "old.md", "# gone in v2\n")
    write(home / "standards" / "development" / "mine.md", "# the user's own\n")
    write(home / "scripts" / "build_rag_index.py", BUILDER)
    write(home / "mcp_server" / "__init__.py", "VERSION = 1\n")
    write(home / ".cache" / "vector_index" / "old.lance" / "data.json", "{}")
    (home / "venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, home / "venv" / "bin" / "python")
    src = home / ".cache" / "upgrade" / "c0ffee"
    write(src / "mcp_server" / "__init__.py", "VERSION = 2\n")
    write(src / "standards" / "universal" / "new.md", "# new in v2\n")
    plan = {"writes": [{"root": "home", "src": "standards/universal/new.md", "dst": "standards/universal/new.md",
                        "sha256": sha("# new in v2\n"), "before": None}],
            "deletes": [{"dst": "standards/universal/old.md", "sha256": sha("# gone in v2\n")}]}
    return {"home": home, "project": project, "src": src, "plan": plan,
            "server_after": {"mcp_server/__init__.py": sha("VERSION = 2\n")}}


def test_shadow_is_the_standards_and_scripts_the_plan_will_leave(inst):
    shadow = searchindex.shadow_path(str(inst["home"]), "s1")
    write(inst["home"] / "standards" / ".rebuild_index", "pending\n")
    searchindex.compose_shadow(str(inst["home"]), str(inst["src"]), inst["plan"], shadow)
    standards = searchindex.fingerprint(os.path.join(shadow, "standards"))
    assert standards == searchindex.planned_standards(str(inst["home"]), inst["plan"])
    assert sorted(standards) == ["development/mine.md", "universal/a.md", "universal/new.md"]
    assert os.path.realpath(os.path.join(shadow, "mcp_server")) == str(inst["src"] / "mcp_server")
    assert (Path(shadow) / "scripts" / "build_rag_index.py").read_text() == BUILDER
    # copies, not links: nothing the builder does can touch the live files; mtimes kept (upstream records them)
    live = inst["home"] / "standards" / "universal" / "a.md"
    copied = Path(shadow) / "standards" / "universal" / "a.md"
    assert copied.stat().st_ino != live.stat().st_ino and copied.stat().st_mtime_ns == live.stat().st_mtime_ns
    assert (inst["home"] / "standards" / "universal" / "old.md").exists()  # the live tree untouched


def test_build_and_install_replace_the_live_index(inst):
    home = str(inst["home"])
    shadow = searchindex.shadow_path(home, "s1")
    searchindex.compose_shadow(home, str(inst["src"]), inst["plan"], shadow)
    built = searchindex.build(home, str(inst["project"]), shadow, dict(os.environ), timeout=30)
    assert "built 3" in built["output_tail"]
    assert searchindex.install(home, shadow) == {"replaced": True}
    data = json.loads((inst["home"] / ".cache" / "vector_index" / "t.lance" / "data.json").read_text())
    assert data == {"docs": ["development/mine.md", "universal/a.md", "universal/new.md"], "server": 2}
    assert not (inst["home"] / ".cache" / "vector_index" / "old.lance").exists()
    assert not list(Path(shadow, "mcp_server").glob("__pycache__"))  # no bytecode written into the staged source


def test_a_failing_or_slow_builder_is_an_index_build_error(inst):
    home = str(inst["home"])
    shadow = searchindex.shadow_path(home, "s1")
    searchindex.compose_shadow(home, str(inst["src"]), inst["plan"], shadow)
    with pytest.raises(searchindex.IndexBuildError, match="exited 3") as failed:
        searchindex.build(home, str(inst["project"]), shadow, dict(os.environ, BUILD_FAIL="1"), timeout=30)
    assert "embedding model not found" in failed.value.output_tail
    with pytest.raises(searchindex.IndexBuildError, match="within 0.5 s"):
        searchindex.build(home, str(inst["project"]), shadow, dict(os.environ, BUILD_S="20"), timeout=0.5)
    os.unlink(os.path.join(shadow, "scripts", "build_rag_index.py"))
    with pytest.raises(searchindex.IndexBuildError, match="has no scripts/build_rag_index.py"):
        searchindex.build(home, str(inst["project"]), shadow, dict(os.environ), timeout=30)
    assert (inst["home"] / ".cache" / "vector_index" / "old.lance").exists()  # the live index untouched


def test_same_standards_names_what_changed_since_the_shadow(inst):
    home = str(inst["home"])
    expected = searchindex.planned_standards(home, inst["plan"])
    assert searchindex.same_standards(home, expected) == ["universal/new.md", "universal/old.md"]
    write(inst["home"] / "standards" / "universal" / "new.md", "# new in v2\n")
    os.unlink(inst["home"] / "standards" / "universal" / "old.md")
    assert searchindex.same_standards(home, expected) == []
    write(inst["home"] / "standards" / "universal" / ".rebuild_index", "x")  # not the flag's place: counts
    write(inst["home"] / "standards" / ".rebuild_index", "x")  # the flag: never counts
    assert searchindex.same_standards(home, expected) == ["universal/.rebuild_index"]


def test_rebuild_reasons_compare_with_the_backup(inst):
    home = str(inst["home"])
    made = backup.create(home, str(inst["home"] / ".backups"), ["mcp_server", "standards/universal"], venv=None)
    same_server = {"mcp_server/__init__.py": sha("VERSION = 1\n")}
    now = searchindex.fingerprint(os.path.join(home, "standards"))
    assert searchindex.rebuild_reasons(home, made["path"], same_server, now) == []
    assert searchindex.rebuild_reasons(home, made["path"], inst["server_after"], now) == [
        "mcp_server changed (its index schema or table name may differ)"]
    planned = searchindex.planned_standards(home, inst["plan"])
    assert searchindex.rebuild_reasons(home, made["path"], same_server, planned) == ["standards changed"]
    user_only = dict(now, **{"development/more.md": sha("x")})  # not a backed-up path: the upgrade's business only
    assert searchindex.rebuild_reasons(home, made["path"], same_server, user_only) == []
    # a re-run after a crash: the server was swapped already; the backup still says it changed
    write(inst["home"] / "mcp_server" / "__init__.py", "VERSION = 2\n")
    write(inst["home"] / "mcp_server" / "__pycache__" / "x.pyc", "bytecode")
    assert searchindex.rebuild_reasons(home, made["path"], inst["server_after"], now) == [
        "mcp_server changed (its index schema or table name may differ)"]
    # no backup: the live trees
    assert searchindex.rebuild_reasons(home, None, inst["server_after"], now) == []
    assert searchindex.rebuild_reasons(home, str(inst["project"] / "nope"), inst["server_after"], planned) == [
        "standards changed"]


def test_blocker_names_what_the_servers_own_rebuild_knows_better(inst):
    home = str(inst["home"])
    assert searchindex.blocker(home) is None
    write(inst["home"] / "config.json", json.dumps({"rag": {"embedding_provider": "local"}, "mcp": {}}))
    assert searchindex.blocker(home) is None
    write(inst["home"] / "config.json", json.dumps({"rag": {"index_path": ".praxis-os/.cache/other"}}))
    assert "rag.index_path" in searchindex.blocker(home)
    write(inst["home"] / "config.json", json.dumps({"rag": {"embedding_provider": "openai"}}))
    assert "rag.embedding_provider" in searchindex.blocker(home)
    write(inst["home"] / "config.json", "{not json")
    assert "cannot be read as JSON" in searchindex.blocker(home)
    os.unlink(inst["home"] / "config.json")
    os.symlink("../../README.md", inst["home"] / "standards" / "universal" / "link.md")
    assert "holds a symlink" in searchindex.blocker(home)


def test_rebuild_flag_is_upstreams_own_trigger(tmp_path):
    home = str(tmp_path / ".praxis-os")
    os.makedirs(os.path.join(home, "standards"))
    planned = searchindex.request_index_rebuild(home, ["standards changed"], check=True)
    assert planned["flag"] == os.path.join(home, "standards", ".rebuild_index")
    assert not searchindex.rebuild_pending(home)
    done = searchindex.request_index_rebuild(home, ["standards changed"])
    assert done["already_requested"] is False and searchindex.rebuild_pending(home)
    assert searchindex.request_index_rebuild(home, ["again"])["already_requested"] is True


def test_install_without_a_live_index_and_the_manifest_of_the_result(inst):
    home = str(inst["home"])
    shadow = searchindex.shadow_path(home, "s2")
    searchindex.compose_shadow(home, str(inst["src"]), None, shadow)
    searchindex.build(home, str(inst["project"]), shadow, dict(os.environ), timeout=30)
    shutil.rmtree(inst["home"] / ".cache" / "vector_index")  # a crash between the renames left none
    assert searchindex.install(home, shadow) == {"replaced": False}
    assert list(build_manifest(str(inst["home"] / ".cache" / "vector_index"))) == ["t.lance/data.json"]
