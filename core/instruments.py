"""What a client counts for metrics, in plain ints, and the set of live clients.

Every :class:`veltrix.Client` owns one :class:`ClientInstruments`. It is updated
on the slow path only (store calls, watch events, single-flight waits), under the
GIL, with no lock and no third-party import; exporters (:mod:`veltrix.metrics`
for Prometheus, :mod:`veltrix.otel` for OpenTelemetry) read it when they are
scraped. Cache hits are the exception: counting them costs the hot path a few
nanoseconds, so they are counted only while an exporter asks for them
(:func:`count_hits`), by the counting twin of ``Client.get``.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from veltrix.client import Client

#: Upper bounds (seconds) of store call durations: a cache in front of a store
#: sees sub-millisecond local calls and multi-second timeouts.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Upper bounds (seconds) of watch lag: from the store's change time to the cache update.
LAG_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

#: What a store call ended with (the ``outcome`` label).
OUTCOMES = ("ok", "unavailable", "denied", "conflict", "error")
#: Which store call it was (the ``op`` label).
OPS = ("get", "list", "put", "delete")


class Histogram:
    """Bucket counts in a plain list (not cumulative), a sum and a count.

    ``observe`` runs on the slow path under the GIL; a reader copies the fields
    and may see one observation half-applied, which a scrape tolerates.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> Histogram:
        other = Histogram(self.bounds)
        other.counts = list(self.counts)
        other.sum = self.sum
        return other

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``[(upper bound, observations <= it), ..., (inf, count)]``."""
        total = 0
        result = []
        for bound, n in zip((*self.bounds, float("inf")), list(self.counts), strict=True):
            total += n
            result.append((bound, total))
        return result


class ClientInstruments:
    """One client's counters beyond :meth:`veltrix.Client.stats` (see the module doc)."""

    __slots__ = (
        "coalesced",
        "durations",
        "last_refresh",
        "store_requests",
        "watch_events",
        "watch_lag",
        "watch_reconnects",
    )

    def __init__(self) -> None:
        self.store_requests: dict[tuple[str, str], int] = {}
        self.durations: dict[str, Histogram] = {}
        #: Wall-clock time of the last successful read from the store (0: none yet).
        self.last_refresh = 0.0
        self.watch_events = 0
        self.watch_reconnects = 0
        self.watch_lag = Histogram(LAG_BUCKETS)
        self.coalesced = 0

    def store_call(self, op: str, outcome: str, seconds: float, now: float) -> None:
        key = (op, outcome)
        self.store_requests[key] = self.store_requests.get(key, 0) + 1
        histogram = self.durations.get(op)
        if histogram is None:
            histogram = self.durations[op] = Histogram(DURATION_BUCKETS)
        histogram.observe(seconds)
        if outcome == "ok" and op in ("get", "list"):
            self.last_refresh = now


@dataclass(frozen=True, slots=True)
class L2Reading:
    """The shared cache's side of a :class:`ClientReading`."""

    #: result (hit, miss, error, lock_timeout) -> count
    requests: dict[str, int]
    circuit_open: bool
    #: direction (sent, received) -> invalidation messages
    bus: dict[str, int]


@dataclass(frozen=True, slots=True)
class ClientReading:
    """One client's metrics at one instant (``Client._reading()``), for exporters."""

    name: str
    #: result (hit, miss, stale, negative) -> reads
    cache: dict[str, int]
    #: (op, outcome) -> store calls
    store_requests: dict[tuple[str, str], int]
    #: op -> call durations
    durations: dict[str, Histogram]
    store_up: bool
    #: wall-clock time of the last successful store read; 0.0 before the first
    last_refresh: float
    #: seconds past its TTL of the oldest value served stale and not refreshed since
    stale_age: float
    watch_connected: bool
    watch_events: int
    watch_reconnects: int
    watch_lag: Histogram
    coalesced: int
    cached_keys: int
    l2: L2Reading | None


# -- the live clients ------------------------------------------------------------------

_live: weakref.WeakSet[Client] = weakref.WeakSet()
_live_lock = threading.Lock()
_hit_counters = 0  # how many exporters want hits counted


def track(client: Client) -> None:
    """Called by every new client: report it while it lives; count its hits if asked."""
    with _live_lock:
        _live.add(client)
        if _hit_counters:
            client._count_hits(True)


def live_clients() -> Iterator[Client]:
    """Every client that is neither closed nor collected."""
    with _live_lock:
        clients = list(_live)
    return (client for client in clients if not client.closed)


def count_hits(on: bool) -> None:
    """An exporter starts (``on``) or stops wanting cache hits counted, for live and
    future clients. Counting stays on while any exporter wants it."""
    global _hit_counters
    with _live_lock:
        _hit_counters = max(0, _hit_counters + (1 if on else -1))
        enabled = _hit_counters > 0
        clients = list(_live)
    for client in clients:
        client._count_hits(enabled)


def counting_hits() -> bool:
    return _hit_counters > 0


__all__ = [
    "DURATION_BUCKETS",
    "LAG_BUCKETS",
    "OPS",
    "OUTCOMES",
    "ClientInstruments",
    "ClientReading",
    "Histogram",
    "L2Reading",
    "count_hits",
    "counting_hits",
    "live_clients",
    "track",
]
