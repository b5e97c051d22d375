"""Building blocks for adapters' watches.

:class:`ChangeDispatcher` delivers changes to a callback, in order, on one
background thread, so a slow callback never blocks a store's I/O thread.
:class:`PollingWatch` turns a "list everything under a prefix" call into per-key
changes (puts and deletes) for stores that can only be polled.
:class:`ChangeLogWatch` follows a store's own change log (numbered records) and
falls back to a diff when the log has a gap. :class:`WatchSet` is a backend's
bookkeeping of the watches it opened: stopped ones leave it, ``close`` stops the rest.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar, cast

from veltrix.backend import Change, Entry
from veltrix.keys import in_prefix
from veltrix.log_events import FailureLog, event

log = logging.getLogger("veltrix.watch")

_STOP = object()
T = TypeVar("T")


class InlineCallback(Generic[T]):
    """A watch callback that is quick and never blocks (no I/O, short locks only).

    A watch that reads changes on a thread of its own calls it right there instead of
    handing each change to a dispatcher thread: every thread a change crosses waits
    up to a GIL switch interval behind busy reader threads, so one hop less is fresher
    values under load. Watches whose changes arrive on their writers' threads (the
    memory store) keep dispatching.
    """

    def __init__(self, callback: Callable[[T], None]) -> None:
        self.callback = callback

    def __call__(self, item: T) -> None:
        self.callback(item)


class ChangeDispatcher(Generic[T]):
    """Runs ``on_change`` for each submitted item, in submission order: on one
    background thread, or on the submitting thread when ``on_change`` is an
    :class:`InlineCallback` and ``inline_allowed`` (the watch submits from one thread
    of its own, never with a lock held that the callback's owner could be waiting on)."""

    def __init__(
        self, on_change: Callable[[T], None], *, name: str, inline_allowed: bool = True
    ) -> None:
        self._on_change = on_change
        self._stopped = threading.Event()
        self._inline = inline_allowed and isinstance(on_change, InlineCallback)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if not self._inline:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def submit(self, item: T) -> None:
        if self._stopped.is_set():
            return
        if self._inline:
            self._deliver(item)
        else:
            self._queue.put(item)

    def _deliver(self, item: T) -> None:
        try:
            self._on_change(item)
        except Exception as exc:
            key = getattr(item, "key", None)
            log.exception(
                "watch callback failed for %s",
                key or "a change",
                extra=event("veltrix.watch.callback_failed", key=key, error=exc),
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            self._deliver(cast(T, item))

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        if threading.current_thread() is not thread:
            thread.join(timeout=5)


def diff_listings(known: Mapping[str, Entry], current: Mapping[str, Entry]) -> list[Change]:
    """Changes that turn ``known`` into ``current``: puts (new or new version), deletes."""
    changes = [
        Change(key, entry)
        for key, entry in sorted(current.items())
        if key not in known or known[key].version != entry.version
    ]
    changes.extend(Change(key, None) for key in sorted(known) if key not in current)
    return changes


#: The 0.1.0 name of :func:`diff_listings`.
diff_snapshots = diff_listings


def emit_if_changed(
    known: dict[str, Entry],
    dispatcher: ChangeDispatcher[Change],
    key: str,
    entry: Entry | None,
    changed_at: float | None = None,
) -> None:
    """Deliver ``key``'s new state unless ``known`` (what was last delivered) already has it.

    Watches that re-read a key after an event, or re-list after a reconnect, see the
    same state more than once; this keeps each state delivered exactly once.
    ``changed_at``: the store's time of the change, where it gives one.
    """
    current = known.get(key)
    if entry is None:
        if current is not None:
            del known[key]
            dispatcher.submit(Change(key, None, changed_at))
    elif current is None or current.version != entry.version:
        known[key] = entry
        dispatcher.submit(Change(key, entry, changed_at))


class PollingWatch:
    """Polls ``listing()`` every ``interval`` seconds and emits the differences.

    The first listing is the baseline (no changes emitted for it). A failing poll
    is logged and retried with backoff up to ``max_backoff``; the next successful
    poll emits everything that changed meanwhile, deletes included, so nothing is
    lost across an outage.
    """

    def __init__(
        self,
        listing: Callable[[], Mapping[str, Entry]],
        on_change: Callable[[Change], None],
        *,
        interval: float,
        name: str,
        max_backoff: float = 30.0,
        baseline: Mapping[str, Entry] | None = None,
        on_stop: Callable[[PollingWatch], None] | None = None,
    ) -> None:
        """``on_stop(watch)`` is called once, when the watch stops (a
        :meth:`WatchSet.discard`, typically)."""
        self._listing = listing
        self._on_stop = on_stop
        self._interval = interval
        self._max_backoff = max(max_backoff, interval)
        self._stop = threading.Event()
        self._dispatcher = ChangeDispatcher(on_change, name=f"{name}-callbacks")
        self._failures = FailureLog(log, "veltrix.watch.poll", store=name)
        self._known: dict[str, Entry] | None = dict(baseline) if baseline is not None else None
        if self._known is None:
            self._known = self._try_listing()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _try_listing(self) -> dict[str, Entry] | None:
        try:
            current = dict(self._listing())
        except Exception as exc:
            self._failures.failed("watch poll failed: %s", exc, error=exc)
            return None
        self._failures.succeeded("watch poll works again")
        return current

    def _run(self) -> None:
        delay = self._interval
        while not self._stop.wait(delay):
            current = self._try_listing()
            if current is None:
                delay = min(delay * 2, self._max_backoff)
                continue
            delay = self._interval
            if self._known is not None:
                for change in diff_listings(self._known, current):
                    self._dispatcher.submit(change)
            self._known = current

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        self._dispatcher.stop()
        if self._on_stop is not None:
            self._on_stop(self)


#: One record of a change log: ``(revision, key, the key's state or None when deleted)``.
ChangeRecord = tuple[int, str, Entry | None]


class ChangeLog(Protocol):
    """A store's change log as one :class:`ChangeLogWatch` reads it.

    Revisions are consecutive integers (a gap means records were trimmed). The watch
    calls every method on its own thread, except the first :meth:`baseline`, which
    the adapter calls before creating the watch.
    """

    def baseline(self) -> tuple[int, dict[str, Entry]]:
        """The newest revision and the entries under the watched prefix, consistently."""
        ...

    def read_after(self, revision: int) -> list[ChangeRecord] | None:
        """The records after ``revision``, in order (may block for a while; ``[]``
        when there are none yet), or ``None`` when the log restarted below
        ``revision`` (the store lost its data): the watch then resyncs."""
        ...

    def close(self) -> None:
        """Release the log's connection (called once, on the watch's thread)."""
        ...


class ChangeLogWatch:
    """Follows a :class:`ChangeLog` from a baseline and delivers per-key changes.

    A gap in the revisions (the log was trimmed past this watch) or a restarted log
    falls back to a full diff against what was delivered, so nothing is lost; after
    a data loss, versions may restart, so values are compared too. Read errors in
    ``errors`` are logged and retried with back-off.
    """

    def __init__(
        self,
        changes: ChangeLog,
        prefix: str,
        on_change: Callable[[Change], None],
        *,
        start: tuple[int, Mapping[str, Entry]],
        name: str,
        where: str,
        errors: tuple[type[BaseException], ...],
        describe_error: Callable[[BaseException], str] = lambda exc: type(exc).__name__,
        poll_interval: float = 0.0,
        coalesce: bool = False,
        retry_backoff: float = 0.05,
        max_backoff: float = 2.0,
        join_timeout: float = 5.0,
        on_stop: Callable[[ChangeLogWatch], None] | None = None,
    ) -> None:
        """``start`` is the baseline (``changes.baseline()``, taken by the adapter
        so that it can map its errors). ``poll_interval`` waits between reads (0 for
        a log whose reads block); ``coalesce`` delivers only the last record of each
        key per read (for logs whose records carry the key's current state rather
        than the state of that change). ``where`` names the store in log messages,
        ``describe_error`` says what of an error may be logged."""
        self._changes = changes
        self._prefix = prefix
        self._rev, known = start
        self._known = dict(known)
        self._where = where
        self._errors = errors
        self._describe_error = describe_error
        self._poll_interval = poll_interval
        self._coalesce = coalesce
        self._retry_backoff = retry_backoff
        self._max_backoff = max_backoff
        self._join_timeout = join_timeout
        self._on_stop = on_stop
        self._stop = threading.Event()
        self._dispatcher = ChangeDispatcher(on_change, name=name)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = self._retry_backoff
        failures = FailureLog(log, "veltrix.watch", store=self._where)
        try:
            while not self._stop.wait(self._poll_interval):
                try:
                    self._poll()
                    backoff = self._retry_backoff
                    failures.succeeded("watch on %s works again", self._where)
                except self._errors as exc:
                    if self._stop.is_set():
                        break
                    failures.failed(
                        "watch on %s failed, retrying: %s",
                        self._where,
                        self._describe_error(exc),
                        error=exc,
                    )
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
        finally:
            with contextlib.suppress(Exception):
                self._changes.close()

    def _poll(self) -> None:
        records = self._changes.read_after(self._rev)
        if self._stop.is_set():
            return
        if records is None:
            self._resync()
            return
        latest: dict[str, Entry | None] = {}
        for rev, key, entry in records:
            if rev != self._rev + 1:  # the log was trimmed past us: diff instead
                self._flush(latest)
                self._resync()
                return
            self._rev = rev
            if not in_prefix(key, self._prefix):
                continue
            if self._coalesce:
                latest.pop(key, None)  # keep keys ordered by their latest change
                latest[key] = entry
            else:
                emit_if_changed(self._known, self._dispatcher, key, entry)
        self._flush(latest)

    def _flush(self, latest: dict[str, Entry | None]) -> None:
        for key, entry in latest.items():
            emit_if_changed(self._known, self._dispatcher, key, entry)

    def _resync(self) -> None:
        rev, current = self._changes.baseline()
        changes = diff_listings(self._known, current)
        if rev < self._rev:  # data lost: versions restart, compare values too
            changes = [
                Change(k, e)
                for k, e in sorted(current.items())
                if k not in self._known or self._known[k].value != e.value
            ] + [Change(k, None) for k in sorted(self._known) if k not in current]
        for change in changes:
            self._dispatcher.submit(change)
        self._rev, self._known = rev, current

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=self._join_timeout)
        self._dispatcher.stop()
        if self._on_stop is not None:
            self._on_stop(self)


class StoppableWatch(Protocol):
    def stop(self) -> None: ...


W = TypeVar("W", bound=StoppableWatch)


class WatchSet(Generic[W]):
    r"""The watches one backend opened and has not seen stop.

    ``watch()`` passes :meth:`discard` to the watch it creates as its ``on_stop``
    and then :meth:`add`\ s it, so a stopped watch leaves the set (a client that
    opens and stops many watches does not keep them all); ``close()`` calls
    :meth:`stop_all`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: list[W] = []

    def add(self, watch: W) -> W:
        with self._lock:
            self._watches.append(watch)
        return watch

    def discard(self, watch: W) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    def stop_all(self) -> None:
        """Stop every watch in the set (each leaves it)."""
        with self._lock:
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.stop()

    def __len__(self) -> int:
        return len(self._watches)


__all__ = [
    "ChangeDispatcher",
    "ChangeLog",
    "ChangeLogWatch",
    "ChangeRecord",
    "InlineCallback",
    "PollingWatch",
    "WatchSet",
    "diff_listings",
    "diff_snapshots",
    "emit_if_changed",
]
