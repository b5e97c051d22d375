"""The L2's own cost against a real Redis: requests per key per TTL, bus-woken waiters,
payloads pushed over the bus (sealed secrets stay sealed), and the fallbacks.

Counts are the clients' own (``SharedCache.counters["l2_requests"]``: one per command
sent, a script call is one). Nothing here stops a server.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.redis_fleet import CountingBackend, run_fleet
from tests.integration.redis_targets import raw_client
from tests.support import server_env, unique_name
from veltrix import CachePolicy, Client
from veltrix.adapters.sqlite import SQLiteBackend
from veltrix.backend import Entry
from veltrix.cache import record_raw
from veltrix.shared_cache import SharedCache

KEYS = [f"cost/key{i}" for i in range(20)]


@pytest.fixture(scope="module")
def redis_url() -> str:
    return server_env("VELTRIX_TEST_REDIS_URL", "Redis")


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "config.db")
    backend = SQLiteBackend(path)
    for key in KEYS:
        backend.put(key, f"value of {key}".encode())
    backend.close()
    return path


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    client = raw_client(redis_url)
    yield client
    client.close()


def _cache_url(redis_url: str, stem: str) -> str:
    return f"{redis_url}?namespace={unique_name(stem)}&timeout=0.5"


def test_fleet_sends_at_most_3_requests_per_key_per_ttl(redis_url: str, store: str) -> None:
    """3 processes x 2 threads read 20 keys for 3 s with TTL 0.5 s: the fleet's Redis
    requests (counted by the clients) stay <= 3 per key per TTL, store reads ~1.

    Polling waiters sent ~25 per key per TTL here (every process's L1 copy expired with
    the L2 entry and 2 of 3 processes polled the lock every 5 ms)."""
    ttl, duration = 0.5, 3.0
    config = {
        "store": store,
        "cache_url": _cache_url(redis_url, "cost"),
        "ttl": ttl,
        "keys": KEYS,
        "threads": 2,
        "duration": duration,
        "delay": 0.001,
    }
    results = run_fleet(config, 3, timeout=60)
    assert sum(r["failed"] for r in results) == 0, [r["failures"] for r in results]
    windows = len(KEYS) * duration / ttl
    requests = sum(r["stats"]["l2_requests"] for r in results)
    store_reads = sum(sum(r["store_gets"].values()) for r in results)
    pushed = sum(r["stats"]["bus_updates"] + r["stats"]["bus_fills"] for r in results)
    print(
        f"\nper key per TTL: {requests / windows:.2f} requests, {store_reads / windows:.2f} reads"
    )
    assert requests / windows <= 3.0, [r["stats"] for r in results]
    assert store_reads / windows <= 1.5
    assert pushed > 0  # values did travel over the bus
    assert sum(r["stats"]["l2_errors"] for r in results) == 0


def test_a_waiter_is_woken_by_the_bus_without_polling(redis_url: str, store: str) -> None:
    """While one client's store read takes 0.3 s, another waits with one Redis request
    (not one per ``lock_poll``) and gets the value from the bus message."""
    backend = CountingBackend(store, delay=0.3)
    cache_url = _cache_url(redis_url, "wake") + "&lock_poll=0.002"
    policy = CachePolicy(ttl=30, watch=False)
    with (
        Client(backend, cache=policy, cache_url=cache_url) as loader,
        Client(backend, cache=policy, cache_url=cache_url) as waiter,
    ):
        for client in (loader, waiter):
            assert client._l2 is not None and client._l2.wait_ready(5)
        thread = threading.Thread(target=loader.get, args=(KEYS[0],))
        thread.start()
        deadline = time.monotonic() + 5
        while backend.gets[KEYS[0]] == 0 and time.monotonic() < deadline:
            time.sleep(0.001)  # the loader holds the lock and is in its store read
        assert waiter.get(KEYS[0]) == f"value of {KEYS[0]}"
        thread.join(5)
        stats = waiter.stats()
        assert backend.gets[KEYS[0]] == 1
        assert stats["bus_fills"] == 1 and stats["l2_lock_waits"] == 1, stats
        assert stats["l2_requests"] == 1, stats  # polling every 2 ms would be ~150
        assert stats["store_calls"] == 0


def test_without_a_bus_a_waiter_falls_back_to_polling(redis_url: str, store: str) -> None:
    """A SharedCache with no listener (as while the bus is reconnecting) polls the entry."""
    url = _cache_url(redis_url, "nobus")
    policy = CachePolicy(ttl=30, watch=False)
    options: dict[str, Any] = {"store": "nobus", "policy": policy, "box": None}
    loader = SharedCache(url, is_secret=lambda k, e: False, on_message=lambda m: None, **options)
    polling = SharedCache(url, is_secret=lambda k, e: False, **options)
    entry = Entry(KEYS[0], b"slow value", "7")

    def slow() -> Entry:
        time.sleep(0.2)
        return entry

    try:
        assert loader.wait_ready(5)
        started = threading.Event()

        def announce_then_load() -> Entry:
            started.set()
            return slow()

        def load() -> None:
            loader.read_through(KEYS[0], announce_then_load)

        thread = threading.Thread(target=load)
        thread.start()
        assert started.wait(5)
        got, ttl = polling.read_through(KEYS[0], lambda: Entry(KEYS[0], b"wrong", "0"))
        thread.join(5)
        assert got == entry and ttl is not None and ttl > 29
        assert polling.counters["l2_lock_waits"] == 1
        assert polling.counters["l2_requests"] > 2  # it polled
    finally:
        loader.close()
        polling.close()


def test_a_refresh_pushes_the_new_value_to_every_holder(redis_url: str, store: str) -> None:
    """The process whose copy expires first refreshes the key (before its L2 entry goes)
    and its bus message updates the other client's L1 with no Redis request of its own."""
    policy = CachePolicy(ttl=0.5, negative_ttl=0.5, watch=False)
    cache_url = _cache_url(redis_url, "push")
    with (
        Client(f"sqlite:///{store}", cache=policy, cache_url=cache_url) as first,
        Client(f"sqlite:///{store}", cache=policy, cache_url=cache_url) as second,
    ):
        for client in (first, second):
            assert client._l2 is not None and client._l2.wait_ready(5)
        assert first.get(KEYS[1]) == f"value of {KEYS[1]}"  # the loader
        assert second.get(KEYS[1]) == f"value of {KEYS[1]}"  # from L2, kept a grace longer
        assert second._l2 is not None
        before = second._l2.counters["l2_requests"]
        direct = SQLiteBackend(store)
        try:
            direct.put(KEYS[1], b"changed behind the cache")
        finally:
            direct.close()
        deadline = time.monotonic() + 5
        while first.get(KEYS[1]) != "changed behind the cache" and time.monotonic() < deadline:
            time.sleep(0.005)
        record = second._records[KEYS[1]]
        deadline = time.monotonic() + 2
        while record_raw(record) != b"changed behind the cache" and time.monotonic() < deadline:
            time.sleep(0.005)
            record = second._records[KEYS[1]]
        assert record_raw(record) == b"changed behind the cache"
        assert second.stats()["bus_updates"] >= 1
        assert second._l2.counters["l2_requests"] == before  # pushed, not read


def test_bus_payloads_of_secrets_are_sealed_or_absent(
    redis_url: str, store: str, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"hunter2-{unique_name('pw')}"
    seen: list[bytes] = []

    def run(namespace: str, key: str) -> None:
        cache_url = f"{redis_url}?namespace={namespace}&timeout=0.5"
        policy = CachePolicy(ttl=30, watch=False)
        with (
            Client(
                f"sqlite:///{store}", cache=policy, cache_url=cache_url, secret_prefixes=["secrets"]
            ) as a,
            Client(
                f"sqlite:///{store}", cache=policy, cache_url=cache_url, secret_prefixes=["secrets"]
            ) as b,
        ):
            assert a._l2 is not None and b._l2 is not None
            pubsub = raw.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(a._l2.channel)
            try:
                pubsub.get_message(timeout=1.0)
                for client in (a, b):
                    assert client._l2 is not None and client._l2.wait_ready(5)
                assert b.get(key, None) is None  # held absent in b's L1
                a.put(key, secret)  # a write: message to b
                deadline = time.monotonic() + 5
                while b.get(key, None) != secret and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert b.get(key) == secret
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    message = pubsub.get_message(timeout=0.2)
                    if message is None:
                        break
                    seen.append(message["data"])
            finally:
                pubsub.close()

    monkeypatch.setenv("VELTRIX_CACHE_KEY", base64.b64encode(os.urandom(32)).decode())
    run(unique_name("bussec"), "secrets/sealed")
    sealed = [json.loads(m) for m in seen]
    assert any(m.get("p") for m in sealed)
    for body in sealed:
        if body.get("p"):
            assert base64.b64decode(body["p"])[:1] in (b"\x01", b"\x02")  # sealed (or absent)
    monkeypatch.delenv("VELTRIX_CACHE_KEY")
    count = len(seen)
    run(unique_name("busnokey"), "secrets/nokey")
    assert all("p" not in json.loads(m) for m in seen[count:])
    everything = b"\n".join(seen + [base64.b64decode(json.loads(m).get("p", "")) for m in seen])
    assert secret.encode() not in everything


def test_a_foreign_payload_published_before_our_write_is_not_installed(
    redis_url: str, store: str
) -> None:
    """Read-your-own-writes: a message published before our own write to the key (still
    on its way back to us) carries an older value; it only drops L1 for a re-read."""
    cache_url = _cache_url(redis_url, "ryow")
    policy = CachePolicy(ttl=30, watch=False)
    with Client(f"sqlite:///{store}", cache=policy, cache_url=cache_url) as client:
        l2 = client._l2
        assert l2 is not None and l2.wait_ready(5)
        client.put(KEYS[2], "mine")
        deadline = time.monotonic() + 5
        while l2._own_pending and time.monotonic() < deadline:
            time.sleep(0.001)  # our write's own message came back
        older = l2.encode(KEYS[2], Entry(KEYS[2], b"older", "1"))
        text = base64.b64encode(older).decode()
        message = json.dumps({"o": "else", "k": KEYS[2], "v": "1", "ms": 30000, "p": text}).encode()
        with l2._waiters_lock:
            l2._own_pending[KEYS[2]] = 1  # as if our write's echo were still in flight
        l2._dispatch(message)
        assert client.get(KEYS[2]) == "mine"  # re-read from L2, which holds our write
        assert client.stats()["bus_updates"] == 0
        with l2._waiters_lock:
            l2._own_pending.clear()
        mine = client.get_entry(KEYS[2])
        assert mine is not None
        newer = str(int(mine.version) + 1)  # another client's later write
        payload = base64.b64encode(l2.encode(KEYS[2], Entry(KEYS[2], b"theirs", newer)))
        l2._dispatch(
            json.dumps(
                {"o": "else", "k": KEYS[2], "v": newer, "ms": 30000, "p": payload.decode()}
            ).encode()
        )  # nothing pending now: a newer foreign value is installed
        assert client.get(KEYS[2]) == "theirs"
        assert client.stats()["bus_updates"] == 1


def test_a_late_payload_older_than_what_the_watch_installed_is_refused(
    redis_url: str, store: str
) -> None:
    """Another process read its copy before a change; the change reached this client by
    its own watch first; the other's bus message, late, must not put the old value
    back (the store's versions increase, so the older copy is known)."""
    cache_url = _cache_url(redis_url, "late")
    with Client(f"sqlite:///{store}", cache=CachePolicy(ttl=30), cache_url=cache_url) as client:
        l2 = client._l2
        assert l2 is not None and l2.wait_ready(5)
        old = client.get_entry(KEYS[3])
        assert old is not None
        sent = l2.counters["bus_sent"]
        direct = SQLiteBackend(store)
        try:
            direct.put(KEYS[3], b"changed")  # no bus message: only the watch tells
        finally:
            direct.close()
        deadline = time.monotonic() + 5
        while client.get(KEYS[3]) != "changed" and time.monotonic() < deadline:
            time.sleep(0.005)
        assert client.get(KEYS[3]) == "changed"
        # The watch's change is also published to the fleet; wait for its echo, or the
        # late message would be taken for one published before that (older by rule).
        deadline = time.monotonic() + 5
        while (l2.counters["bus_sent"] == sent or l2._own_pending) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert l2.counters["bus_sent"] == sent + 1 and not l2._own_pending
        late = base64.b64encode(l2.encode(KEYS[3], old)).decode()
        l2._dispatch(
            json.dumps(
                {"o": "else", "k": KEYS[3], "v": old.version, "ms": 30000, "p": late, "r": 1}
            ).encode()
        )
        stats = client.stats()
        assert stats["bus_stale_ignored"] == 1 and stats["bus_updates"] == 0
        assert client.get(KEYS[3]) == "changed"


def test_a_write_cancels_a_refresh_in_flight(redis_url: str) -> None:
    """A refresh whose store read began before a write neither stores its (older) value
    in L2 nor announces it on the bus: the write took its lock away."""
    url = _cache_url(redis_url, "cancel")
    policy = CachePolicy(ttl=30, watch=False)
    options: dict[str, Any] = {"store": "cancel", "policy": policy, "box": None}
    heard: list[Any] = []
    loader = SharedCache(url, is_secret=lambda k, e: False, on_message=heard.append, **options)
    writer = SharedCache(url, is_secret=lambda k, e: False, on_message=lambda m: None, **options)
    started, written = threading.Event(), threading.Event()
    result: list[Any] = []

    def read_old() -> Entry:
        started.set()
        assert written.wait(5)
        return Entry(KEYS[3], b"old", "1")

    try:
        assert loader.wait_ready(5) and writer.wait_ready(5)
        thread = threading.Thread(
            target=lambda: result.append(loader.read_through(KEYS[3], read_old))
        )
        thread.start()
        assert started.wait(5)
        writer.publish(KEYS[3], Entry(KEYS[3], b"new", "2"))
        written.set()
        thread.join(5)
        assert result and result[0][0].value == b"old"  # what the loader itself read
        hit = writer.peek(KEYS[3])
        assert hit is not None and hit[0] is not None and hit[0].value == b"new"
        assert loader.counters["bus_sent"] == 0  # its store-and-publish script did nothing
        deadline = time.monotonic() + 2
        while not heard and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # a refresh message, had there been one, came after the write's
        assert [(m.version, m.refresh) for m in heard] == [("2", False)]
    finally:
        loader.close()
        writer.close()
