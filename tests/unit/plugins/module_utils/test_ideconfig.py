"""The installer-written IDE config, three-way: .cursorrules and the prAxIs OS entry of .cursor/mcp.json."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.praxis.upgrade.plugins.module_utils import ideconfig
from ansible_collections.praxis.upgrade.plugins.module_utils.installs import entry_digest

OLD_VALUE = {"command": "${workspaceFolder}/.praxis-os/venv/bin/python", "args": ["-m", "mcp_server", "--transport",
                                                                                  "dual"], "autoApprove": ["a"]}
NEW_VALUE = dict(OLD_VALUE, autoApprove=["a", "b"])
OLD_RULES, NEW_RULES = "old rules\n", "new rules\n"
USER_ENTRY = {"command": "npx", "args": ["-y", "@example/github-mcp"]}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ide(new_value: Dict[str, Any] | None = None, old_value: Dict[str, Any] | None = None) -> Dict[str, Any]:
    new_value = NEW_VALUE if new_value is None else new_value
    old_value = OLD_VALUE if old_value is None else old_value
    history = [entry_digest(old_value)] if old_value != new_value else []
    return {"cursorrules": {"text": NEW_RULES, "sha256": sha(NEW_RULES)},
            "mcp": {"key": "praxis-os-rag", "value": new_value, "entry": entry_digest(new_value)},
            "mcp_keys": ["praxis-os-rag", "agent-os-rag"],
            "history": {"cursorrules": [sha(OLD_RULES)], "mcp_entry": history}}


BASE = {"cursorrules": sha(OLD_RULES), "mcp_key": "agent-os-rag", "mcp_entry": entry_digest(OLD_VALUE)}


def project(tmp_path: Path, rules: str | None = OLD_RULES, entry: Any = "old", key: str = "agent-os-rag") -> Path:
    entry = OLD_VALUE if entry == "old" else entry
    if rules is not None:
        (tmp_path / ".cursorrules").write_text(rules)
    if entry is not None:
        (tmp_path / ".cursor").mkdir()
        doc = {"mcpServers": {"first": USER_ENTRY, key: entry, "last": {"url": "http://x"}}, "other": 1}
        (tmp_path / ".cursor" / "mcp.json").write_text(json.dumps(doc, indent=2))
    return tmp_path


def classes(result: Dict[str, Any]) -> Dict[str, str]:
    return {item["path"]: item["class"] for item in result["items"]}


def test_pristine_config_follows_the_new_installer_and_keeps_every_other_entry(tmp_path: Path) -> None:
    result = ideconfig.plan(str(project(tmp_path)), ide(), BASE, "keep_local")
    assert classes(result) == {".cursorrules": "update", ".cursor/mcp.json": "update"}
    assert result["writes"][".cursorrules"] == NEW_RULES.encode()
    doc = json.loads(result["writes"][".cursor/mcp.json"])
    assert list(doc["mcpServers"]) == ["first", "praxis-os-rag", "last"] and doc["other"] == 1
    assert doc["mcpServers"]["praxis-os-rag"] == NEW_VALUE
    assert doc["mcpServers"]["first"] == USER_ENTRY and doc["mcpServers"]["last"] == {"url": "http://x"}
    assert "${workspaceFolder}" in result["writes"][".cursor/mcp.json"].decode()
    assert not result["writes"][".cursor/mcp.json"].endswith(b"\n")  # as json.dump wrote it


def test_renamed_key_with_an_unchanged_value_keeps_the_users_value(tmp_path: Path) -> None:
    mine = dict(OLD_VALUE, args=["-m", "mcp_server", "--transport", "dual", "--log-level", "INFO"])
    result = ideconfig.plan(str(project(tmp_path, entry=mine)), ide(OLD_VALUE), BASE, "keep_local")
    assert classes(result)[".cursor/mcp.json"] == "keep"
    doc = json.loads(result["writes"][".cursor/mcp.json"])
    assert "agent-os-rag" not in doc["mcpServers"] and doc["mcpServers"]["praxis-os-rag"] == mine


@pytest.mark.parametrize("policy", ["keep_local", "take_upstream", "fail"])
def test_user_modified_config_is_a_conflict_handled_by_policy(tmp_path: Path, policy: str) -> None:
    mine = dict(OLD_VALUE, autoApprove=["everything"])
    result = ideconfig.plan(str(project(tmp_path, rules="my own rules\n", entry=mine)), ide(), BASE, policy)
    assert classes(result) == {".cursorrules": "conflict", ".cursor/mcp.json": "conflict"}
    assert result["conflicts"] == [".cursorrules", ".cursor/mcp.json"]
    if policy == "keep_local":
        assert sorted(result["writes"]) == [".cursor/mcp.json.upstream", ".cursorrules.upstream"]
        assert result["writes"][".cursorrules.upstream"] == NEW_RULES.encode()
        beside = json.loads(result["writes"][".cursor/mcp.json.upstream"])
        assert beside["mcpServers"]["praxis-os-rag"] == NEW_VALUE and beside["mcpServers"]["first"] == USER_ENTRY
    elif policy == "take_upstream":
        assert sorted(result["writes"]) == [".cursor/mcp.json", ".cursorrules"]
    else:
        assert result["writes"] == {}


def test_user_modified_and_upstream_unchanged_is_kept(tmp_path: Path) -> None:
    rules_ide = dict(ide(), cursorrules={"text": OLD_RULES, "sha256": sha(OLD_RULES)})
    result = ideconfig.plan(str(project(tmp_path, rules="mine\n", entry=None)), rules_ide, BASE, "keep_local")
    assert classes(result)[".cursorrules"] == "keep" and ".cursorrules" not in result["writes"]


def test_absent_config_or_entry_is_never_created(tmp_path: Path) -> None:
    result = ideconfig.plan(str(project(tmp_path, rules=None, entry=None)), ide(), BASE, "keep_local")
    assert classes(result) == {".cursorrules": "absent", ".cursor/mcp.json": "absent"} and result["writes"] == {}
    other = tmp_path / "other"
    other.mkdir()
    (other / ".cursor").mkdir()
    (other / ".cursor" / "mcp.json").write_text(json.dumps({"mcpServers": {"mine": USER_ENTRY}}))
    result = ideconfig.plan(str(other), ide(), BASE, "keep_local")
    assert classes(result)[".cursor/mcp.json"] == "absent" and result["writes"] == {}


def test_invalid_json_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / ".cursor").mkdir()
    (tmp_path / ".cursor" / "mcp.json").write_text("{not json")
    result = ideconfig.plan(str(tmp_path), ide(), BASE, "keep_local")
    assert classes(result)[".cursor/mcp.json"] == "invalid" and result["writes"] == {}


def test_without_a_base_older_versions_prove_pristine(tmp_path: Path) -> None:
    result = ideconfig.plan(str(project(tmp_path)), ide(), {}, "keep_local")
    assert classes(result) == {".cursorrules": "update", ".cursor/mcp.json": "update"}


def test_up_to_date_config_writes_nothing(tmp_path: Path) -> None:
    result = ideconfig.plan(str(project(tmp_path, rules=NEW_RULES, entry=NEW_VALUE, key="praxis-os-rag")), ide(),
                            BASE, "keep_local")
    assert classes(result) == {".cursorrules": "unchanged", ".cursor/mcp.json": "unchanged"}
    assert result["writes"] == {}


# --- a fresh install (create=True): written as the installer writes it, every user entry kept ---------

def test_install_creates_absent_cursorrules_and_mcp_json_as_the_installer_writes_them(tmp_path: Path) -> None:
    planned = ideconfig.plan(str(tmp_path), ide(), {}, "keep_local", create=True)
    assert [item["class"] for item in planned["items"]] == ["add", "add"]
    assert planned["writes"][".cursorrules"] == NEW_RULES.encode()
    assert json.loads(planned["writes"][".cursor/mcp.json"]) == {"mcpServers": {"praxis-os-rag": NEW_VALUE}}
    assert not planned["writes"][".cursor/mcp.json"].endswith(b"\n")  # json.dump, like upstream's installer


def test_install_adds_the_entry_beside_the_users_and_never_creates_without_create(tmp_path: Path) -> None:
    path = tmp_path / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"mcpServers": {"github": USER_ENTRY}, "other": 1}, indent=2) + "\n")
    planned = ideconfig.plan(str(tmp_path), ide(), {}, "keep_local", create=True)
    doc = json.loads(planned["writes"][".cursor/mcp.json"])
    assert doc == {"mcpServers": {"github": USER_ENTRY, "praxis-os-rag": NEW_VALUE}, "other": 1}
    assert list(doc["mcpServers"]) == ["github", "praxis-os-rag"]  # the user's order, ours appended
    assert planned["writes"][".cursor/mcp.json"].endswith(b"\n")  # the file's own layout kept
    upgrade = ideconfig.plan(str(tmp_path), ide(), {}, "keep_local")
    assert upgrade["writes"] == {} and [i["class"] for i in upgrade["items"]] == ["absent", "absent"]


def test_install_keeps_a_users_own_cursorrules_and_writes_the_installers_beside(tmp_path: Path) -> None:
    (tmp_path / ".cursorrules").write_text("the team's own rules\n")
    planned = ideconfig.plan(str(tmp_path), ide(), {}, "keep_local", create=True)
    assert planned["items"][0]["class"] == "conflict"
    assert ".cursorrules" not in planned["writes"]
    assert planned["writes"][".cursorrules.upstream"] == NEW_RULES.encode()


def test_install_leaves_an_invalid_mcp_json_alone(tmp_path: Path) -> None:
    path = tmp_path / ".cursor" / "mcp.json"
    path.parent.mkdir()
    path.write_text("{not json")
    planned = ideconfig.plan(str(tmp_path), ide(), {}, "keep_local", create=True)
    assert planned["items"][1]["class"] == "invalid" and ".cursor/mcp.json" not in planned["writes"]
