"""The staged content plan: written while the old server runs, applied between stop and swap."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import content


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path, files: Dict[str, str]) -> Dict[str, str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return {rel: sha(text.encode()) for rel, text in files.items()}


@pytest.fixture()
def staged(tmp_path: Path) -> Dict[str, Path]:
    project = tmp_path / "project"
    home = project / ".praxis-os"
    local = tree(home, {"scripts/a.py": "a1\n", "scripts/gone.py": "g\n", "workflows/w/x.md": "mine\n"})
    staging = home / ".cache" / "upgrade" / "c2"
    upstream = tree(staging, {"scripts/a.py": "a2\n", "scripts/new.py": "n\n", "workflows/w/x.md": "x2\n"})
    (project / ".cursorrules").write_text("old rules\n")
    plan = content.classify(local, {"scripts/a.py": sha(b"a1\n"), "scripts/gone.py": sha(b"g\n"),
                                    "workflows/w/x.md": sha(b"x1\n")}, upstream, {})
    ide_plan = {"items": [], "writes": {".cursorrules": b"new rules\n"}, "conflicts": []}
    content.stage_plan(plan, str(home), str(project), str(staging), "keep_local", ide_plan, [".praxis-os/venv/"])
    return {"project": project, "home": home, "plan": staging / content.PLAN_NAME}


def live(project: Path) -> Dict[str, str]:
    return {p.relative_to(project).as_posix(): p.read_text() for p in project.rglob("*")
            if p.is_file() and ".cache" not in p.parts}


def test_staging_touches_nothing_live_and_records_every_write(staged: Dict[str, Path]) -> None:
    assert live(staged["project"]) == {".cursorrules": "old rules\n", ".praxis-os/scripts/a.py": "a1\n",
                                       ".praxis-os/scripts/gone.py": "g\n", ".praxis-os/workflows/w/x.md": "mine\n"}
    plan = json.loads(staged["plan"].read_text())
    assert sorted((w["root"], w["dst"]) for w in plan["writes"]) == [
        ("home", "scripts/a.py"), ("home", "scripts/new.py"), ("home", "workflows/w/x.md.upstream"),
        ("project", ".cursorrules")]
    assert plan["deletes"] == [{"dst": "scripts/gone.py", "sha256": sha(b"g\n")}]
    assert plan["gitignore"] == [".praxis-os/venv/"]


def test_apply_is_atomic_per_file_and_completes_after_a_crash(staged: Dict[str, Path]) -> None:
    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash()

    with pytest.raises(Crash):
        content.apply_plan(str(staged["home"]), str(staged["project"]), str(staged["plan"]), fault=crash)
    result = content.apply_plan(str(staged["home"]), str(staged["project"]), str(staged["plan"]))
    assert result["verified"] is True and result["skipped"]  # the writes done before the crash
    assert live(staged["project"]) == {
        ".cursorrules": "new rules\n", ".gitignore": ".praxis-os/venv/\n", ".praxis-os/scripts/a.py": "a2\n",
        ".praxis-os/scripts/new.py": "n\n", ".praxis-os/workflows/w/x.md": "mine\n",
        ".praxis-os/workflows/w/x.md.upstream": "x2\n"}
    again = content.apply_plan(str(staged["home"]), str(staged["project"]), str(staged["plan"]))
    assert again["changed"] is False and len(again["skipped"]) == 4


def test_a_tampered_plan_cannot_write_outside_the_installer_files(staged: Dict[str, Path]) -> None:
    plan = json.loads(staged["plan"].read_text())
    plan["writes"][0].update(root="project", dst="src/app.py")
    staged["plan"].write_text(json.dumps(plan))
    with pytest.raises(content.ContentError, match="not installer-owned"):
        content.apply_plan(str(staged["home"]), str(staged["project"]), str(staged["plan"]))
    plan["writes"][0].update(root="home", dst="../../etc/x")
    staged["plan"].write_text(json.dumps(plan))
    with pytest.raises(content.ContentError, match="corrupt or tampered"):
        content.apply_plan(str(staged["home"]), str(staged["project"]), str(staged["plan"]))
    assert not os.path.exists(staged["project"] / "src")
