"""A dead or slow store never reaches the read path (in-process stores that fail or stall).

The same promises are checked against real servers killed with SIGKILL in
``tests/integration/test_outage.py``; these tests pin the policy itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.stores import ControlledStore, wait_until
from veltrix import CachePolicy, Client
from veltrix.backend import Change
from veltrix.errors import BackendUnavailableError
from veltrix.health import HealthState
from veltrix.testing.conformance import ChangeRecorder


def make(store: Any, **policy: Any) -> Client:
    policy.setdefault("watch", False)
    policy.setdefault("retries", 0)
    return Client(store, cache=CachePolicy(**policy))


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def test_down_store_serves_stale_at_once_and_probes_once_per_backoff(
    store: ControlledStore,
) -> None:
    for i in range(20):
        store.put(f"k/{i}", f"v{i}".encode())
    with make(store, ttl=0.05, error_backoff=0.5) as client:
        for i in range(20):
            client.get(f"k/{i}")
        store.go_down()
        time.sleep(0.1)  # every key expired
        assert client.get("k/0") == "v0"  # the read that finds the store down
        assert client.health().state is HealthState.DOWN
        calls = store.gets
        worst = 0.0
        ends = time.monotonic() + 0.3
        while time.monotonic() < ends:
            for i in range(20):
                value, took = timed(lambda i=i: client.get(f"k/{i}"))
                assert value == f"v{i}"
                worst = max(worst, took)
        assert worst < 0.05, f"a read waited {worst * 1000:.1f} ms on a down store"
        assert store.gets == calls, "the store was asked again inside error_backoff"
        time.sleep(0.5)
        client.get("k/3")  # the probe is due: one background call
        assert wait_until(lambda: store.gets == calls + 1, timeout=2)
        time.sleep(0.05)
        assert store.gets == calls + 1, "more than one probe"
        stats = client.stats()
        assert stats["store_up"] == 0 and stats["health_transitions"] == 1
        assert stats["stale_served"] > 1000


def test_probe_brings_the_store_back(store: ControlledStore) -> None:
    store.put("k", b"old")
    with make(store, ttl=0.05, error_backoff=0.2) as client:
        assert client.get("k") == "old"
        store.go_down()
        time.sleep(0.08)
        assert client.get("k") == "old"
        store.come_back()
        store.put("k", b"new")
        started = time.monotonic()
        assert wait_until(lambda: client.get("k") == "new", timeout=2)
        assert time.monotonic() - started < 1.0
        health = client.health()
        assert health.up and health.transitions == 2


def test_never_held_key_fails_fast_while_down(store: ControlledStore) -> None:
    store.put("held", b"v")
    with make(store, ttl=0.05, error_backoff=5) as client:
        client.get("held")
        store.go_down()
        time.sleep(0.08)
        client.get("held")  # marks the store down
        started = time.perf_counter()
        with pytest.raises(BackendUnavailableError, match="not cached"):
            client.get("other")
        assert time.perf_counter() - started < 0.05
        with pytest.raises(BackendUnavailableError):  # a default is for absence, not failure
            client.get("other", default="d")


def test_slow_store_costs_one_deadline_then_serves_stale(store: ControlledStore) -> None:
    for i in range(50):
        store.put(f"k/{i}", b"old")
    with make(store, ttl=0.05, refresh_deadline=0.03) as client:
        for i in range(50):
            client.get(f"k/{i}")
        for i in range(50):
            store.put(f"k/{i}", b"new")
        store.delay = 0.5
        time.sleep(0.08)
        value, first = timed(lambda: client.get("k/0"))
        assert value == "old" and 0.025 < first < 0.2
        assert client.health().state is HealthState.SLOW
        _, rest = timed(lambda: [client.get(f"k/{i}") for i in range(1, 50)])
        assert rest < 0.1, f"49 reads of a slow store took {rest * 1000:.1f} ms"
        store.delay = 0
        assert wait_until(lambda: client.health().up, timeout=2)  # the slow call completed
        assert wait_until(lambda: all(client.get(f"k/{i}") == "new" for i in range(50)))


def test_slow_refresh_completes_in_the_background(store: ControlledStore) -> None:
    store.put("k", b"old")
    with make(store, ttl=0.05, refresh_deadline=0.02) as client:
        client.get("k")
        store.put("k", b"new")
        store.delay = 0.2
        time.sleep(0.08)
        assert client.get("k") == "old"
        assert wait_until(lambda: client.get("k") == "new", timeout=2)
        assert store.gets == 2


def test_ttl_zero_waits_for_a_healthy_store(store: ControlledStore) -> None:
    store.put("k", b"1")
    with make(store, ttl=0, refresh_deadline=0.01) as client:
        client.get("k")
        store.put("k", b"2")
        store.delay = 0.05
        assert client.get("k") == "2"  # no caching: never served stale while the store answers


def test_snapshot_cold_start_with_a_hanging_store(tmp_path: Path) -> None:
    path = tmp_path / "lkg.json"
    store = ControlledStore()
    with Client(store, cache=CachePolicy(ttl=60, watch=False), last_known_good_path=path) as client:
        for i in range(1000):
            client.put(f"cfg/{i}", f"value-{i}")
    store.delay = 1.0  # connecting to a dead host: every call hangs, then fails
    store.go_down()
    policy = CachePolicy(ttl=60, watch=False, retries=2)
    started = time.perf_counter()
    with Client(store, cache=policy, last_known_good_path=path) as client:
        for i in range(1000):
            assert client.get(f"cfg/{i}") == f"value-{i}"
        took = time.perf_counter() - started
        assert took < 1.0, f"1000 snapshot keys took {took:.2f} s"
        assert client.stats()["last_known_good_served"] == 1000
        assert store.gets == 1, "one connect attempt in total, not one per key"
        assert wait_until(lambda: client.health().state is HealthState.DOWN, timeout=5)
        started = time.perf_counter()
        with pytest.raises(BackendUnavailableError):
            client.get("cfg/never-written")
        assert time.perf_counter() - started < 0.05
    store.close()


def test_model_served_stale_at_once_while_down(store: ControlledStore) -> None:
    from pydantic import BaseModel

    class Cfg(BaseModel):
        a: int

    store.put("m/a", b"1")
    with make(store, ttl=0.05) as client:
        assert client.get_model("m", Cfg).a == 1
        store.go_down()
        time.sleep(0.08)
        assert client.get_model("m", Cfg).a == 1
        lists = store.lists
        value, took = timed(lambda: client.get_model("m", Cfg))
        assert value.a == 1 and took < 0.05 and store.lists == lists


class SlowWatchStore(ControlledStore):
    """A memory store whose watch delivers each change late (in order): the window in
    which a late event could resurrect a value the client has just deleted."""

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> Any:
        def late(change: Change) -> None:
            time.sleep(0.002)
            on_change(change)

        return super().watch(prefix, late)


def test_late_watch_events_never_resurrect_own_deletes_or_overwrites() -> None:
    store = SlowWatchStore()
    recorder = ChangeRecorder()
    with Client(store, cache=CachePolicy(ttl=60)) as client:
        client.watch("", recorder)
        for i in range(100):
            key = f"ryow/{i % 5}"
            client.put(key, f"v{i}")
            client.put(key, f"w{i}")
            assert client.get(key) == f"w{i}"
            client.delete(key)
            assert client.get(key, default=None) is None, f"resurrected after {i}"
        client.put("end", "marker")  # delivered last: every late change has arrived then
        assert recorder.wait_for(lambda ch: any(c.key == "end" for c in ch), timeout=10)
        for i in range(5):
            assert client.get(f"ryow/{i}", default=None) is None
    store.close()


def test_another_clients_write_after_ours_still_arrives() -> None:
    store = SlowWatchStore()
    with Client(store, cache=CachePolicy(ttl=60)) as mine:
        mine.watch("", lambda change: None)
        mine.put("k", "mine")
        store.put("k", b"theirs")  # straight after ours, before our echo arrives
        assert wait_until(lambda: mine.get("k") == "theirs", timeout=4)
    store.close()


def test_concurrent_readers_keep_flowing_while_down(store: ControlledStore) -> None:
    for i in range(100):
        store.put(f"k/{i}", b"v")
    with make(store, ttl=0.05) as client:
        for i in range(100):
            client.get(f"k/{i}")
        store.delay = 1.0
        store.go_down()
        stop = threading.Event()
        counts: list[int] = []
        failures: list[BaseException] = []
        worst: list[float] = []

        def read() -> None:
            n, slowest = 0, 0.0
            while not stop.is_set():
                for i in range(100):
                    started = time.perf_counter()
                    try:
                        client.get(f"k/{i}")
                    except BaseException as exc:
                        failures.append(exc)
                    slowest = max(slowest, time.perf_counter() - started)
                    n += 1
            counts.append(n)
            worst.append(slowest)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join()
        assert not failures
        assert sum(counts) > 10_000
        # A read that waited on the store would take its full second; one may wait out
        # the deadline, and busy threads lose the GIL for a while.
        assert max(worst) < 0.9, f"a read waited {max(worst) * 1000:.0f} ms"
