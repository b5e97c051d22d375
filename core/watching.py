"""Building blocks for adapters' watches.

:class:`ChangeDispatcher` delivers changes to a callback, in order, on one
background thread, so a slow callback never blocks a store's I/O thread.
:class:`PollingWatch` turns a "list everything under a prefix" call into per-key
changes (puts and deletes) for stores that can only be polled.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar, cast

from veltrix.backend import Change, Entry
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


def diff_snapshots(known: Mapping[str, Entry], current: Mapping[str, Entry]) -> list[Change]:
    """Changes that turn ``known`` into ``current``: puts (new or new version), deletes."""
    changes = [
        Change(key, entry)
        for key, entry in sorted(current.items())
        if key not in known or known[key].version != entry.version
    ]
    changes.extend(Change(key, None) for key in sorted(known) if key not in current)
    return changes


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
    """Polls ``snapshot()`` every ``interval`` seconds and emits the differences.

    The first snapshot is the baseline (no changes emitted for it). A failing poll
    is logged and retried with backoff up to ``max_backoff``; the next successful
    poll emits everything that changed meanwhile, deletes included, so nothing is
    lost across an outage.
    """

    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, Entry]],
        on_change: Callable[[Change], None],
        *,
        interval: float,
        name: str,
        max_backoff: float = 30.0,
        baseline: Mapping[str, Entry] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._interval = interval
        self._max_backoff = max(max_backoff, interval)
        self._stop = threading.Event()
        self._dispatcher = ChangeDispatcher(on_change, name=f"{name}-callbacks")
        self._failures = FailureLog(log, "veltrix.watch.poll", store=name)
        self._known: dict[str, Entry] | None = dict(baseline) if baseline is not None else None
        if self._known is None:
            self._known = self._try_snapshot()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _try_snapshot(self) -> dict[str, Entry] | None:
        try:
            current = dict(self._snapshot())
        except Exception as exc:
            self._failures.failed("watch poll failed: %s", exc, error=exc)
            return None
        self._failures.succeeded("watch poll works again")
        return current

    def _run(self) -> None:
        delay = self._interval
        while not self._stop.wait(delay):
            current = self._try_snapshot()
            if current is None:
                delay = min(delay * 2, self._max_backoff)
                continue
            delay = self._interval
            if self._known is not None:
                for change in diff_snapshots(self._known, current):
                    self._dispatcher.submit(change)
            self._known = current

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        self._dispatcher.stop()


__all__ = [
    "ChangeDispatcher",
    "InlineCallback",
    "PollingWatch",
    "diff_snapshots",
    "emit_if_changed",
]
