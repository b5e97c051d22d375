"""Prometheus metrics for every live client: ``veltrix.metrics.install()``.

Needs the ``metrics`` extra (``pip install 'veltrix[metrics]'``, which brings
``prometheus-client``). :func:`install` registers one collector that, at scrape
time, reads the counters every live :class:`veltrix.Client` keeps anyway
(:mod:`veltrix.instruments`): nothing is computed per read, and a client that is
closed or garbage-collected disappears from the next scrape. Cache hits are
counted only while metrics are installed (a few nanoseconds per hit; see
docs/metrics.md for the measured figure).

Several clients with one ``name`` are reported as one: their counters are
added, ``veltrix_store_up`` is the lowest, ages and timestamps the highest.

**Multiprocess mode** (gunicorn-style workers with ``PROMETHEUS_MULTIPROC_DIR``
set): prometheus-client does not aggregate custom collectors across processes,
so there :func:`install` registers nothing. Each process instead writes its
values through prometheus-client's own multiprocess-aware metric objects
(which live in that directory's files): a daemon thread syncs every
``sync_interval`` seconds and at exit, and :func:`sync` does it on demand.
Counters are advanced by each client's increase since the last sync, so they
never go back when a client goes away. The process serving ``/metrics`` reads
the directory with ``prometheus_client.multiprocess.MultiProcessCollector`` as
usual; gauges use the ``live*`` modes, so call
``prometheus_client.multiprocess.mark_process_dead(pid)`` when a worker exits.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from veltrix import instruments
from veltrix.client import Client
from veltrix.instruments import FAMILIES, ClientReading, merge, readings
from veltrix.instruments import Histogram as Buckets


def _buckets(histogram: Buckets) -> list[tuple[str, float]]:
    return [
        ("+Inf" if bound == float("inf") else repr(bound), float(n))
        for bound, n in histogram.cumulative()
    ]


class VeltrixCollector(Collector):
    """Reports every live client at scrape time (registered by :func:`install`)."""

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the clients alive at scrape time

    def collect(self) -> Iterator[Metric]:
        return iter(families(readings()))


def families(current: list[ClientReading]) -> list[Metric]:
    """The metric families for these readings (exposed for tests and custom exporters)."""
    doc = FAMILIES
    cache = CounterMetricFamily(
        "veltrix_cache_requests", doc["veltrix_cache_requests"], labels=["client", "result"]
    )
    store = CounterMetricFamily(
        "veltrix_store_requests",
        doc["veltrix_store_requests"],
        labels=["client", "op", "outcome"],
    )
    duration = HistogramMetricFamily(
        "veltrix_store_request_duration_seconds",
        doc["veltrix_store_request_duration_seconds"],
        labels=["client", "op"],
    )
    up = GaugeMetricFamily("veltrix_store_up", doc["veltrix_store_up"], labels=["client"])
    refreshed = GaugeMetricFamily(
        "veltrix_refresh_last_success_timestamp_seconds",
        doc["veltrix_refresh_last_success_timestamp_seconds"],
        labels=["client"],
    )
    stale = GaugeMetricFamily(
        "veltrix_stale_value_age_seconds",
        doc["veltrix_stale_value_age_seconds"],
        labels=["client"],
    )
    watch_up = GaugeMetricFamily("veltrix_watch_up", doc["veltrix_watch_up"], labels=["client"])
    events = CounterMetricFamily(
        "veltrix_watch_events", doc["veltrix_watch_events"], labels=["client"]
    )
    reconnects = CounterMetricFamily(
        "veltrix_watch_reconnects", doc["veltrix_watch_reconnects"], labels=["client"]
    )
    lag = HistogramMetricFamily(
        "veltrix_watch_lag_seconds", doc["veltrix_watch_lag_seconds"], labels=["client"]
    )
    coalesced = CounterMetricFamily(
        "veltrix_singleflight_coalesced",
        doc["veltrix_singleflight_coalesced"],
        labels=["client"],
    )
    cached = GaugeMetricFamily("veltrix_cached_keys", doc["veltrix_cached_keys"], labels=["client"])
    l2 = CounterMetricFamily(
        "veltrix_l2_requests", doc["veltrix_l2_requests"], labels=["client", "result"]
    )
    circuit = GaugeMetricFamily(
        "veltrix_l2_circuit_open", doc["veltrix_l2_circuit_open"], labels=["client"]
    )
    bus = CounterMetricFamily(
        "veltrix_bus_messages", doc["veltrix_bus_messages"], labels=["client", "direction"]
    )
    for r in current:
        name = r.name
        for result, n in r.cache.items():
            cache.add_metric([name, result], n)
        for (op, outcome), n in sorted(r.store_requests.items()):
            store.add_metric([name, op, outcome], n)
        for op, histogram in sorted(r.durations.items()):
            duration.add_metric([name, op], _buckets(histogram), histogram.sum)
        up.add_metric([name], 1.0 if r.store_up else 0.0)
        refreshed.add_metric([name], r.last_refresh)
        stale.add_metric([name], r.stale_age)
        if r.watch_connected is not None:
            watch_up.add_metric([name], 1.0 if r.watch_connected else 0.0)
        events.add_metric([name], r.watch_events)
        reconnects.add_metric([name], r.watch_reconnects)
        lag.add_metric([name], _buckets(r.watch_lag), r.watch_lag.sum)
        coalesced.add_metric([name], r.coalesced)
        cached.add_metric([name], r.cached_keys)
        if r.l2 is not None:
            for result, n in r.l2.requests.items():
                l2.add_metric([name, result], n)
            circuit.add_metric([name], 1.0 if r.l2.circuit_open else 0.0)
            for direction, n in r.l2.bus.items():
                bus.add_metric([name, direction], n)
    return [
        cache,
        store,
        duration,
        up,
        refreshed,
        stale,
        watch_up,
        events,
        reconnects,
        lag,
        coalesced,
        cached,
        l2,
        circuit,
        bus,
    ]


# -- multiprocess mode ----------------------------------------------------------------


class MultiprocessSync:
    """Writes this process's clients into prometheus-client's multiprocess files.

    Counters advance by each live client's increase since the last sync (tracked
    per client, so a client going away never makes a counter go back); gauges are
    set from the per-name readings.
    """

    def __init__(self, interval: float) -> None:
        reg = CollectorRegistry()  # a private one: the directory's files are what counts
        doc = FAMILIES
        self._cache = Counter(
            "veltrix_cache_requests",
            doc["veltrix_cache_requests"],
            ["client", "result"],
            registry=reg,
        )
        self._store = Counter(
            "veltrix_store_requests",
            doc["veltrix_store_requests"],
            ["client", "op", "outcome"],
            registry=reg,
        )
        self._duration = Histogram(
            "veltrix_store_request_duration_seconds",
            doc["veltrix_store_request_duration_seconds"],
            ["client", "op"],
            buckets=instruments.DURATION_BUCKETS,
            registry=reg,
        )
        self._events = Counter(
            "veltrix_watch_events", doc["veltrix_watch_events"], ["client"], registry=reg
        )
        self._reconnects = Counter(
            "veltrix_watch_reconnects", doc["veltrix_watch_reconnects"], ["client"], registry=reg
        )
        self._lag = Histogram(
            "veltrix_watch_lag_seconds",
            doc["veltrix_watch_lag_seconds"],
            ["client"],
            buckets=instruments.LAG_BUCKETS,
            registry=reg,
        )
        self._coalesced = Counter(
            "veltrix_singleflight_coalesced",
            doc["veltrix_singleflight_coalesced"],
            ["client"],
            registry=reg,
        )
        self._l2 = Counter(
            "veltrix_l2_requests", doc["veltrix_l2_requests"], ["client", "result"], registry=reg
        )
        self._bus = Counter(
            "veltrix_bus_messages",
            doc["veltrix_bus_messages"],
            ["client", "direction"],
            registry=reg,
        )

        def gauge(name: str, mode: Any) -> Gauge:
            return Gauge(name, doc[name], ["client"], registry=reg, multiprocess_mode=mode)

        self._up = gauge("veltrix_store_up", "livemin")
        self._watch_up = gauge("veltrix_watch_up", "livemin")
        self._refreshed = gauge("veltrix_refresh_last_success_timestamp_seconds", "livemax")
        self._stale = gauge("veltrix_stale_value_age_seconds", "livemax")
        self._cached = gauge("veltrix_cached_keys", "livesum")
        self._circuit = gauge("veltrix_l2_circuit_open", "livemax")
        self._last: weakref.WeakKeyDictionary[Client, dict[Any, float]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="veltrix-metrics-sync", daemon=True
        )
        self._thread.start()
        atexit.register(self.sync)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.sync()

    def stop(self) -> None:
        self._stop.set()
        atexit.unregister(self.sync)
        self.sync()

    def sync(self) -> None:
        """Write every live client's current values (thread-safe)."""
        with self._lock:
            current = []
            for client in instruments.live_clients():
                reading = client._reading()
                current.append(reading)
                self._advance(client, reading)
            for r in merge(current):
                name = r.name
                self._up.labels(name).set(1.0 if r.store_up else 0.0)
                if r.watch_connected is not None:
                    self._watch_up.labels(name).set(1.0 if r.watch_connected else 0.0)
                self._refreshed.labels(name).set(r.last_refresh)
                self._stale.labels(name).set(r.stale_age)
                self._cached.labels(name).set(r.cached_keys)
                if r.l2 is not None:
                    self._circuit.labels(name).set(1.0 if r.l2.circuit_open else 0.0)

    def _advance(self, client: Client, r: ClientReading) -> None:
        last = self._last.setdefault(client, {})
        name = r.name

        def inc(counter: Counter, labels: tuple[str, ...], value: float) -> None:
            key = (counter._name, labels)
            delta = value - last.get(key, 0.0)
            if delta > 0:
                counter.labels(*labels).inc(delta)
                last[key] = value

        for result, n in r.cache.items():
            inc(self._cache, (name, result), n)
        for (op, outcome), n in r.store_requests.items():
            inc(self._store, (name, op, outcome), n)
        for op, histogram in r.durations.items():
            self._observe(last, self._duration, (name, op), histogram)
        inc(self._events, (name,), r.watch_events)
        inc(self._reconnects, (name,), r.watch_reconnects)
        self._observe(last, self._lag, (name,), r.watch_lag)
        inc(self._coalesced, (name,), r.coalesced)
        if r.l2 is not None:
            for result, n in r.l2.requests.items():
                inc(self._l2, (name, result), n)
            for direction, n in r.l2.bus.items():
                inc(self._bus, (name, direction), n)

    @staticmethod
    def _observe(
        last: dict[Any, Any], metric: Histogram, labels: tuple[str, ...], histogram: Buckets
    ) -> None:
        """Add the buckets observed since the last sync to prometheus-client's histogram.

        Its child keeps one (non-cumulative) value per bucket plus a sum, the same
        shape as ours, so the increase is added bucket by bucket.
        """
        key = (metric._name, labels)
        previous: Buckets | None = last.get(key)
        child: Any = metric.labels(*labels)
        for i, n in enumerate(histogram.counts):
            delta = n - (previous.counts[i] if previous is not None else 0)
            if delta > 0:
                child._buckets[i].inc(delta)
        sum_delta = histogram.sum - (previous.sum if previous is not None else 0.0)
        if sum_delta > 0:
            child._sum.inc(sum_delta)
        last[key] = histogram.copy()


# -- installation ---------------------------------------------------------------------


class Installation:
    """What :func:`install` did; :meth:`uninstall` undoes it."""

    def __init__(
        self,
        registry: CollectorRegistry | None,
        collector: VeltrixCollector | None,
        syncer: MultiprocessSync | None,
    ) -> None:
        self.registry = registry
        self.collector = collector
        self.syncer = syncer

    @property
    def multiprocess(self) -> bool:
        return self.syncer is not None

    def sync(self) -> None:
        """Multiprocess mode: write this process's values now (no-op otherwise)."""
        if self.syncer is not None:
            self.syncer.sync()

    def uninstall(self) -> None:
        with _install_lock:
            if self not in _installed:
                return
            _installed.remove(self)
        if self.collector is not None and self.registry is not None:
            self.registry.unregister(self.collector)
        if self.syncer is not None:
            self.syncer.stop()
        instruments.count_hits(False)


_installed: list[Installation] = []
_install_lock = threading.Lock()


def multiprocess_mode() -> bool:
    """Whether prometheus-client writes to a multiprocess directory in this process."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def install(
    registry: CollectorRegistry | None = None,
    *,
    multiprocess: bool | None = None,
    sync_interval: float = 1.0,
) -> Installation:
    """Report every live client to Prometheus; returns the :class:`Installation`.

    ``registry``: where the collector goes (default: prometheus-client's global
    registry). ``multiprocess``: default on when ``PROMETHEUS_MULTIPROC_DIR`` is
    set; then nothing is registered and this process's values are written to the
    directory every ``sync_interval`` seconds (see the module doc). Installing
    twice into one registry returns the first installation.
    """
    if isinstance(sync_interval, bool) or not (
        isinstance(sync_interval, int | float) and 0 < sync_interval <= 3600
    ):
        from veltrix.errors import ConfigurationError

        raise ConfigurationError("sync_interval must be a number of seconds from 0 to 3600")
    if multiprocess is None:
        multiprocess = multiprocess_mode()
    with _install_lock:
        for existing in _installed:
            if existing.multiprocess == multiprocess and (
                multiprocess or existing.registry is (registry or REGISTRY)
            ):
                return existing
        if multiprocess:
            installation = Installation(None, None, MultiprocessSync(sync_interval))
        else:
            target = REGISTRY if registry is None else registry
            collector = VeltrixCollector()
            target.register(collector)
            installation = Installation(target, collector, None)
        _installed.append(installation)
    instruments.count_hits(True)
    return installation


def sync() -> None:
    """Multiprocess mode: write this process's values now (also done periodically)."""
    for installation in list(_installed):
        installation.sync()


def uninstall_all() -> None:
    """Undo every :func:`install` (tests)."""
    for installation in list(_installed):
        installation.uninstall()


__all__ = [
    "FAMILIES",
    "Installation",
    "MultiprocessSync",
    "VeltrixCollector",
    "families",
    "install",
    "multiprocess_mode",
    "readings",
    "sync",
    "uninstall_all",
]
