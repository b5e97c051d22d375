"""The client's miss path (Client._get_slow written out, issue #23): what it must keep."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import pytest

from tests.unit.stores import ControlledStore
from veltrix import CachePolicy, Client
from veltrix.backend import Entry
from veltrix.errors import (
    BackendError,
    BackendUnavailableError,
    InvalidKeyError,
    KeyNotFoundError,
)
from veltrix.health import HealthState
from veltrix.instruments import DURATION_BUCKETS


def make(store: ControlledStore, **policy: object) -> Client:
    policy.setdefault("watch", False)
    policy.setdefault("retries", 0)
    return Client(store, cache=CachePolicy(**policy))  # type: ignore[arg-type]


def test_concurrent_misses_of_different_keys_each_get_their_own_value(
    store: ControlledStore,
) -> None:
    keys = [f"app/k{i}" for i in range(400)]
    for key in keys:
        store.put(key, key.encode())
    with make(store, ttl=60) as client:
        wrong: list[tuple[str, str]] = []
        barrier = threading.Barrier(4)

        def reader(part: list[str]) -> None:
            barrier.wait()
            for key in part:
                value = client.get(key)
                if value != key:
                    wrong.append((key, value))

        threads = [threading.Thread(target=reader, args=(keys[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert wrong == []
        stats = client.stats()
        assert stats["misses"] == stats["store_calls"] == store.gets == len(keys)
        assert stats["cached_keys"] == len(keys)
        assert not client._inflight  # every flight landed
        assert all(client.get(key) == key for key in keys)  # now hits
        assert store.gets == len(keys)


def test_misses_feed_the_metrics(store: ControlledStore) -> None:
    for i in range(5):
        store.put(f"k{i}", b"v")
    with make(store, ttl=60) as client:
        for i in range(5):
            client.get(f"k{i}")
        assert client.get("absent", None) is None
        reading = client._reading()
        assert reading.cache["miss"] == 6
        assert reading.store_requests == {("get", "ok"): 6}
        assert reading.durations["get"].count == 6
        assert reading.durations["get"].sum > 0
        assert reading.last_refresh > 0
        assert reading.store_up


def test_a_failed_miss_counts_its_attempts_and_marks_the_store_down(
    store: ControlledStore,
) -> None:
    store.put("k", b"v")
    store.fail_with(ConnectionError("refused"))  # transient for this store
    with make(store, ttl=60, retries=1) as client:
        try:
            client.get("k")
        except BackendUnavailableError:
            pass
        else:  # pragma: no cover - the test's point
            raise AssertionError("a failing store must raise")
        reading = client._reading()
        assert reading.store_requests == {("get", "unavailable"): 2}
        assert reading.durations["get"].count == 2
        assert client.stats()["errors"] == 2
        assert client.health().state is HealthState.DOWN
        assert not client._inflight
        store.come_back()
        client._health.connection(True, "back")  # as an adapter's reconnect would
        assert client.get("k") == "v"
        reading = client._reading()
        assert reading.store_requests == {("get", "unavailable"): 2, ("get", "ok"): 1}
        assert client.health().state is HealthState.UP


def test_a_retry_that_succeeds_serves_the_value() -> None:
    class FailsOnce(ControlledStore):
        def get(self, key: str) -> Entry | None:
            if self.gets == 0:
                self.gets += 1
                raise ConnectionError("blip")
            return super().get(key)

    flaky = FailsOnce()
    flaky.put("k", b"v")
    with make(flaky, ttl=60, retries=2) as client:
        assert client.get("k") == "v"
        assert client._reading().store_requests == {
            ("get", "unavailable"): 1,
            ("get", "ok"): 1,
        }
        assert client.get("k") == "v"  # cached
        assert flaky.gets == 2


def test_an_unexpected_store_error_is_typed_and_frees_the_key(store: ControlledStore) -> None:
    store.put("k", b"v")
    store.fail_with(RuntimeError("bug in the client library"))
    with make(store, ttl=60) as client:
        try:
            client.get("k")
        except BackendError as exc:
            assert "RuntimeError" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("must raise")
        assert client._reading().store_requests == {("get", "error"): 1}
        store.come_back()
        assert client.get("k") == "v"  # the failed flight did not stay registered


class WritesDuringGet(ControlledStore):
    """A store whose next read runs ``during`` first, as a concurrent change would."""

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    during: list[object] = []

    def get(self, key: str) -> Entry | None:
        entry = super().get(key)
        while self.during:
            action = self.during.pop()
            assert callable(action)
            action()
        return entry


def test_a_write_during_the_miss_wins_over_the_older_read() -> None:
    store = WritesDuringGet()
    store.during = []
    store.put("k", b"old")
    with make(store, ttl=60) as client:
        store.during.append(lambda: client.put("k", "new"))
        assert client.get("k") == "new"
        assert client.get("k") == "new"
        assert client.get_entry("k") is not None


def test_an_invalidation_during_the_miss_still_caches_the_read() -> None:
    store = WritesDuringGet()
    store.during = []
    store.put("k", b"v")
    with make(store, ttl=60) as client:
        store.during.append(lambda: client.invalidate("k"))
        assert client.get("k") == "v"
        assert client.get("k") == "v"
        assert store.gets == 1


def test_absences_binary_values_and_types_on_the_miss_path(store: ControlledStore) -> None:
    store.put("bin", b"\xff\x00")
    store.put("n", b"42")
    with make(store, ttl=60, negative_ttl=60) as client:
        try:
            client.get("absent")
        except KeyNotFoundError:
            pass
        else:  # pragma: no cover
            raise AssertionError("must raise")
        assert client.get("absent", "d") == "d"  # remembered: no second store call
        assert client.get("n", type=int) == 42
        assert client.get_bytes("bin") == b"\xff\x00"
        entry = client.get_entry("n")
        assert entry is not None and entry.value == b"42" and entry.source.endswith("/n")
        assert client.stats()["negative_hits"] == 1
        assert store.gets == 3


@pytest.mark.parametrize("key", ["", "a//b", "../x", "a/./b", "x" * 256, "white space"])
def test_an_invalid_key_is_refused_uncounted_when_the_store_checks_it(key: str) -> None:
    # memory:// is one of veltrix's own stores: the miss leaves the key's check to it.
    with Client("memory://", cache=CachePolicy(ttl=60, watch=False)) as client:
        assert client._store_checks_keys
        with pytest.raises(InvalidKeyError):
            client.get(key)
        with pytest.raises(InvalidKeyError):
            client.get(key, "default")
        stats = client.stats()
        assert stats["misses"] == stats["store_calls"] == stats["errors"] == 0
        reading = client._reading()
        assert reading.store_requests == {} and "get" not in reading.durations
        assert not client._inflight and client._health.state is HealthState.UP


def test_a_store_that_may_not_check_keys_is_never_called_with_an_invalid_one() -> None:
    class Trusting:  # checks nothing: the client must
        schemes: ClassVar[tuple[str, ...]] = ("trusting",)
        transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
        asked: ClassVar[list[str]] = []

        def get(self, key: str) -> Entry | None:
            self.asked.append(key)
            return Entry(key, b"v", "1", source=f"trusting://{key}")

        def close(self) -> None:
            pass

    with Client(Trusting(), cache=CachePolicy(ttl=60, watch=False)) as client:  # type: ignore[arg-type]
        assert not client._store_checks_keys
        for key in ["", "a//b", "..", 5]:
            with pytest.raises(InvalidKeyError):
                client.get(key)  # type: ignore[arg-type]
        assert Trusting.asked == []
        assert client.get("fine") == "v" and Trusting.asked == ["fine"]


def test_miss_durations_land_in_their_buckets(store: ControlledStore) -> None:
    store.put("fast", b"v")
    store.put("slow", b"v")
    with make(store, ttl=60) as client:
        client.get("fast")
        store.delay = 0.003  # past the 2.5 ms bucket: counted in the 5 ms one
        client.get("slow")
        got = client._reading().durations["get"]
        assert got.count == 2 and got.sum >= 0.003
        assert got.counts[0] == 1
        assert got.counts[DURATION_BUCKETS.index(0.005)] == 1
        assert client.stats()["misses"] == client.stats()["store_calls"] == 2


def test_the_refresh_time_reads_the_same_until_the_next_refresh() -> None:
    with Client("memory://", cache=CachePolicy(ttl=60, watch=False)) as client:
        client.backend.put("k", b"v")  # type: ignore[attr-defined]
        before = time.time()
        client.get("k")
        first = client._reading().last_refresh
        assert before <= first <= time.time()
        assert client._reading().last_refresh == first
        time.sleep(0.002)
        client.get("k2", None)
        assert client._reading().last_refresh > first
