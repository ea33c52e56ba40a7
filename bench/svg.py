"""A small self-made SVG: the fleet curve and the downtime timeline(s) (pure, no plotting dependency)."""
from __future__ import annotations

from typing import Sequence
from xml.sax.saxutils import escape

WIDTH, PANEL_H, MARGIN = 720, 260, 50
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start") -> str:
    return '<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s">%s</text>' % (x, y, size, anchor, escape(text))


def _axes(top: float, xmax: float, ymax: float, xlabel: str, ylabel: str, ticks: int = 4,
          xticks: Sequence[float] = ()) -> list[str]:
    left, right, bottom = MARGIN, WIDTH - 20, top + PANEL_H - 40
    parts = ['<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>' % (left, bottom, right, bottom),
             '<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>' % (left, top + 20, left, bottom),
             _text((left + right) / 2, bottom + 32, xlabel, anchor="middle"),
             _text(8, top + 14, ylabel)]
    for i in range(ticks + 1):
        yv = ymax * i / ticks
        y = bottom - (bottom - top - 20) * i / ticks
        parts.append(_text(left - 4, y + 4, "%g" % round(yv, 1), 10, "end"))
    for xv in xticks or [xmax * i / ticks for i in range(ticks + 1)]:
        x = left + (right - left) * xv / (xmax or 1)
        parts.append(_text(x, bottom + 15, "%g" % round(xv, 1), 10, "middle"))
    return parts


def _scale(top: float, xmax: float, ymax: float):
    left, right, bottom = MARGIN, WIDTH - 20, top + PANEL_H - 40

    def point(x: float, y: float) -> tuple[float, float]:
        return left + (right - left) * x / (xmax or 1), bottom - (bottom - top - 20) * y / (ymax or 1)
    return point


def fleet_panel(top: float, curve: Sequence[tuple[int, float]]) -> list[str]:
    parts = [_text(WIDTH / 2, top + 12, "Fleet curve: seconds per run vs local installations", 13, "middle")]
    if not curve:
        return parts + [_text(WIDTH / 2, top + PANEL_H / 2, "(not measured)", 12, "middle")]
    xmax = max(p[0] for p in curve) * 1.1
    ymax = max(p[1] for p in curve) * 1.15
    parts += _axes(top, xmax, ymax, "hosts (dashed: hosts × 1 host; dotted: 1 host)", "s",
                   xticks=[p[0] for p in curve])
    point = _scale(top, xmax, ymax)
    one = dict(curve).get(1)
    if one:  # references: no parallelism (hosts × one host, dashed) and perfect parallelism (flat, dotted)
        end = min(xmax / 1.1, ymax / one)
        parts.append('<polyline fill="none" stroke="#bbb" stroke-dasharray="6,4" points="%s"/>'
                     % " ".join("%.1f,%.1f" % point(h, one * h) for h in (1, end)))
        parts.append('<polyline fill="none" stroke="#bbb" stroke-dasharray="2,3" points="%s"/>'
                     % " ".join("%.1f,%.1f" % point(h, one) for h in (1, xmax / 1.1)))
    parts.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                 % (COLORS[0], " ".join("%.1f,%.1f" % point(h, s) for h, s in curve)))
    for hosts, seconds in curve:
        x, y = point(hosts, seconds)
        parts.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (x, y, COLORS[0]))
        parts.append(_text(x + 5, y - 6, "%.1f s" % seconds, 10))
    return parts


def timeline_panel(top: float, timelines: dict[str, Sequence[Sequence[float]]],
                   marks: dict[str, Sequence[tuple[float, float, str]]] | None = None) -> list[str]:
    """One row per probe: green = answered sample, red = unanswered; marks = labelled spans (phases)."""
    parts = [_text(WIDTH / 2, top + 12, "Downtime probe: MCP tools/list every 100 ms (green answered, red not)",
                   13, "middle")]
    rows = [(label, samples) for label, samples in timelines.items() if samples]
    if not rows:
        return parts + [_text(WIDTH / 2, top + PANEL_H / 2, "(not measured)", 12, "middle")]
    xmax = max(s[1] for row in rows for s in row[1]) * 1.02
    left, right = 150, WIDTH - 20
    row_h = min(40.0, (PANEL_H - 70) / len(rows))
    for i, (label, samples) in enumerate(rows):
        y = top + 30 + i * row_h
        parts.append(_text(8, y + row_h / 2 + 4, label, 11))
        for start, end, ok in samples:
            x1 = left + (right - left) * start / xmax
            width = max(1.0, (right - left) * (end - start) / xmax)
            parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                         % (x1, y + 4, width, row_h * 0.5, "#2ca02c" if ok else "#d62728"))
        for start, end, name in (marks or {}).get(label, ()):
            x1 = left + (right - left) * start / xmax
            x2 = left + (right - left) * min(end, xmax) / xmax
            parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#555"/>'
                         % (x1, y + row_h * 0.6, max(1.0, x2 - x1), row_h * 0.3))
            parts.append(_text(x1 + 2, y + row_h * 0.85, name, 9))
    bottom = top + 30 + len(rows) * row_h
    parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>' % (left, bottom, right, bottom))
    for i in range(5):
        parts.append(_text(left + (right - left) * i / 4, bottom + 14, "%g s" % round(xmax * i / 4, 1), 10, "middle"))
    return parts


def chart(curve: Sequence[tuple[int, float]], timelines: dict[str, Sequence[Sequence[float]]],
          marks: dict[str, Sequence[tuple[float, float, str]]] | None = None) -> str:
    height = 2 * PANEL_H + 20
    body = fleet_panel(10, curve) + timeline_panel(PANEL_H + 20, timelines, marks)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
            'font-family="sans-serif">\n<rect width="100%%" height="100%%" fill="white"/>\n%s\n</svg>\n'
            % (WIDTH, height, WIDTH, height, "\n".join(body)))
