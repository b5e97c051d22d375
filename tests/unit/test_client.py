"""Cache policy and client behaviour, against in-process stores."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

import veltrix
from tests.unit.stores import ControlledStore, NoWatch, wait_until
from veltrix import CachePolicy, Client
from veltrix.backend import Absent, Change
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ConfigurationError,
    DecodeError,
    InvalidKeyError,
    KeyNotFoundError,
    UnsupportedOperationError,
    VersionConflictError,
)


def make(store: ControlledStore, **policy: object) -> Client:
    policy.setdefault("watch", False)
    policy.setdefault("retries", 0)
    return Client(store, cache=CachePolicy(**policy))  # type: ignore[arg-type]


def test_hit_makes_no_store_call(store: ControlledStore) -> None:
    store.put("app/timeout", b"500")
    with make(store, ttl=60) as client:
        assert client.get("app/timeout") == "500"
        for _ in range(1000):
            assert client.get("app/timeout") == "500"
            assert client.get("app/timeout", type=int) == 500
        assert store.gets == 1
        assert client.stats()["store_calls"] == 1


def test_ttl_expiry_refetches(store: ControlledStore) -> None:
    store.put("k", b"1")
    with make(store, ttl=0.05) as client:
        assert client.get("k") == "1"
        store.put("k", b"2")
        assert client.get("k") == "1"  # still fresh
        assert wait_until(lambda: client.get("k") == "2", timeout=2)
        assert store.gets >= 2


def test_ttl_zero_always_asks_the_store(store: ControlledStore) -> None:
    store.put("k", b"1")
    with make(store, ttl=0) as client:
        for _ in range(5):
            client.get("k")
        assert store.gets == 5


def test_single_flight(store: ControlledStore) -> None:
    store.put("hot", b"v")
    store.delay = 0.2
    with make(store, ttl=60) as client:
        results: list[str] = []
        barrier = threading.Barrier(16)

        def reader() -> None:
            barrier.wait()
            results.append(client.get("hot"))

        threads = [threading.Thread(target=reader) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["v"] * 16
        assert store.gets == 1


def test_single_flight_shares_the_error(store: ControlledStore) -> None:
    store.delay = 0.1
    store.go_down()
    with make(store, ttl=60) as client:
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                client.get("k")
            except BackendUnavailableError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(errors) == 8
        assert store.gets == 1


def test_stale_if_error_serves_last_known_good(store: ControlledStore) -> None:
    store.put("k", b"good")
    with make(store, ttl=0.05, max_stale=60) as client:
        assert client.get("k") == "good"
        store.go_down()
        time.sleep(0.1)
        assert client.get("k") == "good"
        assert client.stats()["stale_served"] == 1
        calls = store.gets
        for _ in range(10):  # inside error_backoff: no further store calls
            assert client.get("k") == "good"
        assert store.gets == calls
        store.come_back()
        store.put("k", b"new")
        assert wait_until(lambda: client.get("k") == "new", timeout=3)


def test_stale_if_error_is_bounded_by_max_stale(store: ControlledStore) -> None:
    store.put("k", b"good")
    with make(store, ttl=0.01, max_stale=0.05, error_backoff=0) as client:
        client.get("k")
        store.go_down()
        time.sleep(0.1)
        with pytest.raises(BackendUnavailableError):
            client.get("k")


def test_stale_if_error_off_raises(store: ControlledStore) -> None:
    store.put("k", b"good")
    with make(store, ttl=0.01, stale_if_error=False) as client:
        client.get("k")
        store.go_down()
        time.sleep(0.05)
        with pytest.raises(BackendUnavailableError):
            client.get("k")


def test_transient_library_errors_are_retried_then_typed(store: ControlledStore) -> None:
    store.fail_with(ConnectionError("refused"))
    with make(store, ttl=1, retries=2) as client:
        with pytest.raises(BackendUnavailableError) as info:
            client.get("k")
        assert isinstance(info.value.__cause__, ConnectionError)
        assert store.gets == 3


def test_access_denied_is_never_absent_nor_stale(store: ControlledStore) -> None:
    store.put("k", b"good")
    with make(store, ttl=0.01) as client:
        client.get("k")
        store.deny()
        time.sleep(0.05)
        with pytest.raises(AccessDeniedError):
            client.get("k", default="fallback")


def test_stale_while_revalidate(store: ControlledStore) -> None:
    store.put("k", b"old")
    with make(store, ttl=0.05, stale_while_revalidate=10) as client:
        assert client.get("k") == "old"
        store.put("k", b"new")
        store.delay = 0.3
        time.sleep(0.08)
        started = time.monotonic()
        assert client.get("k") == "old"  # served at once, refreshed in the background
        assert time.monotonic() - started < 0.2
        assert wait_until(lambda: client.get("k") == "new", timeout=3)


def test_negative_caching(store: ControlledStore) -> None:
    with make(store, ttl=60, negative_ttl=60) as client:
        assert client.get("missing", default=None) is None
        assert client.get("missing", default="d") == "d"
        with pytest.raises(KeyNotFoundError, match="missing"):
            client.get("missing")
        assert store.gets == 1
    with make(store, ttl=60, negative_ttl=0) as client:
        client.get("missing", default=None)
        client.get("missing", default=None)
        assert store.gets == 3


def test_read_your_writes_and_cas(store: ControlledStore) -> None:
    with make(store, ttl=60) as client:
        v1 = client.put("cfg/a", "one")
        assert client.get("cfg/a") == "one"
        client.put("cfg/a", "two", if_version=v1)
        assert client.get("cfg/a") == "two"
        with pytest.raises(VersionConflictError):
            client.put("cfg/a", "three", if_version=v1)
        assert client.get("cfg/a") == "two"
        with pytest.raises(VersionConflictError):
            client.put("cfg/a", "x", if_version=Absent)
        assert client.delete("cfg/a") is True
        assert client.get("cfg/a", default=None) is None
        assert store.gets == 0


def test_put_encodes_values(store: ControlledStore) -> None:
    with make(store) as client:
        client.put("n", 30)
        client.put("l", [1, 2])
        client.put("b", b"\x00\xff")
        assert client.get("n", type=int) == 30
        assert client.get_json("l") == [1, 2]
        assert client.get_bytes("b") == b"\x00\xff"


def test_bad_input_is_typed(store: ControlledStore) -> None:
    store.put("num", b"abc")
    store.put("bin", b"\xff\xfe")
    with make(store) as client:
        with pytest.raises(DecodeError, match="not a valid int"):
            client.get("num", type=int)
        with pytest.raises(DecodeError, match="not valid JSON"):
            client.get_json("num")
        with pytest.raises(DecodeError, match="UTF-8"):
            client.get("bin")
        with pytest.raises(InvalidKeyError):
            client.get("bad key")
        with pytest.raises(InvalidKeyError):
            client.put("a//b", "x")
        assert store.gets == 2
    with pytest.raises(ConfigurationError):
        CachePolicy(ttl=-1)
    with pytest.raises(ConfigurationError):
        Client("memory://", cache="fast")  # type: ignore[arg-type]


def test_decode_error_never_shows_the_value(store: ControlledStore) -> None:
    store.put("secret/pw", b"hunter2")
    with make(store) as client, pytest.raises(DecodeError) as info:
        client.get("secret/pw", type=int)
    assert "hunter2" not in str(info.value)


class Database(BaseModel):
    host: str
    port: int


class Payments(BaseModel):
    timeout_ms: int
    retries: int = 3
    enabled: bool
    db: Database
    regions: list[str] = []


def test_get_model_caches_and_invalidates(store: ControlledStore) -> None:
    for key, value in {
        "payments/timeout_ms": b"250",
        "payments/enabled": b"true",
        "payments/db/host": b"db.local",
        "payments/db/port": b"5432",
        "payments/regions": b'["eu", "us"]',
        "paymentsx/timeout_ms": b"1",
    }.items():
        store.put(key, value)
    with make(store, ttl=60) as client:
        cfg = client.get_model("payments", Payments)
        assert cfg == Payments(
            timeout_ms=250,
            enabled=True,
            db=Database(host="db.local", port=5432),
            regions=["eu", "us"],
        )
        assert client.get_model("payments", Payments) is cfg
        assert store.lists == 1
        client.put("payments/timeout_ms", "300")
        assert client.get_model("payments", Payments).timeout_ms == 300
        assert store.lists == 2
        client.put("paymentsx/timeout_ms", "2")  # outside the prefix: model stays cached
        client.get_model("payments", Payments)
        assert store.lists == 2
        client.put("payments/db/port", "not-a-port")
        with pytest.raises(DecodeError, match="Payments"):
            client.get_model("payments", Payments)


def test_watch_pushes_changes_into_the_cache(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    with Client(url, cache=CachePolicy(ttl=600)) as reader, Client(url) as writer:
        writer.put("svc/flag", "off")
        assert reader.get("svc/flag") == "off"
        seen: list[str] = []
        reader.watch("svc", lambda change: seen.append(reader.get(change.key)))
        writer.put("svc/flag", "on")
        assert wait_until(lambda: reader.get("svc/flag") == "on", timeout=2)
        assert wait_until(lambda: seen == ["on"], timeout=2)
        assert reader.stats()["watch_updates"] >= 1
        writer.delete("svc/flag")
        assert wait_until(lambda: reader.get("svc/flag", default=None) is None, timeout=2)


def test_watch_unsupported_store() -> None:
    with Client(NoWatch()) as client:  # type: ignore[arg-type]
        with pytest.raises(UnsupportedOperationError):
            client.watch("", lambda change: None)
        with pytest.raises(UnsupportedOperationError):
            client.put("k", "v")
        with pytest.raises(UnsupportedOperationError):
            client.list()
        assert client.get("k", default=1) == 1


def test_track_hits(store: ControlledStore) -> None:
    store.put("k", b"v")
    with make(store, track_hits=True) as client:
        for _ in range(10):
            client.get("k")
        stats = client.stats()
        assert (stats["reads"], stats["hits"], stats["misses"]) == (10, 9, 1)


def test_closed_client_refuses(store: ControlledStore) -> None:
    client = make(store)
    client.close()
    client.close()
    with pytest.raises(ConfigurationError, match="closed"):
        client.get("k")


def test_watch_callback_errors_do_not_stop_delivery(store: ControlledStore) -> None:
    got: list[Change] = []

    def bad(change: Change) -> None:
        raise RuntimeError("boom")

    with Client(store, cache=CachePolicy(ttl=60)) as client:
        client.watch("a", bad)
        client.watch("a", got.append)
        store.put("a/1", b"x")
        store.put("a/2", b"y")
        assert wait_until(lambda: [c.key for c in got] == ["a/1", "a/2"])


def test_public_names() -> None:
    assert veltrix.Client is Client
    assert issubclass(veltrix.KeyNotFoundError, veltrix.VeltrixError)
    assert issubclass(veltrix.KeyNotFoundError, KeyError)


def test_feature_flags(store: ControlledStore) -> None:
    store.put("flags/new-checkout/enabled", b"true")
    store.put("flags/dark-mode/enabled", b"false")
    store.put("flags/broken/enabled", b"maybe")
    with make(store) as client:
        assert client.flag("new-checkout") is True
        assert client.flag("dark-mode", default=True) is False
        assert client.flag("undefined") is False
        assert client.flag("undefined", default=True) is True
        with pytest.raises(DecodeError):
            client.flag("broken")
        with pytest.raises(InvalidKeyError):
            client.flag("bad name")
