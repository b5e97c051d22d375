"""Shared fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.stores import ControlledStore


@pytest.fixture
def store() -> Iterator[ControlledStore]:
    """An empty in-process store that can be told to fail or stall (tests may override)."""
    backend = ControlledStore()
    yield backend
    backend.close()
