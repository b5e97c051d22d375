"""The client's packed per-key record and its slotted expiry: exact round trips."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st

from veltrix import CachePolicy, Client
from veltrix.backend import Entry, newer_or_same
from veltrix.cache import META, VALUE, ExpiryScheduler, pack_value, record_raw


@given(st.text(), st.text())
def test_version_order_takes_any_text(version: str, than: str) -> None:
    newer = newer_or_same(version, than)  # never raises, whatever the store sent
    if version.isdecimal() and than.isdecimal():
        assert newer is (int(version) >= int(than))
    else:
        assert newer is True


def test_version_order_is_numeric_not_textual() -> None:
    assert newer_or_same("10", "9") and not newer_or_same("9", "10")
    assert newer_or_same("²", "3")  # a digit, not a number: counts as newer


@given(st.binary())
def test_values_round_trip_byte_for_byte(value: bytes) -> None:
    assert record_raw((pack_value(value), "1", ("", False, None, False), 0.0)) == value


class FixedStore:
    """A read-only store answering with the entries it was given."""

    schemes: ClassVar[tuple[str, ...]] = ("fixed",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    url = "fixed://test"

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = {e.key: e for e in entries}

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def close(self) -> None:
        pass


def test_get_entry_gives_back_what_the_store_gave() -> None:
    entries = [
        Entry("a/text", b"hello", "17", source="fixed://test/a/text"),
        Entry(
            "a/binary",
            b"\xff\x00\xfe",
            "0017",
            content_type="application/octet-stream",
            source="fixed://test#a/binary",
        ),
        Entry("a/secret", "pässwörd".encode(), "v3", source="elsewhere", secret=True),
        Entry("a/empty", b"", "0", source="fixed://test/a/empty"),
        Entry("a/big-version", b"x", "123456789012345678901234567890", source=""),
    ]
    with Client(FixedStore(entries), cache=CachePolicy(ttl=60, watch=False)) as client:
        for entry in entries:
            assert client.get_entry(entry.key) == entry
            assert client.get_entry(entry.key) == entry  # from the cache this time
        assert client.get("a/secret") == "pässwörd"
        assert client.get_bytes("a/binary") == b"\xff\x00\xfe"
        # The text is held once: the hot-path dict and the record share the object.
        assert client._fresh["a/text"] is client._records["a/text"][VALUE]
        # Keys whose provenance ends with the key share one meta tuple.
        assert client._records["a/text"][META] is client._records["a/empty"][META]


def test_expiry_runs_each_slot_at_its_start_with_every_deadline_before_its_horizon() -> None:
    fired: dict[Hashable, tuple[float, float]] = {}
    done = threading.Event()

    def on_expire(token: Hashable, horizon: float) -> None:
        fired[token] = (time.monotonic(), horizon)
        if len(fired) == 40:
            done.set()

    scheduler = ExpiryScheduler(on_expire, name="test-expiry")
    slot = 1 / ExpiryScheduler.SLOTS_PER_SECOND
    try:
        start = time.monotonic()
        deadlines = {f"k{i}": start + 0.05 + i * 0.003 for i in range(40)}
        for token, deadline in deadlines.items():
            scheduler.schedule(deadline, token)
        assert len(scheduler) == 40
        assert len(scheduler._heap) < 40  # tokens due in one slot share it
        assert done.wait(5)
        for token, deadline in deadlines.items():
            at, horizon = fired[token]
            # The slot holding the deadline: it ends after it, and began at most a slot before.
            assert deadline < horizon <= deadline + slot
            # Never more than a slot (plus the learned lead) early; late only by the
            # scheduling slack of a loaded machine.
            assert at >= deadline - slot - ExpiryScheduler.MAX_LEAD
            assert at - deadline < 0.25
        assert len(scheduler) == 0
    finally:
        scheduler.close()


def test_tokens_appended_to_the_open_slot_expire_and_a_run_slot_is_never_open() -> None:
    """The miss path appends to the open slot's list itself (lock held); a slot that has
    run, or a closed scheduler, must offer no list to append to, or a token put there
    would never expire."""
    fired: list[Hashable] = []
    lock = threading.Lock()
    scheduler = ExpiryScheduler(lambda token, horizon: fired.append(token), name="t", lock=lock)
    slot = 1 / ExpiryScheduler.SLOTS_PER_SECOND
    try:
        first = time.monotonic() + 0.05
        with lock:
            scheduler.schedule_held(first, "first")
            assert scheduler.open_from <= first < scheduler.open_until
            assert scheduler.open_until - scheduler.open_from == slot
            middle = (scheduler.open_from + scheduler.open_until) / 2
            for i in range(50):  # what the miss path does for deadlines in the open slot
                scheduler.open_tokens.append(f"inline{i}")
        give_up = time.monotonic() + 5
        while len(fired) < 51 and time.monotonic() < give_up:
            time.sleep(0.005)
        assert sorted(fired) == sorted(["first", *(f"inline{i}" for i in range(50))])
        with lock:  # the slot ran: no deadline falls in an open slot until the next one
            assert not scheduler.open_from <= middle < scheduler.open_until
            assert not scheduler.open_from <= first < scheduler.open_until
        later = time.monotonic() + 10
        scheduler.schedule(later, "later")
        assert scheduler.open_from <= later < scheduler.open_until
    finally:
        scheduler.close()
    assert not scheduler.open_from <= later < scheduler.open_until  # closed: none open


def test_expiry_learns_its_wake_up_lateness_and_wakes_that_much_earlier() -> None:
    """Behind threads that hold the GIL, a timed wake-up comes late; the scheduler
    measures that and runs slots early by its average, bounded by MAX_LEAD."""
    calls: list[float] = []
    scheduler = ExpiryScheduler(lambda token, horizon: calls.append(horizon), name="t")
    stop = threading.Event()

    def busy() -> None:  # pure-Python spinning: holds the GIL for whole switch intervals
        while not stop.is_set():
            sum(range(2000))

    spinners = [threading.Thread(target=busy, daemon=True) for _ in range(3)]
    try:
        for thread in spinners:
            thread.start()
        for i in range(20):
            scheduler.schedule(time.monotonic() + 0.03 + i * 0.02, i)
        deadline = time.monotonic() + 5
        while len(calls) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) == 20
        assert 0.002 <= scheduler.lead <= ExpiryScheduler.MAX_LEAD  # a switch interval is 5 ms
    finally:
        stop.set()
        scheduler.close()
