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
import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from veltrix.backend import Entry
from veltrix.errors import ConfigurationError

log = logging.getLogger("veltrix.cache")


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
    - ``error_backoff``: after a failed refresh, seconds during which the stale value is
      served without asking the failing store again.
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
    retries: int = 2
    watch: bool = True
    track_hits: bool = False

    def __post_init__(self) -> None:
        for name in ("ttl", "stale_while_revalidate", "max_stale", "negative_ttl", "error_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ConfigurationError(f"CachePolicy.{name} must be a number >= 0, got {value!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(
                f"CachePolicy.retries must be an integer >= 0, got {self.retries!r}"
            )

    def expires_at(self, fetched_at: float, absent: bool) -> float:
        return fetched_at + (self.negative_ttl if absent else self.ttl)

    def state(self, record: Record, now: float) -> Freshness:
        if now < record.expires_at:
            return Freshness.FRESH
        if record.entry is not None and now < record.expires_at + self.stale_while_revalidate:
            return Freshness.REVALIDATE
        return Freshness.EXPIRED

    def may_serve_stale(self, expires_at: float, now: float) -> bool:
        """After a store failure: may a last-known-good value that expired at
        ``expires_at`` still be served?"""
        return self.stale_if_error and now < expires_at + self.max_stale


class Record:
    """What the client knows about one key (slow-path state; the hot path uses dicts)."""

    __slots__ = ("entry", "expires_at", "fetched_at", "retry_after")

    def __init__(self, entry: Entry | None, fetched_at: float, expires_at: float) -> None:
        self.entry = entry  # None: confirmed absent
        self.fetched_at = fetched_at
        self.expires_at = expires_at
        self.retry_after = 0.0  # error backoff: no store call before this time


class ExpiryScheduler:
    """Calls ``on_expire(token)`` at (or just after) each scheduled monotonic deadline.

    One daemon thread, started by the first ``schedule`` (a client that never caches
    anything, such as a CLI call with ``ttl=0``, starts none), sleeps until the
    earliest deadline. Rescheduling a token does
    not remove its older deadline; ``on_expire`` must check whether the token really
    expired (the client compares against the record's current ``expires_at``).
    """

    def __init__(self, on_expire: Callable[[Hashable], None], *, name: str) -> None:
        self._on_expire = on_expire
        self._heap: list[tuple[float, int, Hashable]] = []
        self._counter = 0
        self._cond = threading.Condition()
        self._closed = False
        self._name = name
        self._thread: threading.Thread | None = None

    def schedule(self, deadline: float, token: Hashable) -> None:
        with self._cond:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._counter += 1
            heapq.heappush(self._heap, (deadline, self._counter, token))
            if self._heap[0][2] is token:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                _, _, token = heapq.heappop(self._heap)
            try:
                self._on_expire(token)
            except Exception:  # pragma: no cover - a bug in on_expire must not stop expiry
                log.exception("expiry callback failed")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and threading.current_thread() is not thread:
            thread.join(timeout=5)

    def __len__(self) -> int:
        return len(self._heap)


def monotonic() -> float:
    return time.monotonic()


__all__ = ["CachePolicy", "ExpiryScheduler", "Freshness", "Record", "monotonic"]
