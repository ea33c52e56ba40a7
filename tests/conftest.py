"""Shared pytest set-up: make the checkout importable as ansible_collections.praxis.upgrade."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".build" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "praxis" / "upgrade"

if not LINK.exists():
    LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("../../../..", LINK)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))
os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
# The fixture server's index build models a slow embedding step (3 s by default); tests that measure
# the wait for a rebuild raise it themselves.
os.environ.setdefault("PRAXIS_FIXTURE_INDEX_BUILD_S", "0.5")
