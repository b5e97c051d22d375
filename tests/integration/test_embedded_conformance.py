"""The embedded stores pass the shared conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from veltrix.adapters.memory import MemoryBackend
from veltrix.adapters.sqlite import SQLiteBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance


class TestMemoryConformance(BackendConformance):
    @pytest.fixture
    def backend(self) -> Iterator[MemoryBackend]:
        backend = open_backend("memory://")
        assert isinstance(backend, MemoryBackend)
        yield backend
        backend.close()


class TestSQLiteConformance(BackendConformance):
    watch_timeout = 2.0
    watch_may_coalesce = True  # polls: quick successive writes to one key may merge

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SQLiteBackend]:
        backend = open_backend(f"sqlite:///{tmp_path}/config.db")
        assert isinstance(backend, SQLiteBackend)
        yield backend
        backend.close()
