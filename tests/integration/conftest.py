"""Server fixtures shared by several integration test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from tests.support import server_env


@pytest.fixture(scope="module")
def zk_hosts() -> str:
    return server_env("VELTRIX_TEST_ZOOKEEPER", "ZooKeeper server")


@pytest.fixture
def kazoo(zk_hosts: str) -> Iterator[KazooClient]:
    """A plain kazoo client, to look at znodes the way other ZooKeeper tools do."""
    client = KazooClient(hosts=zk_hosts)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()
