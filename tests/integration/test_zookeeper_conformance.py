"""The ZooKeeper adapter against a real ZooKeeper 3.8 server (scripts/services up zookeeper)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import server_env, unique_name
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance


class TestZooKeeperConformance(BackendConformance):
    """The default ``watch_mode=auto``: persistent recursive watches on this server."""

    # Either kind of watch re-reads the znode an event names, so two quick writes to
    # one key may be seen as one (the last). Nothing else is lost.
    watch_may_coalesce = True
    watch_timeout = 15.0
    query = ""

    @pytest.fixture
    def backend(self, zk_hosts: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
        from veltrix.adapters.zookeeper import ZooKeeperBackend

        monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
        chroot = f"/veltrix-tests/{unique_name('conf')}"
        backend = open_backend(f"zookeeper://{zk_hosts}{chroot}{self.query}")
        assert isinstance(backend, ZooKeeperBackend)
        yield backend
        backend.close()


class TestZooKeeperTLSConformance(TestZooKeeperConformance):
    """Over the server's TLS port, verifying its certificate against the test CA."""

    @pytest.fixture
    def backend(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
        from veltrix.adapters.zookeeper import ZooKeeperBackend

        hosts = server_env("VELTRIX_TEST_ZOOKEEPER_TLS", "ZooKeeper TLS port")
        ca = server_env("VELTRIX_TEST_ZOOKEEPER_TLS_CA", "ZooKeeper test CA")
        monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
        chroot = f"/veltrix-tests/{unique_name('tls')}"
        backend = open_backend(
            f"zookeeper://{hosts}{chroot}?tls=true&tls_ca={ca}&tls_check_hostname=true"
        )
        assert isinstance(backend, ZooKeeperBackend)
        yield backend
        backend.close()


class TestZooKeeperOneShotConformance(TestZooKeeperConformance):
    """One-shot data and child watches, what servers older than 3.6 get."""

    query = "?watch_mode=oneshot"
