"""praxis_content run in-process: a v1 installation with local edits upgraded to v2 from a real git source."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import content, source
from ansible_collections.praxis.upgrade.plugins.modules import praxis_content
from tests.unit.plugins.module_utils.test_content import snapshot
from tests.unit.plugins.module_utils.test_source import git, make_source

EXPECTED = {
    "added": ["standards/universal/sub/new-name.md", "workflows/wf2/x.md"],
    "updated": ["scripts/build_rag_index.py", "workflows/wf1/README.md"],
    "kept": ["workflows/wf1/steady.md"],
    "conflicts": ["standards/universal/core.md"],
    "deleted": ["standards/universal/gone.md", "standards/universal/sub/old-name.md"],
    "kept_removed": ["usage/old.md"],
    "user_files": ["workflows/wf1/my-notes.md"],  # the user's own workflows/mine/ is not even hashed
}
COUNTS = {"add": 2, "update": 2, "unchanged": 1, "keep": 1, "conflict": 1, "delete": 2, "user": 1,
          "keep_removed": 1}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """Once per module: the v1/v2 source, a v1 project with local edits (template) and the v2 archive."""
    root = tmp_path_factory.mktemp("content")
    repo = make_source(root / "src")
    git(repo, "checkout", "-q", "v1")
    v1 = source.inspect(str(repo))
    v1.update(source.pack(v1["path"], v1, str(root / "cache")))
    source.extract(v1["archive"], str(root / "v1-tree"), v1["manifest"])
    home = root / "template" / ".praxis-os"
    shutil.copytree(str(root / "v1-tree"), str(home))
    os.unlink(home / "praxis-source.json")
    (home / ".cache").mkdir()
    (home / ".cache" / "base-manifest.json").write_text(json.dumps({"commit": v1["commit"], "files": v1["manifest"]}))
    (home / "standards" / "universal" / "core.md").write_text("# core, my edits\n")
    (home / "workflows" / "wf1" / "steady.md").write_text("# steady, my edits\n")
    (home / "workflows" / "mine").mkdir()
    (home / "workflows" / "mine" / "flow.md").write_text("# my workflow\n")
    (home / "workflows" / "wf1" / "my-notes.md").write_text("# my notes in a framework workflow\n")
    (home / "standards" / "development").mkdir()
    (home / "standards" / "development" / "mine.md").write_text("# user tree\n")
    git(repo, "checkout", "-q", "main")
    v2 = source.inspect(str(repo))
    v2.update(source.pack(v2["path"], v2, str(root / "cache")))
    return {"template": root / "template", "v2": v2}


@pytest.fixture()
def install(built: Dict[str, Any], tmp_path: Path) -> Dict[str, Any]:
    """A fresh copy of the edited v1 project with the v2 archive shipped into its cache."""
    project = tmp_path / "project"
    shutil.copytree(str(built["template"]), str(project), symlinks=True)
    home, v2 = project / ".praxis-os", built["v2"]
    shipped = home / ".cache" / "upgrade" / ("%s.tar.gz" % v2["commit"])
    shipped.parent.mkdir(parents=True)
    shutil.copy(v2["archive"], str(shipped))
    args = {"praxis_home": str(home), "project_dir": str(project), "archive": str(shipped),
            "commit": v2["commit"], "manifest": v2["manifest"], "history": v2["history"]}
    return {"args": args, "home": home, "project": project, "v2": v2}


def listed(result: Dict[str, Any]) -> Dict[str, Any]:
    return {key: result[key] for key in EXPECTED}


def test_check_and_diff_plan_everything_and_write_nothing(run_module, install) -> None:
    before = snapshot(install["project"])
    result, failed = run_module(praxis_content, install["args"], check_mode=True, diff=True)
    assert not failed, result
    assert result["counts"] == COUNTS and listed(result) == EXPECTED
    assert result["changed"] is True and result["staging_dir"] is None and result["verified"] is False
    assert result["upstream_written"] == ["standards/universal/core.md.upstream"]
    assert result["gitignore_added"] == list(praxis_content.content.GITIGNORE_ENTRIES)
    assert result["truncated"] is False and result["conflict_policy"] == "keep_local"
    diff = result["diff"]
    assert diff["before_header"].endswith("(installed)") and install["v2"]["commit"] in diff["after_header"]
    assert "standards/universal/core.md.upstream" in diff["after"]
    assert "standards/universal/gone.md" in diff["before"]
    assert snapshot(install["project"]) == before


def apply(args: Dict[str, Any]) -> Dict[str, Any]:
    """What the server phase does with the plan between the old server's stop and the swap."""
    plan = content.plan_path(args["praxis_home"], args["commit"])
    return content.apply_plan(args["praxis_home"], args["project_dir"], plan)


def plan_and_apply(run_module, args: Dict[str, Any]) -> Dict[str, Any]:
    planned, failed = run_module(praxis_content, args)
    assert not failed, planned
    return {"planned": planned, "applied": apply(args)}


def test_plan_changes_nothing_live_then_apply_then_rerun_changes_nothing(run_module, install) -> None:
    home, project = install["home"], install["project"]
    server_before = {k: v for k, v in snapshot(home).items() if k.startswith("mcp_server")}
    live_before = {k: v for k, v in snapshot(project).items() if not k.startswith(".praxis-os/.cache")}
    result, failed = run_module(praxis_content, install["args"])
    assert not failed, result
    assert result["changed"] is True and result["verified"] is True and result["extracted"] is True
    assert result["counts"] == COUNTS and listed(result) == EXPECTED
    assert result["upstream_written"] == ["standards/universal/core.md.upstream"]
    staging = home / ".cache" / "upgrade" / install["v2"]["commit"]
    assert result["staging_dir"] == str(staging) and result["plan_path"] == str(staging / "content-plan.json")
    # the content phase only stages: the old server still sees v1 files
    assert {k: v for k, v in snapshot(project).items() if not k.startswith(".praxis-os/.cache")} == live_before
    plan = json.loads((staging / "content-plan.json").read_text())
    assert {w["dst"] for w in plan["writes"]} >= {"standards/universal/core.md.upstream", "workflows/wf1/README.md"}
    assert sorted(d["dst"] for d in plan["deletes"]) == EXPECTED["deleted"]

    applied = apply(install["args"])
    assert applied["changed"] is True and applied["verified"] is True, applied
    assert applied["upstream_written"] == ["standards/universal/core.md.upstream"]
    assert (home / "standards/universal/core.md").read_text() == "# core, my edits\n"
    assert (home / "standards/universal/core.md.upstream").read_text() == "# core v2\n"
    assert (home / "workflows/wf1/README.md").read_text() == "# wf1 v2\n"
    assert (home / "standards/universal/sub/new-name.md").exists()
    assert not (home / "standards/universal/gone.md").exists()
    assert (home / "usage/old.md").exists() and (home / "standards/development/mine.md").exists()
    assert (project / ".gitignore").read_text().splitlines() == list(praxis_content.content.GITIGNORE_ENTRIES)
    assert {k: v for k, v in snapshot(home).items() if k.startswith("mcp_server")} == server_before
    # applying again (a re-run after a crash) finds everything in place
    again = apply(install["args"])
    assert again["changed"] is False and len(again["skipped"]) == len(plan["writes"]), again

    before = snapshot(project)
    again, failed = run_module(praxis_content, install["args"])
    assert not failed and again["changed"] is False, again
    assert again["counts"]["conflict"] == 1 and again["counts"]["add"] == again["counts"]["delete"] == 0
    assert again["upstream_written"] == [] and again["gitignore_added"] == [] and again["extracted"] is False
    assert {k: v for k, v in snapshot(project).items() if "content-plan" not in k} == {
        k: v for k, v in before.items() if "content-plan" not in k}
    # Nothing left to write: no archive needed, and check mode agrees that nothing would change.
    args = dict(install["args"])
    del args["archive"]
    for check in (True, False):
        quiet, failed = run_module(praxis_content, args, check_mode=check)
        assert not failed and quiet["changed"] is False, quiet


def test_apply_refuses_a_target_changed_since_the_plan(run_module, install) -> None:
    home = install["home"]
    result, failed = run_module(praxis_content, install["args"])
    assert not failed, result
    (home / "workflows/wf1/README.md").write_text("# edited after the plan\n")
    with pytest.raises(content.ContentError, match="changed since the content phase planned"):
        apply(install["args"])
    assert (home / "workflows/wf1/README.md").read_text() == "# edited after the plan\n"


def test_apply_without_a_plan_fails_with_next_step(install) -> None:
    with pytest.raises(content.ContentError, match="content plan .* re-run the upgrade"):
        apply(install["args"])


def test_without_base_manifest_history_recognises_pristine_files(run_module, install) -> None:
    os.unlink(install["home"] / ".cache" / "base-manifest.json")
    result, failed = run_module(praxis_content, install["args"], check_mode=True)
    assert not failed and result["counts"] == COUNTS and listed(result) == EXPECTED


def test_take_upstream_replaces_the_local_copy(run_module, install) -> None:
    result = plan_and_apply(run_module, dict(install["args"], conflict_policy="take_upstream"))["applied"]
    assert result["upstream_written"] == []
    assert (install["home"] / "standards/universal/core.md").read_text() == "# core v2\n"


def test_fail_policy_fails_naming_paths_and_next_step(run_module, install) -> None:
    before = snapshot(install["project"])
    result, failed = run_module(praxis_content, dict(install["args"], conflict_policy="fail"))
    assert failed
    assert "standards/universal/core.md" in result["msg"] and "praxis_conflict_policy=keep_local" in result["msg"]
    assert result["conflicts"] == ["standards/universal/core.md"]
    assert snapshot(install["project"]) == before


def test_lists_are_truncated_at_200(run_module, install) -> None:
    manifest = dict(install["args"]["manifest"])
    manifest.update({"workflows/bulk/f%03d.md" % i: "0" * 64 for i in range(205)})
    result, failed = run_module(praxis_content, dict(install["args"], manifest=manifest), check_mode=True)
    assert not failed and result["counts"]["add"] == 207
    assert len(result["added"]) == 200 and result["truncated"] is True


@pytest.mark.parametrize("change,needle", [
    ({"project_dir": "/nonexistent/project"}, "project directory /nonexistent/project does not exist"),
    ({"praxis_home": "/nonexistent/project/.praxis-os"}, "is not a prAxIs OS installation"),
    ({"manifest": {"../escape.md": "0" * 64}}, "unsafe path"),
    ({"history": {"/etc/passwd": ["0" * 64]}}, "unsafe path"),
    ({"history": {"workflows/x.md": "nope"}}, "not a list of sha256"),
    ({"archive": "/nonexistent/a.tar.gz"}, "does not exist on this host"),
    ({"commit": None}, "neither staging_dir nor commit"),
])
def test_bad_input_fails_and_changes_nothing(run_module, install, change: Dict[str, Any], needle: str) -> None:
    before = snapshot(install["project"])
    args = {k: v for k, v in dict(install["args"], **change).items() if v is not None}
    result, failed = run_module(praxis_content, args)
    assert failed and needle in result["msg"], result
    assert snapshot(install["project"]) == before


def test_missing_archive_option_when_content_must_change(run_module, install) -> None:
    args = dict(install["args"])
    del args["archive"]
    result, failed = run_module(praxis_content, args)
    assert failed and "archive is not set" in result["msg"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_shipped_src_is_installed_at_archive_before_the_plan(run_module, install, tmp_path, check_mode) -> None:
    """src: the copy the action plugin shipped (in the connection's temp dir) goes to `archive` (mode 0600,
    atomically) and is staged from there; in check mode nothing is installed."""
    shipped = tmp_path / "ansible-tmp" / "praxis-source.tar.gz"
    shipped.parent.mkdir()
    os.replace(install["args"]["archive"], str(shipped))
    target = install["home"] / ".cache" / ("praxis-source-%s.tar.gz" % install["v2"]["commit"])
    args = dict(install["args"], src=str(shipped), archive=str(target))
    result, failed = run_module(praxis_content, args, check_mode=check_mode)
    assert not failed, result.get("msg")
    if check_mode:
        assert not target.exists() and result["plan_path"] is None
    else:
        assert target.read_bytes() == shipped.read_bytes() and (target.stat().st_mode & 0o777) == 0o600
        assert result["extracted"] and result["verified"]


def test_src_without_archive_fails_with_next_step(run_module, install) -> None:
    args = dict(install["args"], src=install["args"]["archive"])
    del args["archive"]
    result, failed = run_module(praxis_content, args)
    assert failed and "src is set but archive is not" in result["msg"]


@pytest.mark.parametrize("text,needle", [
    ("{broken", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"files": {"../x": "0" * 64}}), "unsafe path"),
])
def test_corrupt_base_manifest_fails_with_next_step(run_module, install, text: str, needle: str) -> None:
    (install["home"] / ".cache" / "base-manifest.json").write_text(text)
    result, failed = run_module(praxis_content, install["args"])
    assert failed and needle in result["msg"]


def test_install_dry_run_plans_every_file_as_an_add_with_no_installation_yet(run_module, built, tmp_path) -> None:
    """install=true (install.yml's content step): the home may be absent in check mode; the IDE config is created."""
    project = tmp_path / "fresh"
    project.mkdir()
    v2 = built["v2"]
    ide = {"cursorrules": {"text": "rules\n", "sha256": "0" * 64},
           "mcp": {"key": "praxis-os-rag", "value": {"command": "python"}, "entry": "1" * 64}}
    args = dict(praxis_home=str(project / ".praxis-os"), project_dir=str(project), commit=v2["commit"],
                manifest=v2["manifest"], ide=ide, install=True,
                trees=["mcp_server", "scripts", "standards/universal", "workflows", "usage"])
    result, failed = run_module(praxis_content, args, check_mode=True, diff=True)
    assert not failed, result
    assert result["counts"]["add"] == len(v2["manifest"]) and result["changed"]
    assert result["ide_written"] == [".cursor/mcp.json", ".cursorrules"]
    assert "mcp_server/" in result["diff"]["after"] and os.listdir(project) == []
    refused, failed = run_module(praxis_content, dict(args, install=False), check_mode=True)
    assert failed and "is not a prAxIs OS installation" in refused["msg"]
