"""``AsyncClient`` over ``redis://``: misses read through ``redis.asyncio`` on the loop.

Against the local Redis (one node; Sentinel's URL for the fallback). Failures are
made without touching the shared server: a closed port, and a password this
password-less server refuses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration import redis_targets
from tests.integration.redis_targets import with_path
from tests.support import unique_name, unused_port
from veltrix import CachePolicy, Client
from veltrix.adapters.redis import RedisBackend
from veltrix.aio import AsyncClient
from veltrix.backend import Entry
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    DecodeError,
    InvalidKeyError,
)
from veltrix.health import HealthState
from veltrix.registry import open_backend

SECRET = "hunter2-not-the-password"


@pytest.fixture
def url() -> str:
    return with_path(redis_targets.redis_url("single"), unique_name("aio"), timeout=5)


def test_misses_are_read_on_the_loop(url: str) -> None:
    store = open_backend(url)
    store.put("app/text", b"hello")
    store.put("app/binary", b"\xff\x00")
    store.put("app/number", b"42")

    async def scenario() -> None:
        async with AsyncClient(
            url, cache=CachePolicy(ttl=60, watch=False), native_reads=True
        ) as client:
            assert await client.get("app/text") == "hello"
            assert await client.get("app/absent", "fallback") == "fallback"
            with pytest.raises(DecodeError):
                await client.get("app/binary")
            with pytest.raises(InvalidKeyError):
                await client.get("app//bad")
            assert client._pool.submitted == 0 and client.native_misses == 3
            # A typed read, and a read of a key the client holds a record for, go to
            # the threads (the client's policy decides them there).
            assert await client.get("app/number", type=int) == 42
            assert await client.get("app/absent", None) is None  # a remembered absence
            assert client._pool.submitted == 2
            stats = client.stats()
            assert stats["misses"] == 4 and stats["store_calls"] == 4

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_concurrent_tasks_share_one_store_call(url: str) -> None:
    store = open_backend(url)
    store.put("shared/key", b"one")

    async def scenario() -> None:
        async with AsyncClient(
            url, cache=CachePolicy(ttl=60, watch=False), native_reads=True
        ) as client:
            values = await asyncio.gather(*(client.get("shared/key") for _ in range(200)))
            assert set(values) == {"one"}
            assert client.stats()["store_calls"] == 1 and client.native_misses == 1
            # 300 different keys at once: one store call each, none on a thread.
            keys = [f"many/{i}" for i in range(300)]
            assert await asyncio.gather(*(client.get(k, None) for k in keys)) == [None] * 300
            assert client.stats()["store_calls"] == 301 and client._pool.submitted == 0

    try:
        asyncio.run(scenario())
    finally:
        store.close()


def test_a_write_during_the_read_wins(url: str) -> None:
    """The generation rule: a value read before a write of the same key (here by
    the sync client underneath, from another thread) is not installed over it."""
    store = open_backend(url)
    store.put("gen/key", b"old")
    gated = _GatedRedis.from_url(url)

    async def scenario() -> None:
        gated.read, gated.release = asyncio.Event(), asyncio.Event()
        client = AsyncClient(gated, cache=CachePolicy(ttl=60, watch=False), native_reads=True)
        try:
            reading = asyncio.create_task(client.get("gen/key"))
            await asyncio.wait_for(gated.read.wait(), 5)  # "old" is read, not installed
            await asyncio.to_thread(client.client.put, "gen/key", "new")
            gated.release.set()
            assert await reading == "new"
            assert await client.get("gen/key") == "new"  # the hit, too
            assert client.native_misses == 1
        finally:
            await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        gated.close()
        store.close()


class _GatedRedis(RedisBackend):
    """Redis whose ``aget`` holds its answer until the test releases it."""

    read: asyncio.Event
    release: asyncio.Event

    async def aget(self, key: str) -> Entry | None:
        entry = await super().aget(key)
        self.read.set()
        await self.release.wait()
        return entry


def test_connection_refused_marks_the_store_down() -> None:
    url = f"redis://127.0.0.1:{unused_port()}/0/x?timeout=1&connect_timeout=1"

    async def scenario() -> None:
        policy = CachePolicy(ttl=60, watch=False, retries=2)
        async with AsyncClient(url, cache=policy, native_reads=True) as client:
            with pytest.raises(BackendUnavailableError) as caught:
                await client.get("some/key")
            assert "unreachable" in str(caught.value)
            assert client.native_misses == 0 and client._pool.submitted == 0
            stats = client.stats()
            assert stats["store_calls"] == 3 and stats["errors"] == 3  # two retries
            assert client.health().state is HealthState.DOWN
            # Down: the next miss takes the client's own path (fail fast, probe).
            with pytest.raises(BackendUnavailableError, match="is down"):
                await client.get("other/key")
            assert client._pool.submitted == 1

    asyncio.run(scenario())


def test_a_refused_password_is_access_denied(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", SECRET)

    async def scenario() -> None:
        async with AsyncClient(
            url, cache=CachePolicy(ttl=60, watch=False), native_reads=True
        ) as client:
            with pytest.raises(AccessDeniedError) as caught:
                await client.get("some/key")
            assert client.native_misses == 0 and client._pool.submitted == 0
            assert client.health().state is HealthState.UP  # the store answered
            assert client.stats()["store_calls"] == 1  # never retried
            for error in _chain(caught.value):
                assert SECRET not in str(error) and SECRET not in repr(error)

    asyncio.run(scenario())


def _chain(error: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def test_sentinel_and_cluster_read_on_threads() -> None:
    for kind in ("sentinel", "cluster"):
        backend = open_backend(with_path(redis_targets.redis_url(kind), unique_name("aio")))
        try:
            assert isinstance(backend, RedisBackend) and backend.native_async is False
            client = AsyncClient(backend, cache=CachePolicy(ttl=60, watch=False), native_reads=True)
            assert client._native is None
        finally:
            backend.close()


def test_native_reads_are_off_by_default(url: str) -> None:
    async def scenario() -> None:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(url, cache=policy) as client:
            assert await client.get("off/key", None) is None
            assert client.native_misses == 0 and client._pool.submitted == 1

    asyncio.run(scenario())


def test_shared_cache_and_last_known_good_keep_the_threaded_path(url: str, tmp_path: Path) -> None:
    """With an L2 cache, or a last-known-good entry for the key, a miss is the
    client's own (on a thread): those policies are not forked into the native path."""
    lkg = tmp_path / "lkg.json"
    policy = CachePolicy(ttl=60, watch=False)
    with Client(url, cache=policy, last_known_good_path=lkg) as seed:
        seed.put("lkg/key", "saved")
    cache_url = f"{redis_targets.redis_url('single')}?namespace={unique_name('l2')}&timeout=1"

    async def scenario() -> None:
        async with AsyncClient(
            url, cache=policy, last_known_good_path=lkg, native_reads=True
        ) as client:
            assert await client.get("lkg/key") == "saved"
            assert await client.get("lkg/other", None) is None  # no entry: native
            assert (client._pool.submitted, client.native_misses) == (1, 1)
        async with AsyncClient(url, cache=policy, cache_url=cache_url, native_reads=True) as client:
            assert await client.get("lkg/key") == "saved"
            assert (client._pool.submitted, client.native_misses) == (1, 0)

    asyncio.run(scenario())
