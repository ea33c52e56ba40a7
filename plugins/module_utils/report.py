# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Records and reports: per-target summary, VERSION.txt and logs, base manifest, per-run report."""

from __future__ import annotations

import datetime
import fcntl
import os
from typing import Callable, Dict, Iterable, List, Optional

from ansible_collections.praxis.upgrade.plugins.module_utils import htmlreport
from ansible_collections.praxis.upgrade.plugins.module_utils.fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    read_json,
)

PHASES = ("preflight", "backup", "content", "server", "validate", "cleanup")
CLASSES = ("add", "update", "unchanged", "keep", "conflict", "delete", "user", "keep_removed")


def utc_stamp(now: Optional[datetime.datetime] = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_summary(session: dict, source: dict, outcome: str, pruned: Iterable[str] = (),
                  finished_at: Optional[str] = None) -> dict:
    """The per-target summary document: everything an operator asks after an upgrade."""
    phases = session.get("phases") or {}
    evidence = {name: (phases.get(name) or {}).get("evidence") or {} for name in PHASES}
    return {
        "outcome": outcome,
        "session_id": session.get("session_id"),
        "run_id": session.get("run_id"),
        "installed_commit": session.get("installed_commit"),
        "target_commit": source.get("commit") or session.get("target_commit"),
        "target_describe": source.get("describe") or session.get("target_describe"),
        "source_path": source.get("path") or session.get("source_path"),
        "backup_path": session.get("backup_path"),
        "phases": [
            {"name": name, "duration_s": (phases.get(name) or {}).get("duration_s")}
            for name in PHASES
            if name in phases
        ],
        "counts": evidence["content"].get("counts") or {},
        "conflicts": evidence["content"].get("conflicts") or [],
        "tools_before": evidence["backup"].get("tools_before") or evidence["preflight"].get("tools_before") or [],
        "tools_after": evidence["validate"].get("tools_after") or [],
        "response_time_ms": evidence["validate"].get("response_time_ms"),
        "pip_ran": evidence["server"].get("pip_ran"),
        "server_mode": evidence["server"].get("mode"),
        "ide_restart_required": bool(evidence["server"].get("ide_restart_required")),
        "search_index": search_index_note(evidence["server"].get("index_rebuild")),
        "pruned_backups": list(pruned),
        "started_at": session.get("started_at"),
        "finished_at": finished_at or utc_stamp(),
    }


def search_index_note(rebuild: Optional[dict]) -> str:
    """What the upgrade did about the server's search index (the server phase's ``index_rebuild``), in words."""
    if not isinstance(rebuild, dict):
        return "unchanged (neither mcp_server nor the standards changed)"
    prebuild = rebuild.get("prebuild") or {}
    if rebuild.get("method") == "prebuilt":
        took = prebuild.get("duration_s")
        return "built before the old server stopped%s" % (" (%.1f s)" % took if isinstance(took, (int, float)) else "")
    why = prebuild.get("reason")
    note = "rebuilt by the new server at start (standards/.rebuild_index)"
    return note + ("; not built before: %s" % why if why else "")


def _tools_diff(before: List[str], after: List[str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    parts = []
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    return "; ".join(parts) or "no change"


def render_summary_markdown(summary: dict) -> str:
    counts = summary.get("counts") or {}
    lines = [
        "# prAxIs OS upgrade — %s" % summary["outcome"],
        "",
        "| | |",
        "|---|---|",
        "| session | `%s` |" % summary.get("session_id"),
        "| from | `%s` |" % (summary.get("installed_commit") or "?")[:12],
        "| to | `%s` (%s) |" % ((summary.get("target_commit") or "?")[:12], summary.get("target_describe")),
        "| backup | `%s` |" % summary.get("backup_path"),
        "| server mode | %s |" % summary.get("server_mode"),
        "| search index | %s |" % summary.get("search_index", "-"),
        "| tools | %d → %d (%s) |" % (
            len(summary.get("tools_before") or []),
            len(summary.get("tools_after") or []),
            _tools_diff(summary.get("tools_before") or [], summary.get("tools_after") or []),
        ),
        "",
        "## Files",
        "",
        " | ".join("%s %s" % (name, counts.get(name, 0)) for name in CLASSES),
        "",
    ]
    if summary.get("conflicts"):
        lines += ["## Conflicts", ""] + ["- `%s`" % path for path in summary["conflicts"]] + [""]
    lines += ["## Phases", "", "| phase | seconds |", "|---|---|"]
    lines += ["| %s | %s |" % (p["name"], p["duration_s"]) for p in summary.get("phases") or []]
    return "\n".join(lines) + "\n"


def update_version_file(path: str, commit: str, source: str, when: str) -> None:
    """Set commit=, version_updated=, source= in VERSION.txt, keeping every other line."""
    values = {"commit": commit, "version_updated": when, "source": source}
    lines = []
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in values]
    kept += ["%s=%s" % (key, value) for key, value in values.items()]
    atomic_write_bytes(path, ("\n".join(kept) + "\n").encode("utf-8"))


def append_record(path: str, text: str) -> None:
    """Append `text` to an append-only record, atomically (old bytes are kept as the prefix)."""
    old = b""
    if os.path.exists(path):
        with open(path, "rb") as handle:
            old = handle.read()
        if old and not old.endswith(b"\n"):
            old += b"\n"
    atomic_write_bytes(path, old + text.encode("utf-8"))


def append_record_once(path: str, text: str, marker: str) -> bool:
    """Append `text` unless the record already holds `marker` (a resumed run writes each record once)."""
    if os.path.exists(path):
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            if marker in handle.read():
                return False
    append_record(path, text)
    return True


def write_target_records(praxis_home: str, summary: dict, manifest: Dict[str, str],
                         fault: Optional[Callable[[str], None]] = None) -> dict:
    """Write summary reports, VERSION.txt, UPDATE_LOG.txt, INSTALLATION_SUMMARY.md, base manifest.

    Idempotent per session: the summary files are named by the session's records stamp, VERSION.txt and
    the base manifest are set (not appended), and the two append-only records get one entry per session
    and outcome (found again by `session=<id> <outcome>`), so re-running after a crash adds nothing twice.
    """
    cache = os.path.join(praxis_home, ".cache")
    stamp = summary["finished_at"].replace(":", "").replace("-", "")
    json_path = os.path.join(cache, "upgrade-summary-%s.json" % stamp)
    md_path = os.path.join(cache, "upgrade-summary-%s.md" % stamp)
    atomic_write_json(json_path, summary)
    atomic_write_bytes(md_path, render_summary_markdown(summary).encode("utf-8"))
    if summary["outcome"] == "completed":
        update_version_file(
            os.path.join(praxis_home, "VERSION.txt"), summary["target_commit"], summary["source_path"], summary["finished_at"]
        )
        atomic_write_json(
            os.path.join(cache, "base-manifest.json"), {"commit": summary["target_commit"], "files": manifest}
        )
    counts = summary.get("counts") or {}
    marker = "session=%s outcome=%s" % (summary.get("session_id"), summary["outcome"])
    append_record_once(
        os.path.join(praxis_home, "UPDATE_LOG.txt"),
        "%s %s %s -> %s (%s) %s backup=%s added=%s updated=%s deleted=%s conflicts=%s\n" % (
            summary["finished_at"], summary["outcome"], (summary.get("installed_commit") or "?")[:12],
            summary["target_commit"][:12], summary.get("target_describe"), marker,
            summary.get("backup_path"), counts.get("add", 0), counts.get("update", 0),
            counts.get("delete", 0), counts.get("conflict", 0),
        ),
        marker,
    )
    if fault:
        fault("cleanup.after_update_log")
    append_record_once(
        os.path.join(praxis_home, "INSTALLATION_SUMMARY.md"),
        "\n## Upgrade %s — %s\n\n- to `%s` (%s) from `%s`\n- backup: `%s`\n- report: `%s`\n- %s\n" % (
            summary["finished_at"], summary["outcome"], summary["target_commit"][:12],
            summary.get("target_describe"), (summary.get("installed_commit") or "?")[:12],
            summary.get("backup_path"), md_path, marker,
        ),
        marker,
    )
    return {"json": json_path, "markdown": md_path}


# --- controller side: one run report with a row per target ------------------------------------

# options of praxis_run_report, shared by its action plugin (which does the work) and its module stub
RUN_REPORT_ARGS = dict(
    report_dir=dict(type="path", required=True),
    run_id=dict(type="str", required=True),
    host=dict(type="str", required=True),
    row=dict(type="dict", required=True),
    hosts=dict(type="list", elements="str", default=[]),
    source=dict(type="dict", default={}),
    check_mode_run=dict(type="bool", default=False),
    kind=dict(type="str", default="upgrade", choices=["upgrade", "rollback", "install", "status"]),
)


def run_report_paths(report_dir: str, run_id: str, kind: str = "upgrade") -> Dict[str, str]:
    """`<report_dir>/<kind>-<run_id>.{json,md,html}`."""
    stem = os.path.join(report_dir, "%s-%s" % (kind, run_id))
    return {"json": stem + ".json", "markdown": stem + ".md", "html": stem + ".html"}


def merge_run_row(report_dir: str, run_id: str, host: str, row: dict, hosts: Iterable[str], source: dict,
                  kind: str = "upgrade", batch: Optional[Iterable[str]] = None) -> dict:
    """Add or replace `host`'s row in the run report, under a lock (forks write concurrently).

    `batch`: the hosts of the row's serial batch (`ansible_play_batch`), merged into the report's
    `batches`. The JSON, the Markdown and the HTML page are rewritten together after every row.
    """
    os.makedirs(report_dir, exist_ok=True)
    paths = run_report_paths(report_dir, run_id, kind)
    json_path = paths["json"]
    with open(json_path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        document = read_json(json_path, "run report") if os.path.exists(json_path) else {}
        document.setdefault("run_id", run_id)
        document["kind"] = kind
        document["source"] = source
        known = list(document.get("inventory") or [])
        document["inventory"] = known + [name for name in hosts if name not in known]
        if batch is not None:
            document["batches"] = htmlreport.merge_batch(document.get("batches") or [], list(batch) + [host])
        rows = {r["host"]: r for r in document.get("hosts") or []}
        rows[host] = dict(row, host=host, recorded_at=utc_stamp())
        document["hosts"] = [rows[name] for name in document["inventory"] if name in rows]
        document["hosts"] += [r for name, r in sorted(rows.items()) if name not in document["inventory"]]
        atomic_write_json(json_path, document)
        markdown = render_status_markdown(document) if kind == "status" else render_run_markdown(document)
        atomic_write_bytes(paths["markdown"], markdown.encode("utf-8"))
        atomic_write_bytes(paths["html"], htmlreport.render_html(document, utc_stamp()).encode("utf-8"))
    return dict(paths, document=document)


def _row_cells(row: dict) -> List[str]:
    session = row.get("session") or {}
    phases = session.get("phases") or {}
    seconds = sum((p or {}).get("duration_s") or 0 for p in phases.values())
    counts = row.get("content_counts") or {}
    before, after = row.get("tools_before") or [], row.get("tools_after") or []
    return [
        row["host"],
        row.get("outcome", "?"),
        (row.get("installed_commit") or session.get("installed_commit") or "?")[:7],
        (row.get("target_commit") or session.get("target_commit") or "?")[:7],
        "+%s ~%s -%s !%s" % (counts.get("add", 0), counts.get("update", 0), counts.get("delete", 0), counts.get("conflict", 0))
        if counts else "",
        "%d→%d" % (len(before), len(after)) if after else "",
        "%.1f" % seconds if seconds else "",
        _notes(row),
    ]


def _notes(row: dict) -> str:
    notes = []
    if row.get("failed_phase"):
        notes.append("%s: %s" % (row["failed_phase"], row.get("reason", "")))
    if row.get("ide_restart_required"):
        notes.append("restart the IDE's MCP server (it still runs the old version)")
    previous = row.get("lock_taken_over")
    if previous:
        notes.append("took over the stale lock of session %s (%s)" % (previous.get("session_id"),
                                                                      previous.get("controller")))
    return "; ".join(notes)


def render_run_markdown(document: dict) -> str:
    source = document.get("source") or {}
    rows = {r["host"]: r for r in document.get("hosts") or []}
    lines = [
        "# prAxIs OS %s run %s" % (document.get("kind") or "upgrade", document.get("run_id")),
        "",
        "Target: `%s` (%s) from `%s`" % ((source.get("commit") or "?")[:12], source.get("describe"), source.get("path")),
        "",
        "| host | outcome | from | to | files (+ ~ - !) | tools | seconds | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in document.get("inventory") or []:
        if name in rows:
            cells = _row_cells(rows[name])
        else:
            cells = [name, "not_reached", "", "", "", "", "", "no result: unreachable, or its batch never started"]
        lines.append("| " + " | ".join(" ".join(str(c).replace("|", "/").split()) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_status_markdown(document: dict) -> str:
    """The fleet status (`kind: status`) as a Markdown table: one row per inventory host."""
    rows = {r["host"]: r for r in document.get("hosts") or []}
    lines = [
        "# prAxIs OS fleet status %s" % document.get("run_id"),
        "",
        "| host | health | commit | tools | server mode | lock | last session | backups |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in document.get("inventory") or []:
        row = rows.get(name)
        if row is None:
            cells = [name, "not_reached", "", "", "", "", "no result: unreachable", ""]
        else:
            session = row.get("session") or {}
            lock = row.get("lock")
            cells = [
                name, row.get("outcome", "?"), (row.get("installed_commit") or "?")[:7], str(len(row.get("tools") or [])),
                row.get("server_mode") or "", "session %s" % lock.get("session_id") if isinstance(lock, dict) else "free",
                "%s %s %s" % (session.get("status") or "none", session.get("finished_at") or "", session.get("reason") or ""),
                str(len(row.get("backups") or [])),
            ]
        lines.append("| " + " | ".join(" ".join(str(c).replace("|", "/").split()) for c in cells) + " |")
    return "\n".join(lines) + "\n"
