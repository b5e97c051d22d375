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
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

#: Every metric family: name -> help. The same names in every exporter. Counters are named without ``_total`` here, as
#: prometheus-client's families want; they are exposed with it.
FAMILIES: dict[str, str] = {
    "veltrix_cache_requests": "Client reads by result: hit, miss (went to the store or L2), "
    "stale (served past its TTL), negative (a remembered absence).",
    "veltrix_store_requests": "Store calls by operation and outcome.",
    "veltrix_store_request_duration_seconds": "Store call durations by operation.",
    "veltrix_store_up": "1 while the store answers (the client's health state is up), else 0.",
    "veltrix_refresh_last_success_timestamp_seconds": "Wall-clock time of the last successful "
    "read from the store.",
    "veltrix_stale_value_age_seconds": "Seconds past its TTL of the oldest value being served "
    "stale (0 when none).",
    "veltrix_watch_up": "1 while the client's store watch runs on a live connection, 0 while "
    "it is lost (no series for a client that runs no watch).",
    "veltrix_watch_events": "Changes received from the store's watch.",
    "veltrix_watch_reconnects": "Times the store's connection (and its watch) came back after "
    "a loss.",
    "veltrix_watch_lag_seconds": "Delay from the store's change time to the cache update, for "
    "stores that report one.",
    "veltrix_singleflight_coalesced": "Reads and refreshes that waited on another call for the "
    "same key instead of calling the store.",
    "veltrix_cached_keys": "Keys held in the client's in-process cache.",
    "veltrix_l2_requests": "Shared cache (L2) lookups by result: hit, miss, error, lock_timeout.",
    "veltrix_l2_circuit_open": "1 while the shared cache's circuit breaker is open.",
    "veltrix_bus_messages": "Invalidation bus messages by direction: sent, received.",
}


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
        "_derived_at",
        "_derived_wall",
        "_wall_refresh",
        "coalesced",
        "durations",
        "get_durations",
        "get_seconds",
        "gets_ok",
        "refreshed_at",
        "slow_gets",
        "store_requests",
        "watch_events",
        "watch_lag",
        "watch_reconnects",
    )

    def __init__(self) -> None:
        self.store_requests: dict[tuple[str, str], int] = {}
        self.durations: dict[str, Histogram] = {}
        self.get_durations = Histogram(DURATION_BUCKETS)
        # The client's miss path counts and times its successful gets here, with no
        # tuple key to hash and no histogram bucket for the usual sub-0.5 ms local call:
        # ``requests()``, ``histograms()`` and ``last_refresh`` fold them in.
        self.gets_ok = 0
        self.get_seconds = 0.0  # their total duration
        #: Those slower than the first bucket, by bucket (as Histogram.counts): the
        #: first bucket holds the rest.
        self.slow_gets = [0] * (len(DURATION_BUCKETS) + 1)
        self.refreshed_at = 0.0  # monotonic time of the latest (0: none yet)
        self._wall_refresh = 0.0  # wall-clock time of the latest store_call success
        self._derived_at = self._derived_wall = 0.0  # refreshed_at on the wall clock
        self.watch_events = 0
        self.watch_reconnects = 0
        self.watch_lag = Histogram(LAG_BUCKETS)
        self.coalesced = 0

    def store_call(self, op: str, outcome: str, seconds: float, now: float) -> None:
        key = (op, outcome)
        self.store_requests[key] = self.store_requests.get(key, 0) + 1
        histogram = self.get_durations if op == "get" else self.durations.get(op)
        if histogram is None:
            histogram = self.durations[op] = Histogram(DURATION_BUCKETS)
        histogram.observe(seconds)
        if outcome == "ok" and op in ("get", "list"):
            self._wall_refresh = now

    @property
    def last_refresh(self) -> float:
        """Wall-clock time of the last successful read from the store (0: none yet).

        The miss path notes its reads on the monotonic clock (``refreshed_at``),
        which is put on the wall clock here, once per new value: two readings of
        the same refresh agree.
        """
        refreshed_at = self.refreshed_at
        if refreshed_at != self._derived_at:
            elapsed = time.monotonic() - refreshed_at
            self._derived_wall = time.time() - elapsed
            self._derived_at = refreshed_at
        return max(self._wall_refresh, self._derived_wall)

    def requests(self) -> dict[tuple[str, str], int]:
        """Store calls by ``(op, outcome)``, the miss path's counted gets included."""
        result = dict(self.store_requests)
        if self.gets_ok:
            result["get", "ok"] = result.get(("get", "ok"), 0) + self.gets_ok
        return result

    def histograms(self) -> dict[str, Histogram]:
        """Copies of the store call durations by op (only ops called at least once)."""
        result = {op: h.copy() for op, h in list(self.durations.items())}
        durations = self.get_durations.copy()
        slow = list(self.slow_gets)
        counts = durations.counts
        for bucket, n in enumerate(slow):
            counts[bucket] += n
        counts[0] += self.gets_ok - sum(slow)  # the miss path's gets in the first bucket
        durations.sum += self.get_seconds
        if durations.count:
            result["get"] = durations
        return dict(sorted(result.items()))


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
    #: whether the store's watch runs on a live connection; None when the client runs none
    watch_connected: bool | None
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
    """Called by every new client: report it while it lives."""
    with _live_lock:
        _live.add(client)


def live_clients() -> Iterator[Client]:
    """Every client that is neither closed nor collected."""
    with _live_lock:
        clients = list(_live)
    return (client for client in clients if not client.closed)


def count_hits(on: bool) -> None:
    """An exporter starts (``on``) or stops wanting cache hits counted, in every
    client, live and future. Counting stays on while any exporter wants it."""
    from veltrix.client import count_hits_in_all_clients

    global _hit_counters
    with _live_lock:
        _hit_counters = max(0, _hit_counters + (1 if on else -1))
        count_hits_in_all_clients(_hit_counters > 0)


def counting_hits() -> bool:
    return _hit_counters > 0


# -- readings ---------------------------------------------------------------------------


def _all_known(values: Iterable[bool | None]) -> bool | None:
    """True when every known value is; None when none is known."""
    known = [value for value in values if value is not None]
    return all(known) if known else None


def merge(readings: Iterable[ClientReading]) -> list[ClientReading]:
    """One reading per client name: counters and histograms added, ``store_up`` and
    ``watch_connected`` only when all are, ages and timestamps the highest."""
    by_name: dict[str, list[ClientReading]] = {}
    for reading in readings:
        by_name.setdefault(reading.name, []).append(reading)
    merged = []
    for name, group in by_name.items():
        if len(group) == 1:
            merged.append(group[0])
            continue
        merged.append(_combine(name, group))
    return merged


def _add(dicts: Iterable[dict[Any, int]]) -> dict[Any, int]:
    total: dict[Any, int] = {}
    for item in dicts:
        for key, value in item.items():
            total[key] = total.get(key, 0) + value
    return total


def _add_histograms(histograms: list[Histogram]) -> Histogram:
    total = histograms[0].copy()
    for other in histograms[1:]:
        total.counts = [a + b for a, b in zip(total.counts, other.counts, strict=True)]
        total.sum += other.sum
    return total


def _combine(name: str, group: list[ClientReading]) -> ClientReading:
    ops: dict[str, list[Histogram]] = {}
    for reading in group:
        for op, histogram in reading.durations.items():
            ops.setdefault(op, []).append(histogram)
    l2s = [r.l2 for r in group if r.l2 is not None]
    return ClientReading(
        name=name,
        cache=_add(r.cache for r in group),
        store_requests=_add(r.store_requests for r in group),
        durations={op: _add_histograms(h) for op, h in ops.items()},
        store_up=all(r.store_up for r in group),
        last_refresh=max(r.last_refresh for r in group),
        stale_age=max(r.stale_age for r in group),
        watch_connected=_all_known(r.watch_connected for r in group),
        watch_events=sum(r.watch_events for r in group),
        watch_reconnects=sum(r.watch_reconnects for r in group),
        watch_lag=_add_histograms([r.watch_lag for r in group]),
        coalesced=sum(r.coalesced for r in group),
        cached_keys=sum(r.cached_keys for r in group),
        l2=L2Reading(
            requests=_add(x.requests for x in l2s),
            circuit_open=any(x.circuit_open for x in l2s),
            bus=_add(x.bus for x in l2s),
        )
        if l2s
        else None,
    )


def readings() -> list[ClientReading]:
    """One reading per client name, of every live client, taken now."""
    return merge(client._reading() for client in live_clients())


__all__ = [
    "DURATION_BUCKETS",
    "FAMILIES",
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
    "merge",
    "readings",
    "track",
]
