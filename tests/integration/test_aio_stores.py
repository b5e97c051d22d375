"""The asyncio client over real stores: the sync client's scenarios, awaited.

Each store is a fresh namespace on the local servers (the benchmarks' store URLs);
the scenario is the one every user of ``AsyncClient`` runs: writes, reads, a model,
changes from the store's watch, and reading one's own deletes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from benchmarks._stores import store_url
from tests.support import server_env
from veltrix import CachePolicy
from veltrix.aio import AsyncClient

SERVERS = {
    "zookeeper": ("VELTRIX_TEST_ZOOKEEPER", "ZooKeeper server"),
    "redis": ("VELTRIX_TEST_REDIS_URL", "Redis server"),
    "consul": ("VELTRIX_TEST_CONSUL_ADDR", "Consul test server"),
}


class Payments(BaseModel):
    timeout_ms: int
    retries: int


@pytest.fixture(params=["sqlite", "zookeeper", "redis", "consul"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param in SERVERS:
        server_env(*SERVERS[request.param])
    os.environ.pop("VELTRIX_ZK_AUTH", None)
    os.environ.pop("CONSUL_HTTP_TOKEN", None)
    cleanups: list[object] = []
    found = store_url(request.param, tmp_path, cleanups)  # type: ignore[arg-type]
    assert found is not None
    yield found


def test_async_client_scenario(url: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(url, cache=CachePolicy(ttl=60)) as client:
            changes: list[str] = []
            seen = asyncio.Event()

            async def consume() -> None:
                async for change in client.changes("payments"):
                    changes.append(change.key)
                    if change.key == "payments/marker":
                        seen.set()

            consumer = asyncio.create_task(consume())
            await asyncio.sleep(0.3)  # the watch is in place
            await client.put("payments/timeout_ms", 250)
            await client.put("payments/retries", 3)
            assert await client.get("payments/timeout_ms", type=int) == 250
            assert await client.get_model("payments", Payments) == Payments(
                timeout_ms=250, retries=3
            )
            for round_ in range(5):
                await client.put("payments/flag", f"v{round_}")
                assert await client.delete("payments/flag") is True
                assert await client.get("payments/flag", None) is None
            await client.put("payments/marker", "end")
            await asyncio.wait_for(seen.wait(), 15)
            assert await client.get("payments/flag", None) is None  # no late resurrection
            assert {"payments/timeout_ms", "payments/retries"} <= set(changes)
            consumer.cancel()

    asyncio.run(scenario())
