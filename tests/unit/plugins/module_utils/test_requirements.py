"""The requirement set of a requirements file: pip runs only when the set changes."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import serverops
from ansible_collections.praxis.upgrade.plugins.module_utils.requirements import (
    canonical_name,
    requirement_set,
    requirements_key,
)

from tests.unit.plugins.module_utils.test_serverops import OFFLINE, requirements
from tests.unit.plugins.module_utils.test_serverops import venv_home  # pylint: disable=unused-import  # noqa: F401 (fixture)

BASE = "mcp==2.3.0\nhumanize==4.17.0\nlancedb>=0.25,<0.26\n"


@pytest.mark.parametrize("text", [
    "# pinned 2025-10-28\nmcp==2.3.0\n\nhumanize==4.17.0  # for durations\nlancedb>=0.25,<0.26\n",
    "lancedb<0.26, >=0.25\nHumanize==4.17.0\nMCP == 2.3.0\n",
    "mcp==2.3.0\nhumanize==4.17.0\nlancedb>=0.25,\\\n  <0.26\n",
    "mcp==2.3.0\nmcp==2.3.0\nhumanize==4.17.0\nlancedb>=0.25,<0.26\n",
])
def test_comments_blank_lines_order_case_and_layout_do_not_count(text: str) -> None:
    assert requirements_key(text) == requirements_key(BASE)


@pytest.mark.parametrize("text", [
    "mcp==2.3.1\nhumanize==4.17.0\nlancedb>=0.25,<0.26\n",
    "mcp==2.3.0\nlancedb>=0.25,<0.26\n",
    BASE + "playwright==1.55.0\n",
    "mcp[cli]==2.3.0\nhumanize==4.17.0\nlancedb>=0.25,<0.26\n",
    BASE.replace("humanize==4.17.0", "humanize==4.17.0; python_version >= '3.10'"),
    BASE + "--extra-index-url https://download.pytorch.org/whl/cpu\n",
])
def test_a_changed_requirement_set_changes_the_key(text: str) -> None:
    assert requirements_key(text) != requirements_key(BASE)


def test_names_are_pep503_normalised_and_markers_kept() -> None:
    assert canonical_name("Sentence_Transformers") == canonical_name("sentence.transformers") == "sentence-transformers"
    assert requirement_set("Foo_Bar[B,a] >= 1.0 ; sys_platform == 'linux'  # c\n") == [
        'foo-bar[a,b]>=1.0; sys_platform == "linux"']
    assert requirement_set("torch @ https://example.invalid/torch.whl\n") == [
        "torch @ https://example.invalid/torch.whl"]


def test_a_comment_only_change_does_not_run_pip(venv_home: Path) -> None:  # pylint: disable=redefined-outer-name
    before = "humanize==4.17.0\n"
    sha = requirements(venv_home, before)
    serverops.ensure_dependencies(str(venv_home), sha, OFFLINE)  # installs it
    after_sha = requirements(venv_home, "# pinned for 2.0\n\nHumanize == 4.17.0   # formatting\n")
    assert after_sha != sha
    by_bytes = serverops.ensure_dependencies(str(venv_home), sha, OFFLINE, check=True)
    assert by_bytes["would_run_pip"]  # what the file hash alone said (issue 7 item 8)
    result = serverops.ensure_dependencies(str(venv_home), sha, OFFLINE, previous_requirements_key=requirements_key(before))
    assert not result["pip_ran"] and not result["changed"] and "requirement set unchanged" in result["reason"]
    requirements(venv_home, "humanize==4.17.0\nmcp==2.3.0\n")
    changed = serverops.ensure_dependencies(str(venv_home), sha, OFFLINE, check=True,
                                            previous_requirements_key=requirements_key(before))
    assert changed["would_run_pip"]
