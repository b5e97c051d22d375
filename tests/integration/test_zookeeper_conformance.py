"""The ZooKeeper adapter against a real ZooKeeper 3.8 server (scripts/services up zookeeper)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import unique_name
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance


class TestZooKeeperConformance(BackendConformance):
    # One-shot ZooKeeper watches: the znode is re-read when its watch fires, so two
    # quick writes to one key may be seen as one (the last). Nothing else is lost.
    watch_may_coalesce = True
    watch_timeout = 15.0

    @pytest.fixture
    def backend(self, zk_hosts: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
        from veltrix.adapters.zookeeper import ZooKeeperBackend

        monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
        backend = open_backend(f"zookeeper://{zk_hosts}/veltrix-tests/{unique_name('conf')}")
        assert isinstance(backend, ZooKeeperBackend)
        yield backend
        backend.close()
