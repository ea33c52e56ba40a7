"""Imported by every scenario's tests/conftest.py: the `fleet` fixture and `name` parametrisation."""
from __future__ import annotations

from typing import Any

import pytest

from tests.molecule.fleetlib import Fleet

_FLEET: list[Fleet] = []


def get_fleet() -> Fleet:
    if not _FLEET:
        _FLEET.append(Fleet())
    return _FLEET[0]


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    return get_fleet()


def pytest_generate_tests(metafunc: Any) -> None:
    if "name" in metafunc.fixturenames:
        metafunc.parametrize("name", get_fleet().names)
