"""veltrix.otel: the same instruments read by the OpenTelemetry SDK's InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import veltrix
from tests.unit.stores import ControlledStore
from veltrix import otel


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    if data is None:  # nothing observed at all
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def value(found: dict[str, list[Any]], name: str, **attributes: str) -> float | None:
    for point in found.get(name, []):
        if dict(point.attributes) == attributes:
            return float(point.value)
    return None


def test_instruments_read_the_client_counters(store: ControlledStore) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    installation = otel.install(provider)
    try:
        store.put("app/k", b"v")
        policy = veltrix.CachePolicy(ttl=60, watch=False, retries=0)
        with veltrix.Client(store, cache=policy, name="otel-client") as client:  # type: ignore[arg-type]
            for _ in range(3):
                client.get("app/k")
            client.get("app/absent", None)
            found = points(reader)
            c = "otel-client"
            assert value(found, "veltrix_cache_requests", client=c, result="hit") == 2
            assert value(found, "veltrix_cache_requests", client=c, result="miss") == 2
            ok = value(found, "veltrix_store_requests", client=c, op="get", outcome="ok")
            assert ok == 2
            count = value(found, "veltrix_store_request_duration_seconds_count", client=c, op="get")
            assert count == 2
            buckets = "veltrix_store_request_duration_seconds_bucket"
            assert value(found, buckets, client=c, op="get", le="+Inf") == 2
            assert value(found, buckets, client=c, op="get", le="10.0") == 2  # cumulative
            assert value(found, "veltrix_watch_lag_seconds_bucket", client=c, le="+Inf") == 0
            assert value(found, "veltrix_store_up", client=c) == 1
            assert value(found, "veltrix_cached_keys", client=c) == 2
            assert value(found, "veltrix_l2_circuit_open", client=c) is None  # no L2
            store.go_down()
            client.invalidate("app/k")
            with pytest.raises(veltrix.errors.BackendUnavailableError):
                client.get("app/k")
            assert value(points(reader), "veltrix_store_up", client=c) == 0
        assert value(points(reader), "veltrix_store_up", client=c) is None  # closed: gone
    finally:
        installation.uninstall()
        provider.shutdown()
    assert not client.counting_hits
