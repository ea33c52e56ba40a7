from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

from tests.molecule.conftest_base import fleet, pytest_generate_tests  # noqa: E402,F401

__all__ = ["fleet", "pytest_generate_tests"]
