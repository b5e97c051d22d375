"""Pure logic of the Consul test server: durations, indexes, transactions."""

from __future__ import annotations

import threading
import time

import pytest

from tests.servers.consul.server import parse_duration
from tests.servers.consul.store import KVStore


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m", 60.0), ("1m30s", 90.0), ("250ms", 0.25), ("1.5h", 5400.0), ("0", 0.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "-1s", "1s 2s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_first_write_moves_past_the_empty_table_index() -> None:
    store = KVStore()
    index, _ = store.read(lambda: (store.prefix_index("p", []), None), min_index=0, timeout=0)
    assert index == 1  # never 0
    entry = store.write(lambda i: store.set(i, "p/a", b"1", 0))
    assert entry.modify_index > index, "a blocking query on index 1 must wake for the first write"


def test_prefix_index_counts_tombstones() -> None:
    store = KVStore()
    store.write(lambda i: store.set(i, "p/a", b"1", 0))
    store.write(lambda i: store.set(i, "q/a", b"1", 0))
    store.write(lambda i: store.delete(i, "p/a"))
    deleted_at = store.table_index()
    assert store.prefix_index("p/", store.list_prefix("p/")) == deleted_at
    store.write(lambda i: store.set(i, "q/b", b"1", 0))
    assert store.prefix_index("p/", []) == deleted_at


def test_blocking_read_sleeps_until_a_relevant_write() -> None:
    store = KVStore()
    store.write(lambda i: store.set(i, "p/a", b"1", 0))
    start_index = store.prefix_index("p/", store.list_prefix("p/"))
    woke: list[float] = []

    def reader() -> None:
        started = time.monotonic()
        store.read(
            lambda: (store.prefix_index("p/", store.list_prefix("p/")), None),
            min_index=start_index,
            timeout=10,
        )
        woke.append(time.monotonic() - started)

    thread = threading.Thread(target=reader)
    thread.start()
    store.write(lambda i: store.set(i, "other", b"x", 0))  # irrelevant: keeps sleeping
    time.sleep(0.2)
    assert not woke
    store.write(lambda i: store.set(i, "p/b", b"2", 0))
    thread.join(5)
    assert woke and woke[0] < 5


def test_transaction_rolls_back_everything() -> None:
    store = KVStore()
    store.write(lambda i: store.set(i, "k", b"old", 0))
    before = store.table_index()
    results, errors = store.transaction(
        [
            {"Verb": "set", "Key": "new", "Value": b"n"},
            {"Verb": "delete", "Key": "k"},
            {"Verb": "cas", "Key": "k", "Value": b"x", "Index": 999},
        ],
        allowed=True,
    )
    assert results == [] and [e["OpIndex"] for e in errors] == [2]
    assert store.get("new") is None
    entry = store.get("k")
    assert entry is not None and entry.value == b"old"
    assert store.table_index() == before
    assert store.prefix_index("k", [entry]) == entry.modify_index  # no tombstone left behind
