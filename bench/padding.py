"""Synthetic trees made once and cached under .cache/bench/, then hard-linked into an installation.

- `venv_padding`: fake installed distributions (package dir + *.dist-info with METADATA/RECORD) of many
  small .py files and a few large binary files, so a fixture venv has the file count and size of a real
  one (~40k files, ~2 GB) and snapshot / restore / pip metadata scans cost what they cost for real.
- `user_content`: a user's specs/ tree and one big user workflow (many small markdown files, some
  large attachments), the content an upgrade must not walk or hash.

The data is real (random bytes on disk, not sparse), so any real copy pays for every block. Trees are
put into an installation with `cp -al` (hard links to the cached blocks): cheap to set up, and a
snapshot or copy of the installation costs exactly what it costs on a real tree of that shape.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

MiB = 1 << 20
COMPLETE = ".bench-complete"


class _Writer:
    """Writes files of given sizes from a random pool (fast, incompressible)."""

    def __init__(self) -> None:
        self.pool = os.urandom(4 * MiB)
        self.offset = 0

    def data(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            take = min(size - len(out), len(self.pool) - self.offset)
            out += self.pool[self.offset:self.offset + take]
            self.offset = (self.offset + take) % (len(self.pool) - 1)
        return bytes(out)

    def text(self, size: int) -> bytes:
        raw = base64.b64encode(self.data(max(1, size * 3 // 4)))[:size]
        lines = [b"# " + raw[i:i + 76] for i in range(0, len(raw), 76)]
        return b"\n".join(lines)[:size] + b"\n"


def split_sizes(files: int, total: int, large_share: float = 0.5, per_large: int = 2000) -> tuple[int, int, int]:
    """(large files, bytes per large file, bytes per small file) for `files` files of `total` bytes."""
    large = max(1, files // per_large) if files >= 10 else 0
    small = max(1, files - large)
    large_bytes = int(total * large_share) // large if large else 0
    small_bytes = max(1, (total - large_bytes * large) // small)
    return large, large_bytes, small_bytes


def _cached(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    dest = root / name
    if (dest / COMPLETE).exists():
        return dest
    tmp = root / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    print("bench: building %s once (cached for later runs) ..." % dest, flush=True)
    build(tmp)
    (tmp / COMPLETE).write_text("built in %.0f s\n" % (time.monotonic() - started))
    tmp.rename(dest)
    return dest


def venv_padding(cache: Path, files: int, total: int) -> Path:
    """A site-packages padding tree of ~`files` files and ~`total` bytes (cached)."""
    def build(dest: Path) -> None:
        writer = _Writer()
        per_package = 270
        packages = max(1, files // per_package)
        large, large_bytes, small_bytes = split_sizes(files, total)
        made = 0
        for p in range(packages):
            name = "benchpad_%03d" % p
            pkg = dest / name
            record = []
            count = files // packages - 5 + (1 if p < files % packages else 0)
            for i in range(max(1, count)):
                sub = pkg / ("sub%02d" % (i // 40))
                sub.mkdir(parents=True, exist_ok=True)
                if made < large and i == 0:
                    path, data = sub / "_native.so", writer.data(large_bytes)
                else:
                    path, data = sub / ("mod_%03d.py" % i), writer.text(small_bytes)
                path.write_bytes(data)
                made += 1 if path.suffix == ".so" else 0
                record.append("%s,,%d" % (path.relative_to(dest).as_posix(), len(data)))
            info = dest / ("%s-1.0.dist-info" % name)
            info.mkdir()
            (info / "METADATA").write_text("Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name)
            (info / "WHEEL").write_text("Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            (info / "INSTALLER").write_text("pip\n")
            (info / "top_level.txt").write_text(name + "\n")
            meta = ("METADATA", "WHEEL", "INSTALLER", "top_level.txt", "RECORD")
            record += ["%s-1.0.dist-info/%s,," % (name, f) for f in meta]
            (info / "RECORD").write_text("\n".join(record) + "\n")
    return _cached(cache, "venv-pad-%d-%dM" % (files, total // MiB), build)


def user_content(cache: Path, files: int, total: int) -> Path:
    """A `.praxis-os`-relative tree: specs/ (90% of the files) and workflows/bench_user_workflow/ (cached)."""
    def build(dest: Path) -> None:
        writer = _Writer()
        large, large_bytes, small_bytes = split_sizes(files, total, per_large=1000)
        wf_files = files // 10
        spec_files = files - wf_files
        per_spec = 100
        for i in range(spec_files):
            spec = dest / "specs" / ("2026-01-%02d-feature-%04d" % (1 + i // per_spec % 28, i // per_spec))
            if i % per_spec == 0:
                spec.mkdir(parents=True, exist_ok=True)
            if i < large:
                (spec / ("attachment-%03d.bin" % i)).write_bytes(writer.data(large_bytes))
            else:
                (spec / ("note-%03d.md" % (i % per_spec))).write_bytes(writer.text(small_bytes))
        for i in range(wf_files):
            phase = dest / "workflows" / "bench_user_workflow" / "phases" / str(i // 50)
            if i % 50 == 0:
                phase.mkdir(parents=True, exist_ok=True)
            (phase / ("task-%02d.md" % (i % 50))).write_bytes(writer.text(small_bytes))
    return _cached(cache, "user-content-%d-%dM" % (files, total // MiB), build)


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise SystemExit("bench: no lib/python3*/site-packages in %s; Next: rebuild the fixture venv "
                         "(rm -rf .cache/venvs)" % venv)
    return found[0]


def link_into(tree: Path, dest: Path) -> None:
    """Hard-link every entry of `tree` (but the marker) into `dest` (cp -al; same filesystem)."""
    dest.mkdir(parents=True, exist_ok=True)
    entries = [str(p) for p in sorted(tree.iterdir()) if p.name != COMPLETE]
    subprocess.run(["cp", "-al", *entries, str(dest)], check=True)


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) below root."""
    files = size = 0
    for current, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(current, name)).st_size
    return files, size
