"""Downtime probe: an MCP `tools/list` against an installation's http server every 100 ms.

Each sample follows the server the way a client does: it reads the url from the installation's state
file (a restarted server may listen on another port), then runs initialize + tools/list with a short
deadline. `windows()` turns the samples into the unanswered windows (pure, unit-tested).
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from plugins.module_utils import mcp_client

INTERVAL = 0.1
SAMPLE_TIMEOUT = 1.0


@dataclass(frozen=True)
class Sample:
    start: float  # seconds since the probe started
    end: float
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class Window:
    start: float  # start of the first unanswered sample
    end: float  # end of the first answered sample after it (None: never answered again)
    samples: int  # unanswered samples in the window

    @property
    def seconds(self) -> float:
        return self.end - self.start


def windows(samples: Iterable[Sample], until: float | None = None) -> list[Window]:
    """The unanswered windows: from the start of the first failed sample to the end of the next answered one.

    A window still open after the last sample ends at `until` (or the last sample's end). Samples before
    the first answer count too: a server that never answered is down from the first sample.
    """
    found: list[Window] = []
    opened: float | None = None
    failed = 0
    last_end = 0.0
    for sample in sorted(samples, key=lambda s: s.start):
        last_end = max(last_end, sample.end)
        if not sample.ok:
            if opened is None:
                opened, failed = sample.start, 0
            failed += 1
        elif opened is not None:
            found.append(Window(opened, sample.end, failed))
            opened = None
    if opened is not None:
        found.append(Window(opened, until if until is not None else last_end, failed))
    return found


def answers(praxis_home: Path, timeout: float = SAMPLE_TIMEOUT) -> tuple[bool, str]:
    """One client round: discover the url from the state file, initialize, tools/list."""
    url, _pid, problem = mcp_client.discover_http_url(str(praxis_home))
    if not url:
        return False, problem or "no url"
    result = mcp_client.probe("http", url=url, timeout=timeout)
    if result["healthy"] and result["tool_count"]:
        return True, ""
    return False, "; ".join(result["errors"]) or "no tools"


def first_answer(praxis_home: Path, timeout: float = 60.0) -> float:
    """Seconds until the installation's server answers tools/list (polling every INTERVAL); raises on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if answers(praxis_home)[0]:
            return time.monotonic() - started
        time.sleep(INTERVAL)
    raise SystemExit(f"bench: the server of {praxis_home} did not answer within {timeout} s; "
                     f"Next: read {praxis_home}/.cache/mcp_server.log")


class Probe(threading.Thread):
    """Background sampler; use as a context manager around the measured run."""

    def __init__(self, praxis_home: Path, interval: float = INTERVAL) -> None:
        super().__init__(daemon=True, name="bench-probe")
        self.praxis_home, self.interval = Path(praxis_home), interval
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self._stop_event = threading.Event()

    def run(self) -> None:
        tick = time.monotonic()
        while not self._stop_event.is_set():
            begun = time.monotonic()
            ok, error = answers(self.praxis_home)
            self.samples.append(Sample(round(begun - self.t0, 3), round(time.monotonic() - self.t0, 3), ok,
                                       error[:160]))
            tick += self.interval
            self._stop_event.wait(max(0.0, tick - time.monotonic()))
            tick = max(tick, time.monotonic() - self.interval)  # a slow sample does not cause a burst

    def __enter__(self) -> "Probe":
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def summary(self) -> dict:
        found = windows(self.samples, until=self.samples[-1].end if self.samples else None)
        return {
            "interval": self.interval,
            "wall_start": self.wall0,
            "samples": len(self.samples),
            "answered": sum(1 for s in self.samples if s.ok),
            "windows": [dict(asdict(w), seconds=round(w.seconds, 3)) for w in found],
            "downtime": round(sum(w.seconds for w in found), 3),
            "timeline": [[s.start, s.end, int(s.ok)] for s in self.samples],
            "errors": sorted({s.error for s in self.samples if s.error})[:5],
        }
