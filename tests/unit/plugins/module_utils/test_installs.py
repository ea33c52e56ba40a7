"""Which commit a manifest-less (docs-made) install holds, found in the source's git history."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import installs, source
from tests.unit.plugins.module_utils.test_source import git, make_source

DOCS = ("# Step 5\n\n**Should look like this** (Linux):\n```json\n"
        '{\n  "mcpServers": {\n    "%s": {"command": "py", "args": ["-m", "mcp_server"]}\n  }\n}\n```\n')


def copy_install(repo: Path, home: Path) -> None:
    """What upstream's docs do: copy the mapped trees of the checkout into .praxis-os."""
    for rel, absolute in source.mapped_files(str(repo)):
        target = home / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(absolute).read_bytes())


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    repo = make_source(tmp_path)
    git(repo, "checkout", "-q", "v1")
    return repo


def test_docs_entry_is_read_from_the_should_look_like_this_block() -> None:
    expected = ("agent-os-rag", {"command": "py", "args": ["-m", "mcp_server"]})
    assert installs.docs_mcp_entry(DOCS % "agent-os-rag") == expected
    assert installs.docs_mcp_entry("```json\n{\"mcpServers\": {}}\n```") is None
    assert installs.entry_digest({"a": 1, "b": [2]}) == installs.entry_digest({"b": [2], "a": 1})


def test_install_of_an_older_commit_is_identified_exactly(repo: Path, tmp_path: Path) -> None:
    v1 = git(repo, "rev-parse", "HEAD")
    home = tmp_path / "project" / ".praxis-os"
    copy_install(repo, home)
    git(repo, "checkout", "-q", "main")
    info = source.inspect(str(repo))
    found = installs.installed_identity(str(home), info["installs"], None, installs.local_trees(str(home)))
    assert found["installed_commit"] == v1 and found["match"]["exact"] is True and found["problem"] is None
    assert installs.tree_of(info["installs"], v1) == installs.local_trees(str(home))
    facts, problems = installs.preflight_facts(str(home), info["installs"], None)
    assert facts["installed_commit"] == v1 and problems == []
    assert "exact" in facts["installed_commit_source"]


def test_local_edits_to_standards_still_identify_the_closest_commit(repo: Path, tmp_path: Path) -> None:
    v1 = git(repo, "rev-parse", "HEAD")
    home = tmp_path / "p" / ".praxis-os"
    copy_install(repo, home)
    edited = next(p for p in (home / "standards").rglob("*.md"))
    edited.write_text(edited.read_text() + "\nmy notes\n")
    (home / "workflows" / "mine.md").parent.mkdir(parents=True, exist_ok=True)
    (home / "workflows" / "mine.md").write_text("user file\n")
    git(repo, "checkout", "-q", "main")
    found = installs.identify(installs.local_trees(str(home)), source.inspect(str(repo))["installs"])
    assert found["commit"] == v1 and found["exact"] is False and found["differing"] == 1


def test_a_changed_server_tree_matches_nothing(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "p" / ".praxis-os"
    copy_install(repo, home)
    (home / "mcp_server" / "__main__.py").write_text("# patched by hand\n")
    git(repo, "checkout", "-q", "main")
    info = source.inspect(str(repo))
    facts, problems = installs.preflight_facts(str(home), info["installs"], None)
    assert facts["installed_commit"] is None
    assert len(problems) == 1 and "a full clone is needed" in problems[0]
    assert "match none of the" in problems[0]


def test_shallow_clone_is_refused_naming_the_cause(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "p" / ".praxis-os"
    copy_install(repo, home)
    git(repo, "checkout", "-q", "main")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "file://%s" % repo, str(shallow)], check=True)
    info = source.inspect(str(shallow))
    assert info["shallow"] is True and info["installs"]["commit_count"] == 1
    facts, problems = installs.preflight_facts(str(home), info["installs"], None)
    assert facts["installed_commit"] is None
    assert "shallow clone" in problems[0] and "a full clone is needed" in problems[0] and str(home) in problems[0]


def test_base_manifest_or_known_version_needs_no_match(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "p" / ".praxis-os"
    copy_install(repo, home)
    (home / "mcp_server" / "__main__.py").write_text("# patched by hand\n")
    info = source.inspect(str(repo))
    facts, problems = installs.preflight_facts(str(home), info["installs"], info["commit"])
    assert facts["installed_commit"] == info["commit"] and problems == []  # VERSION.txt commit in the history
    (home / ".cache").mkdir()
    (home / ".cache" / "base-manifest.json").write_text("{}")
    facts, problems = installs.preflight_facts(str(home), info["installs"], None)
    assert problems == [] and facts["installed_commit"] is None


def test_installer_ide_config_is_indexed_per_commit(repo: Path, tmp_path: Path) -> None:
    def commit_docs(key: str, rules: str, message: str) -> str:
        (repo / "installation").mkdir(exist_ok=True)
        (repo / "installation" / "05-venv-mcp.md").write_text(DOCS % key)
        (repo / "installation" / ".cursorrules").write_text(rules)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message)
        return git(repo, "rev-parse", "HEAD")

    git(repo, "checkout", "-q", "-b", "docs")
    old = commit_docs("agent-os-rag", "old rules\n", "docs v1")
    commit_docs("praxis-os-rag", "new rules\n", "docs v2")
    info = source.inspect(str(repo))
    ide = info["ide"]
    assert ide["mcp"]["key"] == "praxis-os-rag" and ide["mcp_keys"] == ["praxis-os-rag", "agent-os-rag"]
    assert ide["cursorrules"]["text"] == "new rules\n"
    assert installs.ide_of(info["installs"], old)["mcp_key"] == "agent-os-rag"
    assert ide["history"]["cursorrules"] == [installs.ide_of(info["installs"], old)["cursorrules"]]
    assert ide["history"]["mcp_entry"] == []  # same value, only the key was renamed
