"""Refresh-ahead: a value read in the last stretch of its TTL is refreshed before the
TTL runs out, so busy readers meet the new value without waiting for a thread hop
after the deadline; a value nobody reads in that stretch costs the store nothing."""

from __future__ import annotations

import threading
import time

from tests.unit.stores import ControlledStore, wait_until
from veltrix import CachePolicy, Client
from veltrix.cache import EXPIRES_AT
from veltrix.client import REFRESH_AHEAD_FRACTION

TTL = 0.5
AHEAD = REFRESH_AHEAD_FRACTION * TTL


def _client(store: ControlledStore) -> Client:
    return Client(store, cache=CachePolicy(ttl=TTL, watch=False, retries=0))


def test_a_value_read_near_its_ttl_is_refreshed_before_the_ttl_runs_out() -> None:
    store = ControlledStore()
    store.put("k", b"old")
    with _client(store) as client:
        assert client.get("k") == "old"
        deadline = client._records["k"][EXPIRES_AT]
        store.put("k", b"new")  # behind the client's back: only the TTL brings it
        seen_new_at = None
        while time.monotonic() < deadline + 1:
            if client.get("k") == "new":
                seen_new_at = time.monotonic()
                break
            time.sleep(0.002)
        assert seen_new_at is not None
        assert seen_new_at < deadline  # refreshed ahead, not after the TTL
        assert seen_new_at >= deadline - AHEAD - 0.1  # and not much earlier than asked
        assert client.stats()["refreshed_ahead"] == 1


def test_a_value_nobody_reads_is_not_refreshed() -> None:
    store = ControlledStore()
    store.put("k", b"v")
    with _client(store) as client:
        client.get("k")
        calls = store.gets
        time.sleep(TTL * 2.5)
        assert store.gets == calls
        assert client.stats()["refreshed_ahead"] == 0
        assert client.get("k") == "v"  # expired: an ordinary refresh
        assert store.gets == calls + 1


def test_busy_readers_start_one_refresh_and_never_wait_for_it() -> None:
    store = ControlledStore()
    store.put("k", b"old")
    # The last tenth of a 2 s TTL (200 ms) leaves the refresh room to win the GIL back
    # from four spinning readers on a loaded machine.
    with Client(store, cache=CachePolicy(ttl=2.0, watch=False, retries=0)) as client:
        client.get("k")
        deadline = client._records["k"][EXPIRES_AT]
        store.delay = 0.01
        store.put("k", b"new")
        calls = store.gets
        stop = threading.Event()
        first_new: list[float] = []

        def read() -> None:
            while not stop.is_set():
                if client.get("k") == "new" and not first_new:
                    first_new.append(time.monotonic())

        readers = [threading.Thread(target=read) for _ in range(4)]
        for thread in readers:
            thread.start()
        try:
            assert wait_until(lambda: bool(first_new), timeout=deadline - time.monotonic() + 2)
        finally:
            stop.set()
            for thread in readers:
                thread.join()
        stats = client.stats()
        assert store.gets - calls == 1  # one refresh for all readers
        assert stats["refreshed_ahead"] == 1
        # Nobody met an expired value: no read waited for a refresh or was served stale.
        assert stats["misses"] == 1 and stats["stale_served"] == 0
        assert first_new[0] < deadline


def test_while_the_store_is_down_the_ttl_still_holds() -> None:
    """No refresh is started against a store known to be down, and a value in its last
    stretch never returns to the fresh dicts: past the TTL it is served stale, counted
    as such, while probes look for the store."""
    store = ControlledStore()
    store.put("k", b"v")
    with _client(store) as client:
        client.get("k")
        deadline = client._records["k"][EXPIRES_AT]
        store.go_down()
        while time.monotonic() < deadline + 0.2:
            assert client.get("k") == "v"
            time.sleep(0.005)
        assert "k" not in client._fresh
        assert client.stats()["stale_served"] > 0
        assert not client.health().up
        store.come_back()
        assert wait_until(lambda: client.get("k") == "v" and client.health().up, timeout=5)


def test_a_key_invalidated_in_its_last_stretch_starts_afresh() -> None:
    """invalidate() forgets the key's refresh-ahead mark with its record: the next read
    is a plain miss whose value goes back into the fresh dict, with no refresh begun."""
    store = ControlledStore()
    store.put("k", b"v")
    with _client(store) as client:
        client.get("k")
        assert wait_until(lambda: "k" in client._ahead_due, timeout=TTL * 2)
        client.invalidate("k")
        assert "k" not in client._ahead_due and "k" not in client._stale_keys
        calls = store.gets
        assert client.get("k") == "v"  # the miss path, which does not look at the marks
        assert client._fresh.get("k") == "v"
        time.sleep(0.05)
        assert store.gets == calls + 1  # one read: no refresh-ahead of the new record
        assert client.stats()["refreshed_ahead"] == 0
