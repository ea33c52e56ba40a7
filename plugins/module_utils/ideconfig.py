# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The installer-written IDE config, upgraded three-way like the framework files (SPEC 2.2).

- `<project>/.cursorrules`: the whole file is the framework's (installation/.cursorrules).
- `<project>/.cursor/mcp.json`: only the prAxIs OS server entry is; its key and value follow the new
  version's installation docs (`${workspaceFolder}` kept as written there). Every other entry is the
  user's and is kept as it is (order and values; the file is re-serialised as JSON, indent 2).

Rules per item: local equal to upstream -> unchanged; pristine (equal to what the old installer wrote,
or to any older upstream version) -> update; locally modified and upstream unchanged -> keep (an entry
is still moved to the new key: the new version's installer decides the key); locally modified and
upstream changed -> conflict, per policy (keep_local writes `<file>.upstream` beside it).
An absent `.cursorrules` or `.cursor/mcp.json`, or an mcp.json without the installer's entry, is never
created: the upgrade migrates what the installer wrote, it does not re-add what the user removed.
A fresh install (`create=True`, playbooks/install.yml) writes them as the installer does: an absent
`.cursorrules` is created, and the server entry is added to `.cursor/mcp.json` (created when absent),
every other entry kept.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.installs import entry_digest

CURSORRULES = ".cursorrules"
MCP_JSON = ".cursor/mcp.json"
FILES = (CURSORRULES, MCP_JSON)
UPSTREAM_SUFFIX = ".upstream"


def three_way(mine: str, base: Optional[str], theirs: str, older: Sequence[str]) -> str:
    """unchanged | update | keep | conflict — the rule content.classify applies to framework files."""
    if mine == theirs:
        return "unchanged"
    if mine == base or mine in older:
        return "update"
    upstream_unchanged = (base == theirs) if base else not older
    return "keep" if upstream_unchanged else "conflict"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: str) -> Optional[bytes]:
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def _item(rel: str, kind: str, note: str, local: Optional[bytes]) -> dict:
    return {"path": rel, "class": kind, "note": note, "local_sha256": _sha(local) if local is not None else None}


def _plan_rules(project_dir: str, ide: Mapping, base: Mapping, writes: Dict[str, bytes],
                create: bool = False) -> Tuple[dict, Optional[bytes]]:
    local = _read(os.path.join(project_dir, CURSORRULES))
    upstream = ide.get("cursorrules") or None
    if local is None and create and upstream:
        writes[CURSORRULES] = upstream["text"].encode("utf-8")
        return _item(CURSORRULES, "add", "created as the installer does", None), None
    if local is None:
        return _item(CURSORRULES, "absent", "no .cursorrules in the project: not created", None), None
    if not upstream:
        return _item(CURSORRULES, "keep", "the new version's installer writes no .cursorrules", local), None
    new = upstream["text"].encode("utf-8")
    kind = three_way(_sha(local), base.get("cursorrules"), _sha(new),
                     (ide.get("history") or {}).get("cursorrules") or ())
    if kind == "update":
        writes[CURSORRULES] = new
    return _item(CURSORRULES, kind, "", local), new if kind == "conflict" else None


def _replace_key(servers: Mapping, old_key: str, new_key: str, value: object) -> Dict[str, object]:
    """`servers` with entry `old_key` replaced by `new_key: value` at the same position."""
    out: Dict[str, object] = {}
    for key, entry in servers.items():
        if key == old_key:
            out[new_key] = value
        elif key != new_key:
            out[key] = entry
    return out


def _dump(doc: Mapping, original: bytes) -> bytes:
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    return (text + ("\n" if original.endswith(b"\n") else "")).encode("utf-8")


def _plan_mcp(project_dir: str, ide: Mapping, base: Mapping, writes: Dict[str, bytes],
              create: bool = False) -> Tuple[dict, Optional[bytes]]:
    path = os.path.join(project_dir, *MCP_JSON.split("/"))
    local = _read(path)
    mcp = ide.get("mcp") or None
    if local is None and create and mcp and not os.path.lexists(path):
        writes[MCP_JSON] = json.dumps({"mcpServers": {mcp["key"]: mcp["value"]}}, indent=2).encode("utf-8")
        return _item(MCP_JSON, "add", "created with entry %s, as the installer does" % mcp["key"], None), None
    if local is None:
        return _item(MCP_JSON, "absent", "no .cursor/mcp.json in the project: not created", None), None
    if not mcp:
        return _item(MCP_JSON, "keep", "the new version's installation docs show no mcp.json entry", local), None
    try:
        doc = json.loads(local.decode("utf-8"))
    except ValueError as exc:
        return _item(MCP_JSON, "invalid", "not valid JSON (%s): left as it is; fix it by hand" % exc, local), None
    servers = doc.get("mcpServers") if isinstance(doc, dict) else None
    if not isinstance(servers, dict):
        return _item(MCP_JSON, "invalid", "no mcpServers object: left as it is", local), None
    new_key, new_value = mcp["key"], mcp["value"]
    keys = [new_key] + [k for k in ide.get("mcp_keys") or () if k != new_key]
    found = next((k for k in keys if k in servers), None)
    if found is None and create:
        writes[MCP_JSON] = _dump(dict(doc, mcpServers=dict(servers, **{new_key: new_value})), local)
        return _item(MCP_JSON, "add", "entry %s added; your %d other entr%s kept" % (
            new_key, len(servers), "y" if len(servers) == 1 else "ies"), local), None
    if found is None:
        return _item(MCP_JSON, "absent", "no prAxIs OS entry (%s): not added" % ", ".join(keys), local), None
    kind = three_way(entry_digest(servers[found]), base.get("mcp_entry"), mcp["entry"],
                     (ide.get("history") or {}).get("mcp_entry") or ())
    renamed = found != new_key
    note = "entry %s -> %s" % (found, new_key) if renamed else "entry %s" % new_key
    if kind == "unchanged" and renamed:
        kind = "update"
    upstream_doc = dict(doc, mcpServers=_replace_key(servers, found, new_key, new_value))
    if kind == "update":
        writes[MCP_JSON] = _dump(upstream_doc, local)
    elif kind == "keep" and renamed:
        writes[MCP_JSON] = _dump(dict(doc, mcpServers=_replace_key(servers, found, new_key, servers[found])), local)
        note += " (your value kept)"
    item = _item(MCP_JSON, kind, note, local)
    item["renamed"] = renamed and kind in ("update", "keep")
    return item, _dump(upstream_doc, local) if kind == "conflict" else None


def plan(project_dir: str, ide: Optional[Mapping], base: Optional[Mapping], policy: str, create: bool = False) -> dict:
    """What the upgrade writes to the IDE config: {"items", "writes": {rel: bytes}, "conflicts"}.

    `ide`: the new version's installer output (praxis_source `ide`); `base`: what the installed
    version's installer wrote ({"cursorrules": sha256, "mcp_entry": digest}, {} when unknown).
    Conflicts follow `policy` (keep_local: `<rel>.upstream` beside; take_upstream: replaced; fail: listed).
    `create` (a fresh install): what is absent is written as the installer writes it.
    """
    writes: Dict[str, bytes] = {}
    items: List[dict] = []
    conflicts: List[str] = []
    if not ide:
        return {"items": items, "writes": writes, "conflicts": conflicts}
    for planner in (_plan_rules, _plan_mcp):
        item, upstream = planner(project_dir, ide, base or {}, writes, create)
        items.append(item)
        if item["class"] == "conflict" and upstream is not None:
            conflicts.append(item["path"])
            if policy == "take_upstream":
                writes[item["path"]] = upstream
            elif policy == "keep_local":
                beside = os.path.join(project_dir, *(item["path"] + UPSTREAM_SUFFIX).split("/"))
                if _read(beside) != upstream:
                    writes[item["path"] + UPSTREAM_SUFFIX] = upstream
    return {"items": items, "writes": writes, "conflicts": conflicts}
