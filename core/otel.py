"""OpenTelemetry metrics for every live client: ``veltrix.otel.install()``.

Needs the ``otel`` extra (``pip install 'veltrix[otel]'``, which brings
``opentelemetry-api``); the application brings the SDK and its exporters. The
instruments are the Prometheus families of :mod:`veltrix.metrics`, under the
same names (without ``_total``: an OpenTelemetry exporter adds what its backend
wants), as *observable* instruments: their callbacks read the counters every
client keeps anyway (:mod:`veltrix.instruments`) when the SDK collects.

OpenTelemetry has no observable histogram, so each of the two histograms
(store call durations, watch lag) is reported as observable counters, as a classic
Prometheus histogram is: ``..._count``, ``..._sum`` and ``..._bucket`` (cumulative,
one point per upper bound, attribute ``le``, the last ``+Inf``), which a backend can
turn into quantiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

import veltrix
from veltrix import instruments
from veltrix.instruments import ClientReading, Histogram

Rows = Callable[[ClientReading], Iterable[tuple[float, dict[str, str]]]]


def _buckets(
    histogram: Histogram, attributes: dict[str, str]
) -> list[tuple[float, dict[str, str]]]:
    """Cumulative bucket counts of ``histogram``, one row per upper bound (``le``)."""
    rows: list[tuple[float, dict[str, str]]] = []
    total = 0
    bounds = [*(repr(float(bound)) for bound in histogram.bounds), "+Inf"]  # as Prometheus
    for bound, count in zip(bounds, histogram.counts, strict=True):
        total += count
        rows.append((total, {**attributes, "le": bound}))
    return rows


def _rows() -> list[tuple[str, str, str, str, Rows]]:
    """(kind, name, unit, description, reading -> [(value, extra attributes)])."""
    doc = instruments.FAMILIES

    def l2_rows(r: ClientReading) -> Iterable[tuple[float, dict[str, str]]]:
        if r.l2 is None:
            return []
        return [(n, {"result": result}) for result, n in r.l2.requests.items()]

    def bus_rows(r: ClientReading) -> Iterable[tuple[float, dict[str, str]]]:
        if r.l2 is None:
            return []
        return [(n, {"direction": direction}) for direction, n in r.l2.bus.items()]

    duration = "veltrix_store_request_duration_seconds"
    lag = "veltrix_watch_lag_seconds"
    return [
        (
            "counter",
            "veltrix_cache_requests",
            "1",
            doc["veltrix_cache_requests"],
            lambda r: [(n, {"result": k}) for k, n in r.cache.items()],
        ),
        (
            "counter",
            "veltrix_store_requests",
            "1",
            doc["veltrix_store_requests"],
            lambda r: [
                (n, {"op": op, "outcome": outcome}) for (op, outcome), n in r.store_requests.items()
            ],
        ),
        (
            "counter",
            duration + "_count",
            "1",
            doc[duration] + " (count)",
            lambda r: [(h.count, {"op": op}) for op, h in r.durations.items()],
        ),
        (
            "counter",
            duration + "_sum",
            "s",
            doc[duration] + " (sum)",
            lambda r: [(h.sum, {"op": op}) for op, h in r.durations.items()],
        ),
        (
            "counter",
            duration + "_bucket",
            "1",
            doc[duration] + " (cumulative count per upper bound, le)",
            lambda r: [row for op, h in r.durations.items() for row in _buckets(h, {"op": op})],
        ),
        (
            "gauge",
            "veltrix_store_up",
            "1",
            doc["veltrix_store_up"],
            lambda r: [(1.0 if r.store_up else 0.0, {})],
        ),
        (
            "gauge",
            "veltrix_refresh_last_success_timestamp_seconds",
            "s",
            doc["veltrix_refresh_last_success_timestamp_seconds"],
            lambda r: [(r.last_refresh, {})],
        ),
        (
            "gauge",
            "veltrix_stale_value_age_seconds",
            "s",
            doc["veltrix_stale_value_age_seconds"],
            lambda r: [(r.stale_age, {})],
        ),
        (
            "gauge",
            "veltrix_watch_up",
            "1",
            doc["veltrix_watch_up"],
            lambda r: (
                [] if r.watch_connected is None else [(1.0 if r.watch_connected else 0.0, {})]
            ),
        ),
        (
            "counter",
            "veltrix_watch_events",
            "1",
            doc["veltrix_watch_events"],
            lambda r: [(r.watch_events, {})],
        ),
        (
            "counter",
            "veltrix_watch_reconnects",
            "1",
            doc["veltrix_watch_reconnects"],
            lambda r: [(r.watch_reconnects, {})],
        ),
        (
            "counter",
            lag + "_count",
            "1",
            doc[lag] + " (count)",
            lambda r: [(r.watch_lag.count, {})],
        ),
        ("counter", lag + "_sum", "s", doc[lag] + " (sum)", lambda r: [(r.watch_lag.sum, {})]),
        (
            "counter",
            lag + "_bucket",
            "1",
            doc[lag] + " (cumulative count per upper bound, le)",
            lambda r: _buckets(r.watch_lag, {}),
        ),
        (
            "counter",
            "veltrix_singleflight_coalesced",
            "1",
            doc["veltrix_singleflight_coalesced"],
            lambda r: [(r.coalesced, {})],
        ),
        (
            "gauge",
            "veltrix_cached_keys",
            "1",
            doc["veltrix_cached_keys"],
            lambda r: [(r.cached_keys, {})],
        ),
        ("counter", "veltrix_l2_requests", "1", doc["veltrix_l2_requests"], l2_rows),
        (
            "gauge",
            "veltrix_l2_circuit_open",
            "1",
            doc["veltrix_l2_circuit_open"],
            lambda r: [] if r.l2 is None else [(1.0 if r.l2.circuit_open else 0.0, {})],
        ),
        ("counter", "veltrix_bus_messages", "1", doc["veltrix_bus_messages"], bus_rows),
    ]


class OtelInstallation:
    """What :func:`install` did; :meth:`uninstall` stops hit counting and silences the
    callbacks (OpenTelemetry's API cannot remove an instrument)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.active = True

    def uninstall(self) -> None:
        if self.active:
            self.active = False
            instruments.count_hits(False)


def install(meter_provider: MeterProvider | None = None) -> OtelInstallation:
    """Report every live client through OpenTelemetry observable instruments.

    ``meter_provider``: default the global one (``opentelemetry.metrics``).
    """
    provider = meter_provider or otel_metrics.get_meter_provider()
    meter = provider.get_meter("veltrix", veltrix.__version__)
    installation = OtelInstallation(meter)

    def callback(rows: Rows) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if not installation.active:
                return []
            return [
                Observation(value, {"client": r.name, **extra})
                for r in instruments.readings()
                for value, extra in rows(r)
            ]

        return observe

    for kind, name, unit, description, rows in _rows():
        create: Any = (
            meter.create_observable_counter if kind == "counter" else meter.create_observable_gauge
        )
        create(name, callbacks=[callback(rows)], unit=unit, description=description)
    instruments.count_hits(True)
    return installation


__all__ = ["OtelInstallation", "install"]
