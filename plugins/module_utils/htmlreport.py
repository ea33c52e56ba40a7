# -*- coding: utf-8 -*-
# Copyright: (c) 2026, praxis.upgrade contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run report (upgrade, rollback, install) or the fleet's status as one self-contained HTML page.

The page is a per-host table and a timeline (inline SVG): one row per host, one bar per phase on a shared
wall-clock axis, serial batches marked, colour by outcome, the failure reason on hover (SVG `<title>`).
No script, no network, no external asset (a Content-Security-Policy says so to the browser); every value
from a run (host names, reasons, paths) is escaped.

Times come from the run report's rows: each phase's `started_at`/`finished_at` as the target's session
recorded them (second precision, the target's UTC clock), the row's `started_at` (when preflight began on
that host in this run), the session's `rollback` times and the row's `recorded_at` (controller clock).
"""

from __future__ import annotations

import datetime
import html
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.praxis.upgrade.plugins.module_utils.state import PHASES, parse_iso

# outcome -> (label, colour); an outcome not listed here is drawn in OTHER_COLOUR under its own name
OUTCOMES: Dict[str, Tuple[str, str]] = {
    "completed": ("completed", "#2e7d32"),
    "installed": ("installed", "#2e7d32"),
    "adopted": ("adopted", "#558b2f"),
    "rolled_back": ("rolled back", "#ef6c00"),
    "install_failed": ("install failed (undone)", "#ef6c00"),
    "up_to_date": ("up to date", "#1565c0"),
    "dry_run": ("dry run", "#6a1b9a"),
    "in_progress": ("interrupted (resumable)", "#f9a825"),
    "rolling_back": ("rollback interrupted", "#f9a825"),
    "failed": ("failed", "#c62828"),
    "not_reached": ("unreachable / not reached", "#9e9e9e"),
    "healthy": ("healthy", "#2e7d32"),
    "unhealthy": ("unhealthy", "#c62828"),
}
OTHER_COLOUR = "#546e7a"
FAILED_COLOUR = "#c62828"
ROLLBACK_COLOUR = "#6d4c41"
NOT_REACHED = "not_reached"
NOT_REACHED_NOTE = "no result: unreachable, or its batch never started"
NO_TIMES_NOTE = "no phase times recorded (no upgrade session)"
NO_STATUS_NOTE = "no status: unreachable, or not an installation (see the playbook output)"
RUN_KINDS = ("upgrade", "rollback", "install")

# timeline geometry (px)
LABEL_W = 190
CHART_W = 760
RIGHT_PAD = 24
AXIS_H = 40
ROW_H = 26
BAR_H = 16
MIN_BAR_W = 3.0
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)
MAX_TICKS = 10
TICK_LABEL_W = 64

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class Bar(NamedTuple):
    """One bar of a host's timeline: a phase (`done` or `failed`) or the rollback."""

    phase: str
    kind: str  # done | failed | rollback
    start: datetime.datetime
    end: datetime.datetime
    note: str = ""


class Line(NamedTuple):
    """One host of the page: its row, its outcome, its batch and its bars in time order."""

    host: str
    outcome: str
    bar_outcome: str
    batch: Optional[int]
    bars: List[Bar]
    earlier: List[str]
    row: dict


def esc(value: object) -> str:
    """Text or attribute value, escaped for HTML and inline SVG (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def _time(value: object) -> Optional[datetime.datetime]:
    try:
        return parse_iso(value) if value else None  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


def run_start(run_id: Optional[str]) -> Optional[datetime.datetime]:
    """When the run began, from its id (`20261124T101500Z-<commit>`), or None for another shape."""
    match = re.match(r"^(\d{8}T\d{6}Z)", run_id or "")
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)


def outcome_style(outcome: str) -> Tuple[str, str]:
    """(label, colour) of an outcome; unknown outcomes keep their name and get the neutral colour."""
    return OUTCOMES.get(outcome, (outcome.replace("_", " "), OTHER_COLOUR))


def css_name(value: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", value.lower()) or "none"


def host_bars(row: dict, since: Optional[datetime.datetime] = None) -> Tuple[List[Bar], List[str]]:
    """The bars of one row, in time order, and the phases done in an earlier run (resumed session).

    `since` is when this run began on the host (its preflight; else the run's start); a phase finished
    before it belongs to an earlier run of a resumed session and is listed, not drawn, and a phase that
    began before it is drawn from it. A failed phase runs from the end of the last phase to the start of
    the rollback; the rollback from its start to its end (else the row's `recorded_at`). A host that
    stopped after preflight (up to date) has one preflight bar from `started_at` to `recorded_at`.
    """
    session = row.get("session") or {}
    phases = session.get("phases") or {}
    since = _time(row.get("started_at")) or since
    bars: List[Bar] = []
    earlier: List[str] = []
    for name in PHASES:
        phase = phases.get(name) or {}
        end = _time(phase.get("finished_at"))
        if end is None:
            continue
        start = _time(phase.get("started_at"))
        if start is None and isinstance(phase.get("duration_s"), (int, float)):
            start = end - datetime.timedelta(seconds=phase["duration_s"])
        start = min(start or end, end)
        if since is not None and end < since:
            earlier.append(name)
            continue
        if since is not None and start < since:
            start = since
        bars.append(Bar(name, "done", start, end))
    rollback = session.get("rollback") or {}
    rollback_start = _time(rollback.get("started_at"))
    failed = row.get("failed_phase") or failed_phase_of(session)
    reason = row.get("reason") or rollback.get("reason") or session.get("reason") or ""
    if rollback_start is not None:
        if failed:
            begun = max([drawn.end for drawn in bars] + ([since] if since else []), default=rollback_start)
            bars.append(Bar(failed, "failed", min(begun, rollback_start), rollback_start, reason))
        rollback_end = _time(rollback.get("finished_at")) or _time(row.get("recorded_at")) or rollback_start
        backup = rollback.get("backup_path") or ""
        bars.append(Bar("rollback", "rollback", rollback_start, max(rollback_end, rollback_start),
                        "restored from %s" % backup if backup else "nothing to restore"))
    if not bars and since is not None:
        done = _time(row.get("recorded_at"))
        if done is not None and done >= since:
            bars.append(Bar("preflight", "done", since, done))
    bars.sort(key=lambda drawn: (drawn.start, drawn.end))
    return bars, earlier


def failed_phase_of(session: dict) -> Optional[str]:
    """The phase a rolled-back upgrade failed in, from its session alone: the first phase it had not
    finished when the rollback began (None when the rollback undid a finished upgrade, e.g. rollback.yml)."""
    rollback = session.get("rollback") or {}
    if not rollback or rollback.get("from_status") != "in_progress":
        return None
    finished = session.get("phases") or {}
    return next((name for name in PHASES if name not in finished), None)


def batches_of(document: dict) -> Dict[str, int]:
    """{host: batch number from 1} from the report's `batches` (serial batches in the order they ran)."""
    numbers: Dict[str, int] = {}
    for index, hosts in enumerate(document.get("batches") or [], start=1):
        for host in hosts:
            numbers.setdefault(host, index)
    return numbers


def merge_batch(batches: Sequence[Sequence[str]], batch: Sequence[str]) -> List[List[str]]:
    """Add one row's batch (the hosts of its `ansible_play_batch`) to the run's batches.

    Serial batches are disjoint, but a host that failed early is missing from the batch lists of later
    rows: a batch overlapping known ones is merged with them, a new one is appended (batches run in order).
    """
    result = [list(hosts) for hosts in batches]
    members = list(dict.fromkeys(batch))
    if not members:
        return result
    overlapping = [i for i, hosts in enumerate(result) if set(hosts) & set(members)]
    if not overlapping:
        return result + [members]
    first = overlapping[0]
    for index in overlapping[1:]:
        result[first] += result[index]
    result[first] = list(dict.fromkeys(result[first] + members))
    return [hosts for i, hosts in enumerate(result) if i not in overlapping[1:]]


def lines_of(document: dict, status: bool = False) -> List[Line]:
    """Every inventory host of the report (rows first by batch and start time, hosts without a row last)."""
    rows = {r["host"]: r for r in document.get("hosts") or [] if r.get("host") is not None}
    inventory = list(document.get("inventory") or [])
    inventory += [name for name in rows if name not in inventory]
    numbers = batches_of(document)
    since = run_start(document.get("run_id")) if not status else None
    lines = []
    for name in inventory:
        row = rows.get(name)
        if row is None:
            lines.append(Line(name, NOT_REACHED, NOT_REACHED, None, [], [], {"host": name}))
            continue
        bars, earlier = host_bars(row, since)
        outcome = str(row.get("outcome") or "?")
        bar_outcome = outcome
        if status:  # the bars are the last session's: coloured by how that session ended
            bar_outcome = str((row.get("session") or {}).get("status") or outcome)
        lines.append(Line(name, outcome, bar_outcome, numbers.get(name), bars, earlier, row))
    order = {name: index for index, name in enumerate(inventory)}
    far = datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)

    def key(line: Line) -> tuple:
        reached = line.outcome != NOT_REACHED
        start = line.bars[0].start if line.bars else far
        return (not reached, line.batch if line.batch is not None else 1 << 30, start, order[line.host])

    return sorted(lines, key=key)


# --- the timeline (inline SVG) -----------------------------------------------------------------

def tick_step(span_s: float) -> int:
    """The smallest step of TICK_STEPS that keeps the axis at MAX_TICKS ticks or fewer."""
    for step in TICK_STEPS:
        if span_s / step <= MAX_TICKS:
            return step
    return TICK_STEPS[-1] * (int(span_s // (TICK_STEPS[-1] * MAX_TICKS)) + 1)


def _seconds(delta: datetime.timedelta) -> str:
    total = delta.total_seconds()
    if total < 1:
        return "<1 s"
    if total < 120:
        return "%d s" % round(total)
    if total < 7200:
        return "%dm%02ds" % divmod(int(round(total)), 60)
    return "%dh%02dm" % divmod(int(round(total)) // 60, 60)


def _clock(moment: datetime.datetime) -> str:
    return moment.strftime("%H:%M:%S")


def _bar_title(line: Line, drawn: Bar) -> str:
    what = {"done": drawn.phase, "failed": "%s FAILED" % drawn.phase, "rollback": "rollback"}[drawn.kind]
    text = "%s — %s: %s → %s UTC (%s)" % (line.host, what, drawn.start.strftime("%Y-%m-%d %H:%M:%S"),
                                          _clock(drawn.end), _seconds(drawn.end - drawn.start))
    if drawn.note:
        text += "\n" + drawn.note
    return text


def render_timeline(lines: Sequence[Line], mark_batches: bool = True, missing_note: str = NOT_REACHED_NOTE) -> str:
    """The SVG timeline; a paragraph instead when no host has a recorded time."""
    timed = [drawn for line in lines for drawn in line.bars]
    if not timed:
        return '<p class="no-timeline">No phase times were recorded for any host.</p>'
    t0 = min(drawn.start for drawn in timed)
    t1 = max(drawn.end for drawn in timed)
    span = max((t1 - t0).total_seconds(), 1.0)

    def x(moment: datetime.datetime) -> float:
        return LABEL_W + (moment - t0).total_seconds() / span * CHART_W

    def clock(moment: datetime.datetime) -> str:  # a span of days (a status page's last sessions) shows dates
        return moment.strftime("%m-%d %H:%M" if span >= 86400 else "%H:%M:%S")

    width = LABEL_W + CHART_W + RIGHT_PAD
    height = AXIS_H + ROW_H * len(lines) + 8
    out = ['<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'role="img" aria-label="timeline of the run, one row per host">' % (width, height, width, height),
           '<defs><pattern id="failed-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="%s"/>'
           '<rect width="2" height="6" fill="#ffffff" fill-opacity="0.45"/></pattern></defs>' % FAILED_COLOUR]
    # batch bands behind the rows
    if mark_batches:
        index = 0
        while index < len(lines):
            batch = lines[index].batch
            end = index
            while end < len(lines) and lines[end].batch == batch:
                end += 1
            if batch is not None:
                out.append('<rect class="batch batch-%s" data-batch="%d" x="0" y="%d" width="%d" height="%d"/>'
                           % ("odd" if batch % 2 else "even", batch, AXIS_H + ROW_H * index, width, ROW_H * (end - index)))
                out.append('<text class="batch-label" x="4" y="%d">batch %d</text>'
                           % (AXIS_H + ROW_H * index + 10, batch))
            index = end
    # axis: ticks on whole multiples of the step (wall clock, UTC)
    step = tick_step(span)
    first = (int(t0.timestamp()) // step + 1) * step
    epoch = datetime.datetime.fromtimestamp(0, datetime.timezone.utc)
    out.append('<g class="axis">')
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d"/>' % (LABEL_W, AXIS_H - 6, LABEL_W + CHART_W, AXIS_H - 6))
    ticks = [t0] + [epoch + datetime.timedelta(seconds=s) for s in range(first, int(t1.timestamp()) + 1, step)]
    for moment in ticks:
        if moment != t0 and x(moment) - x(t0) < TICK_LABEL_W:
            continue  # too close to the first label to be read
        px = x(moment)
        out.append('<line class="tick" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>' % (px, AXIS_H - 10, px, height))
        out.append('<text class="tick-label" x="%.1f" y="%d">%s</text>' % (px, AXIS_H - 14, clock(moment)))
    out.append('<text class="axis-title" x="%d" y="12">UTC, %s → %s (%s)</text>'
               % (LABEL_W, t0.strftime("%Y-%m-%d %H:%M:%S"), t1.strftime("%Y-%m-%d %H:%M:%S"), _seconds(t1 - t0)))
    out.append("</g>")
    # batch starts: where each batch's first host began
    if mark_batches:
        starts: Dict[int, datetime.datetime] = {}
        for line in lines:
            if line.batch is not None and line.bars:
                starts[line.batch] = min(starts.get(line.batch, line.bars[0].start), line.bars[0].start)
        for batch, moment in sorted(starts.items()):
            out.append('<line class="batch-start" data-batch="%d" x1="%.1f" y1="%d" x2="%.1f" y2="%d">'
                       '<title>batch %d began %s UTC</title></line>'
                       % (batch, x(moment), AXIS_H - 6, x(moment), height, batch, clock(moment)))
    for index, line in enumerate(lines):
        out.append(_timeline_row(line, index, x, clock, missing_note))
    out.append("</svg>")
    return "\n".join(out)


def _timeline_row(line: Line, index: int, x, clock, missing_note: str) -> str:
    top = AXIS_H + ROW_H * index
    label, _colour = outcome_style(line.outcome)
    host_title = "%s: %s" % (line.host, label)
    if line.row.get("failed_phase"):
        host_title += " in %s — %s" % (line.row["failed_phase"], line.row.get("reason") or "")
    if line.earlier:
        host_title += " (resumed; done in an earlier run: %s)" % ", ".join(line.earlier)
    parts = ['<g class="host-row outcome-%s" data-host="%s" data-outcome="%s" data-batch="%s">'
             % (css_name(line.outcome), esc(line.host), esc(line.outcome), "" if line.batch is None else line.batch),
             '<text class="host-label" x="%d" y="%d">%s<title>%s</title></text>'
             % (LABEL_W - 8, top + ROW_H / 2 + 4, esc(line.host), esc(host_title))]
    if line.outcome == NOT_REACHED:
        parts.append('<rect class="unreached" x="%d" y="%.1f" width="%d" height="%d"><title>%s</title></rect>'
                     % (LABEL_W, top + (ROW_H - BAR_H) / 2, CHART_W, BAR_H, esc("%s: %s" % (line.host, missing_note))))
        parts.append('<text class="unreached-label" x="%d" y="%d">%s</text>'
                     % (LABEL_W + 8, top + ROW_H / 2 + 4, esc(missing_note)))
    if line.outcome != NOT_REACHED and not line.bars:
        parts.append('<text class="unreached-label" x="%d" y="%d">%s</text>'
                     % (LABEL_W + 8, top + ROW_H / 2 + 4, esc(NO_TIMES_NOTE)))
    for drawn in line.bars:
        left = x(drawn.start)
        width = max(x(drawn.end) - left, MIN_BAR_W)
        classes = "bar phase-%s kind-%s outcome-%s" % (css_name(drawn.phase), drawn.kind, css_name(line.bar_outcome))
        parts.append('<rect class="%s" data-phase="%s" data-kind="%s" data-start="%s" data-end="%s" x="%.1f" y="%.1f" '
                     'width="%.1f" height="%d" rx="2"><title>%s</title></rect>'
                     % (classes, esc(drawn.phase), drawn.kind, drawn.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        drawn.end.strftime("%Y-%m-%dT%H:%M:%SZ"), left, top + (ROW_H - BAR_H) / 2, width, BAR_H,
                        esc(_bar_title(line, drawn))))
        label = ("✕ " if drawn.kind == "failed" else "") + drawn.phase
        if width >= 7 * len(label) + 6:
            parts.append('<text class="bar-label" x="%.1f" y="%d">%s</text>' % (left + 3, top + ROW_H / 2 + 4, esc(label)))
        elif drawn.kind == "failed":  # too narrow for the name: the mark alone, above the bar's start
            parts.append('<text class="failed-mark" x="%.1f" y="%d">✕</text>' % (left, top + 9))
    parts.append("</g>")
    return "".join(parts)


# --- the page ----------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#212121;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#555;margin:0 0 12px}.summary span{margin-right:12px}
table{border-collapse:collapse;width:100%;max-width:1400px}
th,td{border-bottom:1px solid #e0e0e0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5;font-weight:600}td.reason{max-width:420px;overflow-wrap:anywhere}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;white-space:nowrap}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:8px 0;font-size:13px}
.legend .swatch{display:inline-block;width:14px;height:10px;margin-right:5px;border-radius:2px;vertical-align:middle}
svg.timeline{font:12px system-ui,sans-serif;max-width:100%;height:auto}
svg .axis line{stroke:#9e9e9e}svg .tick{stroke:#eeeeee}svg .tick-label{fill:#616161;text-anchor:middle;font-size:11px}
svg .axis-title{fill:#424242;font-size:11px}
svg .batch-odd{fill:#f7f9fb}svg .batch-even{fill:#eef2f6}
svg .batch-label{fill:#90a4ae;font-size:10px}
svg .batch-start{stroke:#455a64;stroke-dasharray:4 3}
svg .host-label{text-anchor:end;fill:#212121}
svg .bar{stroke:#fff;stroke-width:1}svg .bar-label{fill:#fff;font-size:11px;pointer-events:none}
svg .kind-failed{fill:url(#failed-hatch)}svg .kind-rollback{fill:@ROLLBACK@}
svg .failed-mark{fill:@FAILED@;font-weight:700}
svg .unreached{fill:#f5f5f5;stroke:#bdbdbd;stroke-dasharray:4 3}svg .unreached-label{fill:#757575;font-size:11px}
@OUTCOMES@
"""


def _style() -> str:
    """The page's CSS: outcome colours (two classes) win over the fallback (one class) by specificity."""
    rules = ["svg .kind-done{fill:%s}.badge{background:%s}" % (OTHER_COLOUR, OTHER_COLOUR)]
    for outcome, (_label, colour) in sorted(OUTCOMES.items()):
        name = css_name(outcome)
        rules.append("svg .kind-done.outcome-%s{fill:%s}.badge.outcome-%s,.swatch.outcome-%s{background:%s}"
                     % (name, colour, name, name, colour))
    return (STYLE.replace("@ROLLBACK@", ROLLBACK_COLOUR).replace("@FAILED@", FAILED_COLOUR)
            .replace("@OUTCOMES@", "\n".join(rules)))


def _badge(outcome: str) -> str:
    label, _colour = outcome_style(outcome)
    return '<span class="badge outcome-%s">%s</span>' % (css_name(outcome), esc(label))


def _legend(lines: Sequence[Line], phases_drawn: bool, mark_batches: bool) -> str:
    seen = list(dict.fromkeys([line.bar_outcome for line in lines if line.bars] + [line.outcome for line in lines]))
    items = []
    for outcome in seen:
        label, _colour = outcome_style(outcome)
        items.append('<span class="legend-item" data-outcome="%s"><span class="swatch outcome-%s"></span>%s</span>'
                     % (esc(outcome), css_name(outcome), esc(label)))
    if phases_drawn:
        items.append('<span class="legend-item" data-kind="failed"><span class="swatch" style="background:%s">'
                     '</span>failed phase ✕ (reason on hover)</span>' % FAILED_COLOUR)
        items.append('<span class="legend-item" data-kind="rollback"><span class="swatch" style="background:%s">'
                     '</span>rollback</span>' % ROLLBACK_COLOUR)
        items.append('<span class="legend-item">bars: %s, in order%s</span>'
                     % (" → ".join(PHASES), "; dashed line: a batch begins" if mark_batches else ""))
    return '<div class="legend">%s</div>' % "".join(items)


def _page(title: str, meta: str, summary: str, table: str, lines: Sequence[Line], mark_batches: bool,
          missing_note: str = NOT_REACHED_NOTE) -> str:
    drawn = any(line.bars for line in lines)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % CSP,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title>" % esc(title),
        "<style>%s</style></head><body>" % _style(),
        "<h1>%s</h1>" % esc(title),
        '<p class="meta">%s</p>' % meta,
        '<p class="summary">%s</p>' % summary,
        "<h2>Timeline</h2>",
        _legend(lines, drawn, mark_batches),
        render_timeline(lines, mark_batches, missing_note),
        "<h2>Hosts</h2>",
        table,
        "</body></html>",
        "",
    ])


def _summary(lines: Sequence[Line]) -> str:
    counts: Dict[str, int] = {}
    for line in lines:
        counts[line.outcome] = counts.get(line.outcome, 0) + 1
    return " ".join('<span data-outcome="%s">%s %d</span>' % (esc(o), _badge(o), n) for o, n in counts.items())


def _short(commit: object) -> str:
    return esc(str(commit)[:7]) if commit else "?"


def _wall(line: Line) -> str:
    if not line.bars:
        return ""
    return _seconds(max(drawn.end for drawn in line.bars) - line.bars[0].start)


def _backup_of(row: dict) -> str:
    session = row.get("session") or {}
    return (session.get("rollback") or {}).get("backup_path") or session.get("backup_path") or ""


def _run_notes(line: Line) -> List[str]:
    row = line.row
    notes = []
    if line.outcome == NOT_REACHED:
        notes.append(NOT_REACHED_NOTE)
    if line.earlier:
        notes.append("resumed: %s done in an earlier run" % ", ".join(line.earlier))
    if row.get("ide_restart_required"):
        notes.append("restart the IDE's MCP server (it still runs the old version)")
    previous = row.get("lock_taken_over")
    if isinstance(previous, dict):
        notes.append("took over the stale lock of session %s (%s)" % (previous.get("session_id"), previous.get("controller")))
    if row.get("outcome") == "rolled_back" and "healthy_after_rollback" in row:
        notes.append("healthy after rollback: %s" % ("yes" if row.get("healthy_after_rollback") else "NO"))
    if row.get("prune_failed"):
        notes.append("pruning old backups failed (the upgrade stands)")
    return notes


Cell = Tuple[str, str]  # (attributes of the <td>, its HTML: escaped already)
RUN_COLUMNS = ("host", "outcome", "batch", "from → to", "failed phase", "reason", "started (UTC)", "duration", "backup",
               "notes")
STATUS_COLUMNS = ("host", "health", "commit", "tools", "server mode", "lock", "last session", "backups")


def _table(columns: Sequence[str], lines: Sequence[Line], cells_of: Callable[[Line], List[Cell]]) -> str:
    """The hosts table: a header, then one row per line (`data-host`, `data-outcome` for tests and styles)."""
    rows = ["<tr>%s</tr>" % "".join("<th>%s</th>" % esc(name) for name in columns)]
    for line in lines:
        cells = "".join("<td%s>%s</td>" % (attributes, content) for attributes, content in cells_of(line))
        rows.append('<tr class="host outcome-%s" data-host="%s" data-outcome="%s">%s</tr>'
                    % (css_name(line.outcome), esc(line.host), esc(line.outcome), cells))
    return '<table class="hosts">%s</table>' % "".join(rows)


def _run_cells(line: Line) -> List[Cell]:
    row, session = line.row, line.row.get("session") or {}
    versions = ""
    if line.outcome != NOT_REACHED:
        versions = "<code>%s</code> → <code>%s</code>" % (
            _short(row.get("installed_commit") or session.get("installed_commit")),
            _short(row.get("target_commit") or session.get("target_commit")))
    return [
        ("", esc(line.host)),
        ("", _badge(line.outcome)),
        ("", "" if line.batch is None else str(line.batch)),
        ("", versions),
        (' class="failed-phase"', esc(row.get("failed_phase") or "")),
        (' class="reason"', esc(row.get("reason") or "")),
        ("", line.bars[0].start.strftime("%H:%M:%S") if line.bars else ""),
        ("", _wall(line)),
        ("", "<code>%s</code>" % esc(_backup_of(row))),
        ("", esc("; ".join(_run_notes(line)))),
    ]


def _status_cells(line: Line) -> List[Cell]:
    if line.outcome == NOT_REACHED:
        return [("", esc(line.host)), ("", _badge(line.outcome))] + [("", "")] * 4 + [
            (' class="reason"', esc(NO_STATUS_NOTE)), ("", "")]
    row = line.row
    tools = [str(tool) for tool in row.get("tools") or []]
    backups = [backup for backup in row.get("backups") or [] if isinstance(backup, dict)]
    lock = row.get("lock")
    health = _badge(line.outcome)
    errors = "; ".join(str(error) for error in row.get("health_errors") or [])
    if errors:
        health += '<div class="reason">%s</div>' % esc(errors)
    return [
        ("", esc(line.host)),
        ("", health),
        ("", "<code>%s</code>" % _short(row.get("installed_commit"))),
        (' title="%s"' % esc(", ".join(tools)), str(len(tools))),
        ("", esc(row.get("server_mode") or "")),
        ("", esc("held by session %s (%s)" % (lock.get("session_id"), row.get("lock_status") or "?")
                 if isinstance(lock, dict) else "free")),
        (' class="reason"', _session_cell(row.get("session") or {})),
        (' title="%s"' % esc("\n".join(b.get("path") or b.get("name") or "" for b in backups)),
         esc("%d (newest %s)" % (len(backups), backups[-1].get("name")) if backups else "none")),
    ]


def render_run_html(document: dict, generated_at: str = "") -> str:
    """The page of one run report (`upgrade`, `rollback` or `install`; `kind` in the document)."""
    kind = str(document.get("kind") or "upgrade")
    lines = lines_of(document)
    source = document.get("source") or {}
    meta = "target <code>%s</code> (%s) from <code>%s</code>" % (
        _short(source.get("commit")), esc(source.get("describe") or "?"), esc(source.get("path") or "?"))
    if generated_at:
        meta += " · written %s" % esc(generated_at)
    if any(line.row.get("check_mode") for line in lines):
        meta += " · <strong>dry run (--check): nothing was changed on the targets</strong>"
    table = _table(RUN_COLUMNS, lines, _run_cells)
    title = "prAxIs OS %s run %s" % (kind, document.get("run_id") or "?")
    return _page(title, meta, _summary(lines), table, lines, mark_batches=kind in RUN_KINDS)


def _session_cell(session: dict) -> str:
    if not session:
        return "none recorded"
    text = "%s · %s" % (session.get("status") or "?", session.get("session_id") or "?")
    if session.get("target_commit"):
        text += " · to %s" % str(session["target_commit"])[:7]
    if session.get("finished_at"):
        text += " · finished %s" % session["finished_at"]
    failed = failed_phase_of(session)
    if failed:
        text += " · failed in %s" % failed
    if session.get("reason"):
        text += " · %s" % session["reason"]
    return esc(text)


def render_status_html(document: dict, generated_at: str = "") -> str:
    """The fleet's current state: commit, health, tools, server mode, lock, last session, backups."""
    lines = lines_of(document, status=True)
    meta = "read-only status of every installation"
    if generated_at:
        meta += " · written %s" % esc(generated_at)
    meta += " · the timeline shows each host's last session"
    table = _table(STATUS_COLUMNS, lines, _status_cells)
    title = "prAxIs OS fleet status %s" % (document.get("run_id") or "?")
    return _page(title, meta, _summary(lines), table, lines, mark_batches=False, missing_note=NO_STATUS_NOTE)


def render_html(document: dict, generated_at: str = "") -> str:
    """The page for a report document: the fleet status for `kind: status`, else a run."""
    if document.get("kind") == "status":
        return render_status_html(document, generated_at)
    return render_run_html(document, generated_at)
