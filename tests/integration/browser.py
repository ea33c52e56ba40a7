"""A real headless browser for the HTML reports: Chromium from Debian packages (`make setup` installs it).

`dump_dom` is the DOM Chromium built from the page (what the browser parsed, not our text); `layout` is
the same page with a measuring script added (the page itself carries none and forbids scripts): where
each host row and each bar landed on screen and the colour the browser painted it; `screenshot` keeps a
PNG. Every call is one `chromium --headless` process in its own session with its own profile directory,
stopped by its pid when it outlives its timeout.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 60

MEASURE = """<script>
const out = {rows: [], bars: [], scripts: 0};
for (const g of document.querySelectorAll('g.host-row')) {
  const r = g.getBoundingClientRect();
  out.rows.push({host: g.dataset.host, outcome: g.dataset.outcome, batch: g.dataset.batch, top: r.top});
}
for (const b of document.querySelectorAll('rect.bar')) {
  const r = b.getBoundingClientRect();
  out.bars.push({host: b.closest('g.host-row').dataset.host, phase: b.dataset.phase, kind: b.dataset.kind,
                 start: b.dataset.start, end: b.dataset.end, left: r.left, width: r.width, top: r.top,
                 fill: getComputedStyle(b).fill, title: b.querySelector('title').textContent});
}
out.scripts = document.querySelectorAll('script').length - 1;
const pre = document.createElement('pre'); pre.id = 'praxis-layout'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def chromium() -> str:
    """The browser's path; the test FAILS (never skips) without one: the HTML report is part of the product."""
    found = os.environ.get("PRAXIS_CHROMIUM") or next(filter(None, map(shutil.which, CANDIDATES)), None)
    if not found:
        pytest.fail("no headless browser: none of %s is on PATH (and PRAXIS_CHROMIUM is not set). "
                    "Next: run `make setup` (installs the Debian package chromium) or set PRAXIS_CHROMIUM" % ", ".join(CANDIDATES))
    return found


def _run(*args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="praxis-chromium-") as profile:
        command = [chromium(), "--headless", "--disable-gpu", "--no-first-run", "--disable-extensions",
                   "--disable-dev-shm-usage", "--hide-scrollbars", "--user-data-dir=" + profile, *args]
        if os.geteuid() == 0:
            command.insert(2, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: the browser and its helpers, by pid
            proc.communicate()
            pytest.fail("chromium did not finish within %d s: %s" % (TIMEOUT, " ".join(command)))
    if proc.returncode != 0:
        pytest.fail("chromium failed (exit %d): %s\n%s" % (proc.returncode, " ".join(command), stderr[-3000:]))
    return stdout


def dump_dom(page: Path) -> str:
    return _run("--dump-dom", page.resolve().as_uri())


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 900) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    _run("--window-size=%d,%d" % (width, height), "--screenshot=" + str(png.resolve()), page.resolve().as_uri())
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "chromium wrote no PNG to %s" % png
    return png


def layout(page: Path, workdir: Path) -> dict[str, Any]:
    """Rows and bars as the browser laid them out and painted them (the page plus the measuring script)."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text, count=1)
    probe = workdir / (page.stem + ".probe.html")
    probe.write_text(text.replace("</body>", MEASURE + "</body>", 1), encoding="utf-8")
    dom = _run("--window-size=1400,900", "--virtual-time-budget=3000", "--dump-dom", probe.resolve().as_uri())
    match = re.search(r'<pre id="praxis-layout">(.*?)</pre>', dom, re.S)
    assert match, "the measuring script left no result; the browser said:\n" + dom[-2000:]
    return json.loads(html.unescape(match.group(1)))
