"""Client.bind: a live pydantic model whose fields change all at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from tests.unit.stores import ControlledStore, NoWatch, wait_until
from veltrix import CachePolicy, Client
from veltrix.backend import Change, Entry
from veltrix.errors import ConfigurationError, DecodeError, UnsupportedOperationError


class Limits(BaseModel):
    low: int
    high: int


class PairStore(ControlledStore):
    """A memory store that can write two keys in one transaction (as ZooKeeper, Consul
    and Redis batches do), so every listing sees both or neither."""

    def put_pair(self, first: tuple[str, bytes], second: tuple[str, bytes]) -> None:
        store = self._store
        with store.lock:
            changes = []
            for key, value in (first, second):
                entry = Entry(key, value, str(next(store.revision)), source=f"{self.url}/{key}")
                store.entries[key] = entry
                changes.append(Change(key, entry))
            for change in changes:
                store.publish(change)


@pytest.fixture
def store() -> Iterator[PairStore]:
    backend = PairStore()
    backend.put("limits/low", b"1")
    backend.put("limits/high", b"1")
    yield backend
    backend.close()


def test_fields_follow_the_store(store: PairStore) -> None:
    with Client(store, cache=CachePolicy(ttl=60)) as client:
        cfg = client.bind("limits", Limits)
        assert (cfg.low, cfg.high) == (1, 1)
        lists = store.lists
        store.put("other/key", b"x")  # outside the prefix: no refresh
        client.put("limits/high", 5)  # this client's own write
        assert wait_until(lambda: cfg.high == 5)
        store.put("limits/low", b"2")  # another writer
        assert wait_until(lambda: cfg.low == 2)
        assert store.lists - lists <= 2


def test_an_invalid_version_keeps_the_last_good_one(store: PairStore) -> None:
    with Client(store, cache=CachePolicy(ttl=60)) as client:
        cfg = client.bind("limits", Limits)
        store.put("limits/high", b"not a number")
        assert wait_until(lambda: client.stats()["bind_errors"] >= 1)
        assert (cfg.low, cfg.high) == (1, 1)
        store.put("limits/high", b"9")
        assert wait_until(lambda: cfg.high == 9)


def test_readers_never_see_half_an_update(store: PairStore) -> None:
    """Readers hammer the live instance while writes change both fields together."""
    with Client(store, cache=CachePolicy(ttl=60)) as client:
        cfg = client.bind("limits", Limits)
        stop = threading.Event()
        torn: list[tuple[int, int]] = []
        reads = [0]

        def read() -> None:
            while not stop.is_set():
                fields = vars(cfg)  # one reference: the fields of one version
                if fields["low"] != fields["high"]:
                    torn.append((fields["low"], fields["high"]))
                copy = cfg.model_copy()
                if copy.low != copy.high:
                    torn.append((copy.low, copy.high))
                reads[0] += 1

        readers = [threading.Thread(target=read) for _ in range(4)]
        for thread in readers:
            thread.start()
        for n in range(2, 202):
            store.put_pair(("limits/low", str(n).encode()), ("limits/high", str(n).encode()))
            time.sleep(0.002)
        assert wait_until(lambda: cfg.low == 201 and cfg.high == 201, timeout=10)
        stop.set()
        for thread in readers:
            thread.join()
        assert not torn, f"half-applied updates seen: {torn[:5]}"
        assert reads[0] > 1000


def test_bind_needs_a_model_and_a_watching_store(store: PairStore) -> None:
    with Client(store, cache=CachePolicy(ttl=60)) as client:
        with pytest.raises(ConfigurationError):
            client.bind("limits", dict)  # type: ignore[type-var]
        with pytest.raises(DecodeError):
            client.bind("nothing-here", Limits)

    with Client(NoWatch()) as client, pytest.raises(UnsupportedOperationError):  # type: ignore[arg-type]
        client.bind("limits", Limits)
