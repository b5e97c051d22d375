"""Cache policy: when a cached value is fresh, stale-but-servable, or must be refetched.

Policy (this module) is kept apart from the client's plumbing (``client.py``),
as dogpile.cache keeps its region apart from its backends. The client's hot path
never reads a clock: fresh values live in plain dicts and :class:`ExpiryScheduler`
removes them from those dicts when their TTL runs out, on a background thread.
Everything past that point (stale-while-revalidate, stale-if-error, negative
caching) is decided on the slow path with :meth:`CachePolicy.state`.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, fields
from heapq import heappop, heappush
from math import floor
from typing import Final

from veltrix.backend import Entry
from veltrix.errors import ConfigurationError
from veltrix.log_events import event

log = logging.getLogger("veltrix.cache")


#: Longest duration a policy accepts: ten years. More overflows thread timeouts and
#: Redis expiry times; it is a typo, not a policy.
MAX_SECONDS = 10 * 365 * 24 * 3600.0
#: Most retries a policy accepts.
MAX_RETRIES = 100


def _show(value: object) -> str:
    """A rejected option value for an error message: numbers as given, others by type."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return "a very large integer"  # (repr of a huge int can even raise)
    if isinstance(value, bool | int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def _check_seconds(name: str, value: object) -> None:
    """A duration: a real number (not a bool), finite, between 0 and MAX_SECONDS.

    The range test also refuses NaN and infinities (every comparison with NaN is false).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_SECONDS
    ):
        raise ConfigurationError(
            f"CachePolicy.{name} must be a finite number of seconds from 0 to "
            f"{MAX_SECONDS:.0f}, got {_show(value)}"
        )


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise ConfigurationError(
            f"CachePolicy.{name} must be an integer from 0 to {MAX_RETRIES}, got {_show(value)}"
        )


class Freshness(enum.Enum):
    FRESH = "fresh"  # serve it
    REVALIDATE = "revalidate"  # serve it and refresh in the background
    EXPIRED = "expired"  # refetch; on a store failure it may still be served (stale-if-error)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How long values stay fresh and what is served when they are not.

    - ``ttl``: seconds a fetched value is served without asking the store. ``0``
      disables caching (every read asks the store; concurrent reads still share one call).
    - ``stale_while_revalidate``: seconds after ``ttl`` during which the old value is
      served at once while one background call refreshes it.
    - ``stale_if_error``: when the store fails (transiently), serve the last-known-good
      value instead of raising, for at most ``max_stale`` seconds past its expiry.
    - ``negative_ttl``: seconds a confirmed absence is remembered.
    - ``error_backoff``: after a store failure, seconds during which stale values are
      served without asking the failing store again (then one probe asks it).
    - ``refresh_deadline``: the longest a read of an expired value waits for its
      refresh while the store is up; past it the old value is served and the refresh
      goes on in the background. While the store is known to be slow or down, expired
      values are served at once (see :mod:`veltrix.health`).
    - ``retries``: extra attempts for a transient failure before giving up (or serving stale).
    - ``watch``: keep the cache current with the store's native watch where it has one;
      TTL stays the safety net.
    - ``track_hits``: count cache hits (costs a few ns per read; off by default).
    """

    ttl: float = 30.0
    stale_while_revalidate: float = 0.0
    stale_if_error: bool = True
    max_stale: float = 3600.0
    negative_ttl: float = 5.0
    error_backoff: float = 1.0
    refresh_deadline: float = 0.02
    retries: int = 2
    watch: bool = True
    track_hits: bool = False

    def __post_init__(self) -> None:
        # Checked by annotation, so a field added later is validated with no change here.
        for spec in fields(self):
            value = getattr(self, spec.name)
            kind = spec.type if isinstance(spec.type, str) else spec.type.__name__
            if kind == "float":
                _check_seconds(spec.name, value)
            elif kind == "bool" and not isinstance(value, bool):
                raise ConfigurationError(
                    f"CachePolicy.{spec.name} must be True or False, got {_show(value)}"
                )
            elif kind == "int":
                _check_count(spec.name, value)

    def expires_at(self, fetched_at: float, absent: bool) -> float:
        return fetched_at + (self.negative_ttl if absent else self.ttl)

    def state(self, record: Record, now: float) -> Freshness:
        expires_at = record[EXPIRES_AT]
        if now < expires_at:
            return Freshness.FRESH
        if record[VALUE] is not None and now < expires_at + self.stale_while_revalidate:
            return Freshness.REVALIDATE
        return Freshness.EXPIRED

    def may_serve_stale(self, expires_at: float, now: float) -> bool:
        """After a store failure: may a last-known-good value that expired at
        ``expires_at`` still be served?"""
        return self.stale_if_error and now < expires_at + self.max_stale


#: ``(source, source_ends_with_key, content_type, secret)`` of a cached entry.
Meta = tuple[str, bool, str | None, bool]
ABSENT_META: Meta = ("", False, None, False)


#: What the client knows about one key, packed small (one per cached key):
#: ``(value, version, meta, expires_at)``.
#:
#: - ``value``: the decoded text when the stored bytes are UTF-8 (the very object the
#:   hot-path dict holds, so the value is kept once), else the bytes; ``None`` for a
#:   confirmed absence.
#: - ``version``: the store's version string, as the store gave it (``""`` for an
#:   absence). Parsing decimal versions into ``int``s would save ~26 bytes per key
#:   but cost a miss ~380 ns, about a seventh of it.
#: - ``meta``: ``(source, source_ends_with_key, content_type, secret)``, one tuple
#:   shared by every key that has the same (the client interns them).
#: - ``expires_at``: monotonic time the value stops being fresh.
#:
#: A plain tuple, not a class: the cyclic garbage collector stops tracking a tuple
#: that holds only strings, numbers and such tuples, so a process with many cached
#: keys does not walk them all at every full collection, and building one is a
#: single bytecode on the miss path. A record is never changed in place: a new one
#: replaces it (:func:`expire_by`). Read its fields by the indexes below.
Record = tuple[str | bytes | None, str, Meta, float]
VALUE: Final = 0
VERSION: Final = 1
META: Final = 2
EXPIRES_AT: Final = 3


def record_raw(record: Record) -> bytes | None:
    """The stored bytes (UTF-8 text re-encodes exactly: decoding was strict)."""
    value = record[VALUE]
    return value.encode() if isinstance(value, str) else value


def record_version(record: Record) -> str | None:
    """The store's version as it gave it; ``None`` for an absence."""
    return None if record[VALUE] is None else record[VERSION]


def record_entry(record: Record, key: str) -> Entry | None:
    """The store's :class:`Entry`, rebuilt from ``record`` (slow path only)."""
    raw = record_raw(record)
    if raw is None:
        return None
    source, with_key, content_type, secret = record[META]
    return Entry(
        key,
        raw,
        record[VERSION],
        content_type=content_type,
        source=source + key if with_key else source,
        secret=secret,
    )


def expire_by(record: Record, when: float) -> Record:
    """``record``, expiring at ``when`` at the latest."""
    value, version, meta, expires_at = record
    return (value, version, meta, min(expires_at, when))


def pack_value(value: bytes) -> str | bytes:
    """The decoded text when ``value`` is UTF-8, else ``value`` itself."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


#: Expiry slots per second (:class:`ExpiryScheduler`): a deadline's slot is
#: ``floor(deadline * SLOTS_PER_SECOND)``.
SLOTS_PER_SECOND = 64


class ExpiryScheduler:
    """Calls ``on_expire(token, horizon)`` around each scheduled monotonic deadline.

    Deadlines fall into 1/64 s slots and tokens due in the same slot share one list,
    so a scheduled token costs one list slot (8 bytes) rather than a heap item. A slot
    runs at its start, so a value leaves the fresh dicts up to one slot (~16 ms)
    *before* its TTL rather than after it; ``horizon`` is the slot's end, and
    ``on_expire`` must treat every deadline before it as reached.

    Why early rather than late: a thread waking from a timed wait must win the GIL
    back, and behind busy reader threads that takes several switch intervals (5 ms
    each). The scheduler measures how late its own wake-ups are (a moving average)
    and wakes that much earlier, at most :attr:`MAX_LEAD`, so a value's TTL is kept
    under load instead of being overrun by the queue for the GIL.

    One daemon thread, started by the first ``schedule`` (a client that never caches
    anything, such as a CLI call with ``ttl=0``, starts none), sleeps until the
    earliest slot. Rescheduling a token does not remove its older deadline;
    ``on_expire`` must check whether the token really expired (the client compares
    the record's current ``expires_at`` with ``horizon``).
    """

    SLOTS_PER_SECOND = SLOTS_PER_SECOND
    MAX_LEAD = 0.025  # the most a slot runs ahead of its start to absorb wake-up lateness

    def __init__(
        self,
        on_expire: Callable[[Hashable, float], None],
        *,
        name: str,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        """``lock``: the lock guarding the schedule (default: a lock of its own). A
        client passes its own lock, which it holds whenever it schedules anyway, and
        then schedules with :meth:`schedule_held`."""
        self._on_expire = on_expire
        #: Slot number (``floor(deadline * SLOTS_PER_SECOND)``) -> the tokens due in it.
        self.slots: dict[int, list[Hashable]] = {}
        #: The slot :meth:`schedule_held` last put a token in, while it has not run:
        #: a caller holding the lock may append a token whose deadline is in
        #: ``[open_from, open_until)`` to ``open_tokens`` directly (the client's miss
        #: path does; consecutive misses mostly fall in one slot). The bounds are the
        #: slot's exact edges: dividing by a power of two is exact.
        self.open_from = self.open_until = 0.0
        self.open_tokens: list[Hashable] = []
        self._open_slot = -1
        self._heap: list[int] = []  # the slots in use, earliest first
        self._cond = threading.Condition(threading.Lock() if lock is None else lock)
        self._closed = False
        self._name = name
        self._thread: threading.Thread | None = None
        self.lead = 0.0  # seconds slots run early: the recent average wake-up lateness

    def schedule(self, deadline: float, token: Hashable) -> None:
        with self._cond:
            self.schedule_held(deadline, token)

    def schedule_held(self, deadline: float, token: Hashable) -> None:
        """:meth:`schedule`, by a caller already holding the scheduler's lock (once
        per cache miss: taking the lock again would cost the miss path more than the
        rest of this method)."""
        if self._closed:
            return
        slot = floor(deadline * SLOTS_PER_SECOND)
        tokens = self.slots.get(slot)
        if tokens is None:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            tokens = self.slots[slot] = []
            heappush(self._heap, slot)
            if self._heap[0] == slot:
                self._cond.notify()
        tokens.append(token)
        self._open_slot, self.open_tokens = slot, tokens
        self.open_from = slot / SLOTS_PER_SECOND
        self.open_until = (slot + 1) / SLOTS_PER_SECOND

    def _close_slot(self) -> None:
        """The open slot runs (or the scheduler closes): nothing may be appended to it."""
        self.open_from = self.open_until = 0.0
        self.open_tokens = []
        self._open_slot = -1

    def _run(self) -> None:
        waited_for: int | None = None  # the slot the last timed wait aimed at
        while True:
            with self._cond:
                if self._closed:
                    return
                if not self._heap:
                    waited_for = None
                    self._cond.wait()
                    continue
                slot = self._heap[0]
                wake_at = slot / self.SLOTS_PER_SECOND - self.lead
                now = time.monotonic()
                if now < wake_at:
                    waited_for = slot
                    self._cond.wait(wake_at - now)
                    continue
                if waited_for == slot:  # woke for this slot: learn how late that was
                    self.lead = min(self.MAX_LEAD, 0.75 * self.lead + 0.25 * (now - wake_at))
                waited_for = None
                heappop(self._heap)
                tokens = self.slots.pop(slot)
                if slot == self._open_slot:
                    self._close_slot()
            horizon = (slot + 1) / self.SLOTS_PER_SECOND
            for token in tokens:
                try:
                    self._on_expire(token, horizon)
                except Exception:  # pragma: no cover - a bug in on_expire must not stop expiry
                    log.exception(
                        "expiry callback failed", extra=event("veltrix.cache.expiry_failed")
                    )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self.slots.clear()
            self._close_slot()
            self._cond.notify()
            thread = self._thread
        if thread is not None and threading.current_thread() is not thread:
            thread.join(timeout=5)

    def __len__(self) -> int:
        with self._cond:
            return sum(len(tokens) for tokens in self.slots.values())


__all__ = [
    "ABSENT_META",
    "EXPIRES_AT",
    "META",
    "SLOTS_PER_SECOND",
    "VALUE",
    "VERSION",
    "CachePolicy",
    "ExpiryScheduler",
    "Freshness",
    "Meta",
    "Record",
    "expire_by",
    "pack_value",
    "record_entry",
    "record_raw",
    "record_version",
]
