"""The shared watch plumbing: WatchSet bookkeeping and ChangeLogWatch's gap handling."""

from __future__ import annotations

import queue
import threading

from veltrix.adapters.memory import MemoryBackend
from veltrix.backend import Change, Entry
from veltrix.watching import ChangeLogWatch, ChangeRecord, WatchSet


class ListLog:
    """A change log kept in a list, trimmed on demand (a store's log, without the store)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.records: list[ChangeRecord] = []
        self.entries: dict[str, Entry] = {}
        self.rev = 0
        self.closed = threading.Event()

    def write(self, key: str, value: bytes | None) -> None:
        with self.lock:
            self.rev += 1
            if value is None:
                self.entries.pop(key, None)
                entry = None
            else:
                entry = self.entries[key] = Entry(key, value, str(self.rev))
            self.records.append((self.rev, key, entry))

    def trim(self) -> None:
        with self.lock:
            self.records.clear()

    def baseline(self) -> tuple[int, dict[str, Entry]]:
        with self.lock:
            return self.rev, dict(self.entries)

    def read_after(self, revision: int) -> list[ChangeRecord] | None:
        with self.lock:
            if self.rev < revision:
                return None
            return [r for r in self.records if r[0] > revision]

    def close(self) -> None:
        self.closed.set()


def _follow(log: ListLog, prefix: str = "") -> tuple[ChangeLogWatch, queue.Queue[Change]]:
    got: queue.Queue[Change] = queue.Queue()
    watch = ChangeLogWatch(
        log,
        prefix,
        got.put,
        start=log.baseline(),
        name="test-changelog",
        where="a list",
        errors=(RuntimeError,),
        poll_interval=0.005,
    )
    return watch, got


def _take(got: queue.Queue[Change], n: int) -> list[tuple[str, bytes | None]]:
    out = []
    for _ in range(n):
        change = got.get(timeout=5)
        out.append((change.key, None if change.entry is None else change.entry.value))
    return out


def test_changelog_watch_delivers_records_under_its_prefix_in_order() -> None:
    log = ListLog()
    log.write("a/old", b"0")
    watch, got = _follow(log, "a")
    try:
        log.write("a/x", b"1")
        log.write("b/y", b"2")  # outside the prefix
        log.write("a/x", b"3")
        log.write("a/old", None)
        assert _take(got, 3) == [("a/x", b"1"), ("a/x", b"3"), ("a/old", None)]
    finally:
        watch.stop()
    assert log.closed.wait(5), "the log's connection was not released"


def test_changelog_watch_diffs_when_the_log_was_trimmed_past_it() -> None:
    log = ListLog()
    log.write("k1", b"1")
    log.write("k2", b"2")
    watch, got = _follow(log)
    try:
        with log.lock:  # the watch reads nothing until the log has a gap
            log.write("k1", b"changed")
            log.write("k2", None)
            log.write("k3", b"new")
            log.trim()
            log.write("k4", b"after the gap")
        changes = dict(_take(got, 4))
        assert changes == {"k1": b"changed", "k2": None, "k3": b"new", "k4": b"after the gap"}
    finally:
        watch.stop()


def test_changelog_watch_compares_values_after_the_store_lost_its_data() -> None:
    log = ListLog()
    log.write("same", b"v")
    log.write("other", b"w")
    watch, got = _follow(log)
    try:
        with log.lock:  # the store restarts empty; revisions start over
            log.records.clear()
            log.entries = {"same": Entry("same", b"v", "1"), "other": Entry("other", b"W", "2")}
            log.rev = 1
        # "other" has a version the watch knew, but a new value; "same" is unchanged.
        assert _take(got, 1) == [("other", b"W")]
        assert got.empty()
    finally:
        watch.stop()


def test_watch_set_drops_stopped_watches_and_close_stops_the_rest() -> None:
    backend = MemoryBackend()
    watches = backend._watches
    assert isinstance(watches, WatchSet)
    first = backend.watch("a", lambda change: None)
    second = backend.watch("b", lambda change: None)
    assert len(watches) == 2
    first.stop()
    assert len(watches) == 1, "a stopped watch stays in its backend's bookkeeping"
    backend.close()
    assert len(watches) == 0
    second.stop()  # stopping again is harmless
    assert len(watches) == 0
