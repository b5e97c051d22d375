"""The client's packed per-key record and its slotted expiry: exact round trips."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st

from veltrix import CachePolicy, Client
from veltrix.backend import Entry
from veltrix.cache import ExpiryScheduler, Record, pack_value, pack_version


@given(st.text())
def test_versions_print_back_exactly(version: str) -> None:
    packed = pack_version(version)
    assert str(packed) == version
    if isinstance(packed, int):
        assert version.isascii() and version.isdigit()


@given(st.binary())
def test_values_round_trip_byte_for_byte(value: bytes) -> None:
    record = Record(pack_value(value), 1, ("", False, None, False), 0.0)
    assert record.raw() == value


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
        assert client._fresh["a/text"] is client._records["a/text"].value
        # Keys whose provenance ends with the key share one meta tuple.
        assert client._records["a/text"].meta is client._records["a/empty"].meta


def test_expiry_is_never_early_and_at_most_a_slot_late() -> None:
    fired: dict[Hashable, float] = {}
    done = threading.Event()

    def on_expire(token: Hashable) -> None:
        fired[token] = time.monotonic()
        if len(fired) == 40:
            done.set()

    scheduler = ExpiryScheduler(on_expire, name="test-expiry")
    try:
        start = time.monotonic()
        deadlines = {f"k{i}": start + 0.05 + i * 0.003 for i in range(40)}
        for token, deadline in deadlines.items():
            scheduler.schedule(deadline, token)
        assert len(scheduler) == 40
        assert len(scheduler._heap) < 40  # tokens due in one slot share it
        assert done.wait(5)
        for token, deadline in deadlines.items():
            assert fired[token] >= deadline
            # One slot (1/64 s) plus generous scheduling slack for a loaded machine.
            assert fired[token] - deadline < 1 / 64 + 0.25
        assert len(scheduler) == 0
    finally:
        scheduler.close()
