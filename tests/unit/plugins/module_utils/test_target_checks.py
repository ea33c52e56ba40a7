"""Preflight target checks: links, odd names, base manifest, and a disk estimate in real blocks."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import target_checks as tc


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "project" / ".praxis-os"
    for rel, data in {"mcp_server/server.py": "x = 1\n", "standards/universal/a.md": "# a\n",
                      "workflows/w/metadata.json": "{}", "scripts/s.py": "", "config.json": "{}",
                      "VERSION.txt": "commit=" + "a" * 40 + "\n"}.items():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(data)
    (home / "venv" / "lib").mkdir(parents=True)
    (home / "venv" / "lib" / "mod.py").write_text("y" * 10000)
    (tmp_path / "project" / ".gitignore").write_text(".praxis-os/venv/\n")
    return home


def test_a_real_home_inside_the_project_passes(home):
    assert tc.home_problem(str(home.parent), str(home)) is None


def test_a_home_linked_to_another_projects_install_is_refused_naming_both(tmp_path, home):
    other = tmp_path / "mine"
    other.mkdir()
    (other / ".praxis-os").symlink_to(home)
    problem = tc.home_problem(str(other), str(other / ".praxis-os"))
    assert str(other / ".praxis-os") in problem and str(home) in problem and "Next:" in problem


def test_a_project_reached_through_a_symlink_is_still_its_own(tmp_path, home):
    alias = tmp_path / "alias"
    alias.symlink_to(home.parent)
    assert tc.home_problem(str(alias), str(alias / ".praxis-os")) is None


def test_clean_trees_pass(home):
    assert tc.tree_problems(str(home)) == []


def test_links_inside_the_installation_are_allowed(home):
    (home / "standards" / "universal" / "alias.md").symlink_to("a.md")
    assert tc.tree_problems(str(home)) == []


def test_links_leaving_the_installation_are_named(home, tmp_path):
    (home / "standards" / "universal" / "leak.md").symlink_to("/etc/passwd")
    (home / "workflows" / "shared").symlink_to(tmp_path)
    problems = tc.tree_problems(str(home))
    assert len(problems) == 1
    assert "standards/universal/leak.md -> /etc/passwd" in problems[0] and "workflows/shared" in problems[0]
    assert "2 symlink(s)" in problems[0] and "Next:" in problems[0]


def test_non_utf8_and_control_character_names_are_named_readably(home):
    os.close(os.open(os.path.join(os.fsencode(home), b"standards/universal/caf\xe9.md"), os.O_CREAT | os.O_WRONLY))
    (home / "workflows" / "bad\nname.md").write_text("x")
    problems = tc.tree_problems(str(home))
    assert len(problems) == 1
    assert "standards/universal/caf\\xe9.md" in problems[0] and "workflows/bad\\nname.md" in problems[0]
    assert "Next: rename or remove them" in problems[0]


def test_long_listings_are_cut(home):
    for i in range(15):
        (home / "scripts" / ("x\t%02d" % i)).write_text("")
    problem = tc.tree_problems(str(home))[0]
    assert "15 file name(s)" in problem and "and 5 more" in problem


@pytest.mark.parametrize("content, words", [
    ('{"commit": "x", "files": ', "unreadable or corrupt"),
    ("[1, 2]", "not a JSON object"),
    ('{"commit": "x"}', "no 'files' mapping"),
    ('{"files": {"../etc/passwd": "%s"}}' % ("0" * 64), "corrupt"),
    ('{"files": {"scripts/a.py": "short"}}', "no sha256 digest"),
    (b"\xff\xfe", "unreadable or corrupt"),
])
def test_a_corrupt_base_manifest_is_found_with_the_next_step(home, content, words):
    path = home / ".cache" / "base-manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    problem = tc.base_manifest_problem(str(home))
    assert problem and words in problem and "Next: move it aside" in problem


def test_a_valid_or_absent_base_manifest_passes(home):
    assert tc.base_manifest_problem(str(home)) is None
    path = home / ".cache" / "base-manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"commit": "c", "files": {"scripts/s.py": "0" * 64}}))
    assert tc.base_manifest_problem(str(home)) is None


def allocated(root) -> int:
    total = 0
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            total += os.lstat(os.path.join(current, name)).st_blocks * 512
    return total


def test_the_backup_estimate_covers_what_a_real_copy_allocates(home, tmp_path):
    block = os.statvfs(home).f_frsize
    for i in range(40):  # many small files: apparent size far below allocated size
        (home / "standards" / "universal" / ("s%02d.md" % i)).write_text("# %d\n" % i)
    need = tc.disk_need(str(home), str(home.parent), 0, 0, block)
    copy = tmp_path / "copy"
    copy.mkdir()
    for tree in tc.FRAMEWORK_TREES:
        if (home / tree).is_dir():
            shutil.copytree(home / tree, copy / tree)
    apparent = sum(p.stat().st_size for p in home.rglob("*") if p.is_file() and "venv" not in p.parts)
    assert allocated(copy) <= need["backup_bytes"]
    assert need["backup_bytes"] > 10 * apparent
    assert need["needed_bytes"] == tc.MARGIN * (need["backup_bytes"] + need["venv_snapshot_bytes"]
                                                + need["staging_bytes"] + need["index_bytes"] + need["records_bytes"])


def test_the_estimate_counts_every_path_the_backup_copies(home):
    """The IDE config an upgrade may rewrite is backed up (backup.PROJECT_FILES), so it is counted too."""
    block = 4096
    before = tc.disk_need(str(home), str(home.parent), 0, 0, block)
    (home.parent / ".cursor").mkdir()
    (home.parent / ".cursor" / "mcp.json").write_text("{}")
    (home.parent / ".cursorrules").write_text("rules\n")
    (home / "UPDATE_LOG.txt").write_text("log\n")
    after = tc.disk_need(str(home), str(home.parent), 0, 0, block)
    assert after["backup_bytes"] >= before["backup_bytes"] + 3 * block


def test_staging_counts_a_partly_used_block_per_source_file(home):
    need = tc.disk_need(str(home), str(home.parent), 1000, 10, 4096)
    assert need["staging_bytes"] == 3 * (1000 + 10 * 4096)


def test_the_disk_message_names_the_parts_and_the_next_step(home):
    need = tc.disk_need(str(home), str(home.parent), 0, 0, 4096)
    text = tc.disk_message(str(home), need, 5)
    assert "only 5 are free" in text and "backup" in text and "staging" in text and "Next:" in text


def test_the_search_index_built_beside_the_live_one_is_counted(home):
    """Issue 10: the new index is built in a shadow (copies of standards/ and scripts/) while the old one
    stays, and the backup copies the old one: twice the index plus the shadow's copies."""
    block = 4096
    before = tc.disk_need(str(home), str(home.parent), 0, 0, block)
    index = home / ".cache" / "vector_index" / "t.lance"
    index.mkdir(parents=True)
    (index / "data").write_bytes(b"x" * (10 * block))
    after = tc.disk_need(str(home), str(home.parent), 0, 0, block)
    assert after["index_bytes"] >= before["index_bytes"] + 2 * 10 * block
    assert after["needed_bytes"] - before["needed_bytes"] == tc.MARGIN * (after["index_bytes"] - before["index_bytes"])
    assert "search index %d" % after["index_bytes"] in tc.disk_message(str(home), after, 5)
