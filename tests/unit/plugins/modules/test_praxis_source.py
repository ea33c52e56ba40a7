"""praxis_source run in-process against real git repositories."""
from __future__ import annotations

import os
from pathlib import Path

from ansible_collections.praxis.upgrade.plugins.modules import praxis_source
from tests.unit.plugins.module_utils.test_source import git, make_source

KEYS = {"path", "commit", "describe", "committed_at", "manifest", "history", "requirements_sha256", "bytes",
        "file_count", "archive", "archive_sha256", "archive_bytes", "changed"}


def test_inspects_and_packs_then_reuses(run_module, tmp_path: Path) -> None:
    repo = make_source(tmp_path)
    args = {"path": str(repo), "archive_dir": str(tmp_path / "cache")}
    result, failed = run_module(praxis_source, args)
    assert not failed, result
    assert KEYS <= set(result)
    assert result["changed"] is True and result["describe"] == "v2"
    assert result["commit"] == git(repo, "rev-parse", "HEAD")
    assert os.path.isfile(result["archive"]) and result["file_count"] == len(result["manifest"]) == 10
    again, failed = run_module(praxis_source, args)
    assert not failed and again["changed"] is False
    assert again["archive_sha256"] == result["archive_sha256"]


def test_check_mode_still_packs_on_the_controller(run_module, tmp_path: Path) -> None:
    repo = make_source(tmp_path, versions=1)
    result, failed = run_module(praxis_source, {"path": str(repo), "archive_dir": str(tmp_path / "c")},
                                check_mode=True)
    assert not failed and result["changed"] is True and os.path.isfile(result["archive"])
    assert result["describe"] == "v1" and result["history"] == {}


def test_dirty_source_fails_with_next_step(run_module, tmp_path: Path) -> None:
    repo = make_source(tmp_path, versions=1)
    (repo / "universal" / "standards" / "new.md").write_text("draft\n")
    result, failed = run_module(praxis_source, {"path": str(repo), "archive_dir": str(tmp_path / "c")})
    assert failed
    assert "universal/standards/new.md" in result["msg"] and "commit or stash" in result["msg"]
    assert not (tmp_path / "c").exists()


def test_relative_path_fails(run_module, tmp_path: Path) -> None:
    result, failed = run_module(praxis_source, {"path": "praxis-os", "archive_dir": str(tmp_path / "c")})
    assert failed and "is relative" in result["msg"]
