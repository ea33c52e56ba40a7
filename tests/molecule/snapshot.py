"""Snapshot of a tree ON a fleet host (stdlib only): every entry's type, size, mode, mtime_ns and
sha256 (files outside the --no-hash prefixes). Prints JSON {rel: [kind, size, mode, mtime_ns, sha256|null]}.

    python3 snapshot.py ROOT [--no-hash REL ...]

`__pycache__` directories are left out: Python writes them whenever anything imports the installed
server (a stdio health probe does), so they say nothing about what an upgrade wrote. Directories
are recorded with mtime 0 for the same reason (a new .pyc bumps its parent's mtime); files keep
their mtime, so a rewrite with identical bytes is still seen.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import sys


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    root = sys.argv[1]
    unhashed = sys.argv[sys.argv.index("--no-hash") + 1:] if "--no-hash" in sys.argv else []
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "file"
            digest = None
            if kind == "file" and not any(rel == h or rel.startswith(h.rstrip("/") + "/") for h in unhashed):
                digest = sha256(path)
            out[rel] = [kind, st.st_size if kind == "file" else 0, stat.S_IMODE(st.st_mode), st.st_mtime_ns if kind != "dir" else 0, digest]
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
