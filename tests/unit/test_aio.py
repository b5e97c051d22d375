"""The asyncio client: hits in the coroutine, misses on the pool, the loop never blocked."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from tests.unit.stores import ControlledStore
from veltrix import CachePolicy
from veltrix.aio import AsyncClient
from veltrix.backend import Absent
from veltrix.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    KeyNotFoundError,
    VersionConflictError,
)


def make(store: ControlledStore, **policy: object) -> AsyncClient:
    policy.setdefault("watch", False)
    policy.setdefault("retries", 0)
    return AsyncClient(store, cache=CachePolicy(**policy))  # type: ignore[arg-type]


def test_reads_writes_and_errors_match_the_sync_client(store: ControlledStore) -> None:
    class Cfg(BaseModel):
        a: int
        b: str

    async def scenario() -> None:
        async with make(store, ttl=60) as client:
            v1 = await client.put("cfg/a", 1)
            await client.put("cfg/b", "x")
            assert await client.get("cfg/a") == "1"
            assert await client.get("cfg/a", type=int) == 1
            assert (await client.get_model("cfg", Cfg)) == Cfg(a=1, b="x")
            with pytest.raises(VersionConflictError):
                await client.put("cfg/a", 2, if_version=Absent)
            await client.put("cfg/a", 2, if_version=v1)
            assert await client.get("cfg/a") == "2"
            assert [e.key for e in await client.list("cfg")] == ["cfg/a", "cfg/b"]
            assert await client.delete("cfg/a") is True
            assert await client.get("cfg/a", "gone") == "gone"
            with pytest.raises(KeyNotFoundError):
                await client.get("cfg/a")
            with pytest.raises(InvalidKeyError):
                await client.get("bad key")
            with pytest.raises(InvalidKeyError):
                await client.get(["unhashable"])  # type: ignore[arg-type]
            entry = await client.get_entry("cfg/b")
            assert entry is not None and entry.value == b"x"

    asyncio.run(scenario())
    with pytest.raises(ConfigurationError):
        AsyncClient("memory://", max_workers=0)


def test_a_hit_stays_in_the_coroutine(store: ControlledStore) -> None:
    store.put("k", b"v")

    async def scenario() -> None:
        async with make(store, ttl=60) as client:
            await client.get("k")
            assert client._pool.submitted == 1
            for _ in range(1000):
                assert await client.get("k") == "v"
                assert await client.get("k", type=bytes) == b"v"
            assert store.gets == 1
            assert client._pool.submitted == 2  # the first typed read only

    asyncio.run(scenario())


def test_concurrent_misses_share_one_store_call(store: ControlledStore) -> None:
    store.put("hot", b"v")
    store.delay = 0.05

    async def scenario() -> None:
        async with make(store, ttl=60) as client:
            results = await asyncio.gather(*(client.get("hot") for _ in range(200)))
            assert results == ["v"] * 200
            assert store.gets == 1

    asyncio.run(scenario())


def test_the_loop_never_blocks_on_a_slow_store(store: ControlledStore) -> None:
    """1,000 concurrent misses against a store taking 50 ms each: a 1 ms ticker on the
    same loop keeps ticking (launching 1,000 tasks at once costs the loop some ms by
    itself; benchmarks/aio.py compares the two on a quiet machine)."""
    for i in range(1000):
        store.put(f"k/{i}", b"v")
    store.delay = 0.05

    async def scenario() -> float:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(store, cache=policy, max_workers=32) as client:
            stall = 0.0
            done = asyncio.Event()

            async def ticker() -> None:
                nonlocal stall
                while not done.is_set():
                    started = time.perf_counter()
                    await asyncio.sleep(0.001)
                    stall = max(stall, time.perf_counter() - started - 0.001)

            tick = asyncio.create_task(ticker())
            results = await asyncio.gather(*(client.get(f"k/{i}") for i in range(1000)))
            done.set()
            await tick
            assert results == ["v"] * 1000
            return stall

    stall = asyncio.run(scenario())
    # A loop blocked by the misses would stall for the whole burst (1,000 x 50 ms over 32
    # threads: 1.6 s); GIL hand-offs with busy worker threads cost it some ms, more on a
    # loaded machine.
    assert stall < 0.8, f"the loop stalled for {stall * 1e3:.1f} ms"


def test_down_store_errors_and_stale_values_are_the_sync_clients(store: ControlledStore) -> None:
    store.put("k", b"old")

    async def scenario() -> None:
        async with make(store, ttl=0.05) as client:
            assert await client.get("k") == "old"
            store.go_down()
            await asyncio.sleep(0.08)
            assert await client.get("k") == "old"  # stale-if-error
            with pytest.raises(BackendUnavailableError):
                await client.get("never-held")
            assert client.health().state.value == "down"

    asyncio.run(scenario())


def test_changes_iterate_after_the_cache_is_updated(store: ControlledStore) -> None:
    async def scenario() -> None:
        async with AsyncClient(store, cache=CachePolicy(ttl=60)) as client:
            seen: list[tuple[str, str | None]] = []
            first = asyncio.Event()

            async def consume() -> None:
                async for change in client.changes("app"):
                    seen.append((change.key, await client.get(change.key, None)))
                    first.set()
                    if len(seen) == 2:
                        return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.1)  # the subscription is in place
            await client.put("app/x", "1")
            await asyncio.wait_for(first.wait(), 5)
            await client.delete("app/x")
            await asyncio.wait_for(task, 5)
            assert seen == [("app/x", "1"), ("app/x", None)]

    asyncio.run(scenario())


def test_a_change_stream_entered_is_subscribed_before_the_first_write(
    store: ControlledStore,
) -> None:
    """``async with client.changes(prefix)`` subscribes on entry: a write made right
    after it is delivered with no settling sleep; closing the client ends the stream."""

    async def scenario() -> None:
        client = AsyncClient(store, cache=CachePolicy(ttl=60))
        async with client.changes("app") as changes:
            await client.put("app/x", "1")
            first = await asyncio.wait_for(changes.__anext__(), 5)
            assert (first.key, first.entry and first.entry.value) == ("app/x", b"1")
            waiting = asyncio.create_task(changes.__anext__())
            await asyncio.sleep(0)
            await client.aclose()
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(waiting, 5)
        assert not client._streams

    asyncio.run(scenario())


def test_cancelling_the_reader_ends_its_change_stream(store: ControlledStore) -> None:
    async def scenario() -> None:
        async with AsyncClient(store, cache=CachePolicy(ttl=60)) as client:
            seen: list[str] = []

            async def consume() -> None:
                async for change in client.changes("app"):
                    seen.append(change.key)

            task = asyncio.create_task(consume())
            while not client._streams:  # subscribed
                await asyncio.sleep(0.01)
            (stream,) = client._streams
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not client._streams and stream._closed
            assert not client.client._subscribers  # the client's watch callback is gone
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()

    asyncio.run(scenario())


def test_the_blocking_facade_runs_the_async_client(store: ControlledStore) -> None:
    """The conformance suite's driver: blocking calls, a watch pumped on its own loop."""
    from veltrix.testing.blocking_aio import open_client
    from veltrix.testing.conformance import ChangeRecorder

    with open_client("async", store, cache=CachePolicy(ttl=60)) as client:
        assert isinstance(client.aclient, AsyncClient)
        recorder = ChangeRecorder()
        subscription = client.watch("app", recorder)
        client.put("app/x", 7)
        assert client.get("app/x", type=int) == 7
        assert recorder.wait_for(lambda ch: len(ch) == 1, 5)
        subscription.stop()
        client.put("app/x", 8)
        assert client.get("app/x") == "8"
        with pytest.raises(KeyNotFoundError):
            client.get("app/absent")
        assert client.get("app/absent", "d") == "d"
        assert [e.key for e in client.list("app")] == ["app/x"]
    assert recorder.states() == [("app/x", b"7")]
    assert client.aclient.client.closed
    with pytest.raises(ValueError, match="unknown client api"):
        open_client("threads", store)  # type: ignore[arg-type]


def test_worker_threads_start_as_misses_wait_and_retire_when_idle(
    store: ControlledStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One miss at a time keeps one thread; a burst of slow misses grows the pool up to
    ``max_workers`` (not beyond); threads idle for ``IDLE_SECONDS`` exit."""
    import veltrix.aio

    monkeypatch.setattr(veltrix.aio, "IDLE_SECONDS", 0.3)
    for i in range(40):
        store.put(f"k/{i}", b"v")

    async def scenario() -> None:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(store, cache=policy, max_workers=6) as client:
            for i in range(5):
                assert await client.get(f"k/{i}") == "v"
            assert client._pool.threads == 1
            store.delay = 0.05
            results = await asyncio.gather(*(client.get(f"k/{i}") for i in range(5, 35)))
            assert results == ["v"] * 30
            assert client._pool.threads == 6  # a thread starts only when none is idle
            await asyncio.sleep(1.0)
            assert client._pool.threads == 0, "idle threads did not retire"
            store.delay = 0
            assert await client.get("k/35") == "v"  # the pool starts again on demand
            assert client._pool.threads == 1

    asyncio.run(scenario())


def test_a_cancelled_waiter_leaves_the_shared_call_to_the_others(store: ControlledStore) -> None:
    store.put("hot", b"v")
    store.delay = 0.1

    async def scenario() -> None:
        async with make(store, ttl=60) as client:
            first = asyncio.create_task(client.get("hot"))
            others = [asyncio.create_task(client.get("hot")) for _ in range(3)]
            await asyncio.sleep(0.02)
            first.cancel()
            assert await asyncio.gather(*others) == ["v"] * 3
            assert first.cancelled()
            assert store.gets == 1
            assert not client._flights

    asyncio.run(scenario())


def test_one_client_serves_successive_event_loops(store: ControlledStore) -> None:
    """``asyncio.run`` twice with one client (a loop per test, a CLI command...): each
    loop gets its answers, and errors come back typed."""
    store.put("k", b"v")
    client = make(store, ttl=0)

    async def read(key: str) -> object:
        return await client.get(key, "absent")

    assert asyncio.run(read("k")) == "v"
    assert asyncio.run(read("k")) == "v"
    assert asyncio.run(read("nope")) == "absent"

    async def bad() -> None:
        with pytest.raises(InvalidKeyError):  # validated on the worker, raised in the task
            await client.get("bad key")

    asyncio.run(bad())
    asyncio.run(client.aclose())
