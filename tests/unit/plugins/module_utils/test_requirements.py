"""The requirement set of a requirements file: pip runs only when the set changes."""
from __future__ import annotations

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils.requirements import (
    canonical_name,
    requirement_set,
    requirements_key,
)

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
