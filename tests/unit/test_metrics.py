"""veltrix.metrics: the Prometheus collector read through prometheus-client itself."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import veltrix
from tests.unit.stores import ControlledStore, wait_until
from veltrix import metrics
from veltrix.errors import ConfigurationError, VersionConflictError


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    reg = CollectorRegistry()
    installation = metrics.install(reg, multiprocess=False)
    yield reg
    installation.uninstall()


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def client_on(store: ControlledStore, name: str, **policy: object) -> veltrix.Client:
    policy.setdefault("watch", False)
    policy.setdefault("retries", 0)
    return veltrix.Client(store, cache=veltrix.CachePolicy(**policy), name=name)  # type: ignore[arg-type]


def test_cache_results_and_store_calls(store: ControlledStore, registry: CollectorRegistry) -> None:
    store.put("app/a", b"1")
    with client_on(store, "cache-results", ttl=60, negative_ttl=60) as client:
        for _ in range(5):
            assert client.get("app/a") == "1"
        assert client.get("app/none", default=None) is None
        assert client.get("app/none", default=None) is None
        client.put("app/b", "2")
        with pytest.raises(VersionConflictError):
            client.put("app/b", "3", if_version="999")
        c = "cache-results"
        assert value(registry, "veltrix_cache_requests_total", client=c, result="hit") == 4
        assert value(registry, "veltrix_cache_requests_total", client=c, result="miss") == 2
        assert value(registry, "veltrix_cache_requests_total", client=c, result="negative") == 1
        assert value(registry, "veltrix_cache_requests_total", client=c, result="stale") == 0
        store_ok = value(registry, "veltrix_store_requests_total", client=c, op="get", outcome="ok")
        assert store_ok == 2
        assert (
            value(registry, "veltrix_store_requests_total", client=c, op="put", outcome="ok") == 1
        )
        assert (
            value(registry, "veltrix_store_requests_total", client=c, op="put", outcome="conflict")
            == 1
        )
        count = value(registry, "veltrix_store_request_duration_seconds_count", client=c, op="get")
        inf = value(
            registry,
            "veltrix_store_request_duration_seconds_bucket",
            client=c,
            op="get",
            le="+Inf",
        )
        assert count == inf == 2
        assert value(registry, "veltrix_store_up", client=c) == 1
        assert value(registry, "veltrix_cached_keys", client=c) == 3  # a, none (absent), b
        refreshed = value(registry, "veltrix_refresh_last_success_timestamp_seconds", client=c)
        assert refreshed is not None and abs(refreshed - time.time()) < 60
        assert value(registry, "veltrix_stale_value_age_seconds", client=c) == 0
        text = generate_latest(registry).decode()
        assert "# TYPE veltrix_cache_requests_total counter" in text
        assert "# TYPE veltrix_store_request_duration_seconds histogram" in text
        # Values never reach the exposition.
        assert 'client="cache-results"' in text


def test_store_down_flips_up_and_grows_stale_age(
    store: ControlledStore, registry: CollectorRegistry
) -> None:
    store.put("app/a", b"1")
    with client_on(store, "outage", ttl=0.05, error_backoff=0.05) as client:
        assert client.get("app/a") == "1"
        store.go_down()
        time.sleep(0.1)
        assert client.get("app/a") == "1"  # served stale
        assert value(registry, "veltrix_store_up", client="outage") == 0
        assert value(registry, "veltrix_cache_requests_total", client="outage", result="stale")
        first = value(registry, "veltrix_stale_value_age_seconds", client="outage")
        assert first is not None and first > 0.04
        time.sleep(0.1)
        second = value(registry, "veltrix_stale_value_age_seconds", client="outage")
        assert second is not None and second >= first + 0.09
        unavailable = value(
            registry,
            "veltrix_store_requests_total",
            client="outage",
            op="get",
            outcome="unavailable",
        )
        assert unavailable is not None and unavailable >= 1
        store.come_back()
        assert wait_until(lambda: client.get("app/a") == "1" and client.health().up, timeout=3)
        assert wait_until(
            lambda: value(registry, "veltrix_stale_value_age_seconds", client="outage") == 0,
            timeout=3,
        )
        assert value(registry, "veltrix_store_up", client="outage") == 1


def test_closed_and_collected_clients_disappear(
    store: ControlledStore, registry: CollectorRegistry
) -> None:
    closed = client_on(store, "closed-one")
    collected = client_on(store, "collected-one")
    assert value(registry, "veltrix_store_up", client="closed-one") == 1
    assert value(registry, "veltrix_store_up", client="collected-one") == 1
    closed.close()
    assert value(registry, "veltrix_store_up", client="closed-one") is None
    del collected
    gc.collect()
    assert value(registry, "veltrix_store_up", client="collected-one") is None


def test_clients_sharing_a_name_are_added(
    store: ControlledStore, registry: CollectorRegistry
) -> None:
    store.put("k", b"v")
    with client_on(store, "twins") as one, client_on(store, "twins") as two:
        one.get("k")
        two.get("k")
        two.get("k")
        assert value(registry, "veltrix_cache_requests_total", client="twins", result="miss") == 2
        assert value(registry, "veltrix_cache_requests_total", client="twins", result="hit") == 1
        text = generate_latest(registry).decode()
        assert text.count('veltrix_store_up{client="twins"}') == 1


def test_default_name_is_the_redacted_url(registry: CollectorRegistry) -> None:
    with veltrix.Client("memory://metrics-default-name") as client:
        assert client.name == client.source == "memory://metrics-default-name"
        assert value(registry, "veltrix_store_up", client=client.name) == 1


def test_bad_name_is_refused(store: ControlledStore) -> None:
    with pytest.raises(ConfigurationError):
        veltrix.Client(store, name="")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        veltrix.Client(store, name=3)  # type: ignore[arg-type]


def test_hits_are_counted_only_while_installed(store: ControlledStore) -> None:
    store.put("k", b"v")
    with client_on(store, "toggle") as client:
        client.get("k")
        client.get("k")
        assert "hits" not in client.stats()  # not counting: Client.get is the plain one
        assert not client.counting_hits
        assert veltrix.Client.get is veltrix.Client._get_plain
        reg = CollectorRegistry()
        installation = metrics.install(reg, multiprocess=False)
        try:
            assert client.counting_hits  # a live client starts counting
            assert veltrix.Client.get is veltrix.Client._get_counting
            for _ in range(2100):  # past two carries of the batch (every 1024 hits)
                client.get("k")
            with client_on(store, "toggle-late") as late:  # and so does a new one
                late.get("k")
                late.get("k")
                assert (
                    value(reg, "veltrix_cache_requests_total", client="toggle-late", result="hit")
                    == 1
                )
            assert value(reg, "veltrix_cache_requests_total", client="toggle", result="hit") == 2100
            assert client.stats()["hits"] == 2100
            assert metrics.install(reg, multiprocess=False) is installation
        finally:
            installation.uninstall()
        assert not client.counting_hits
        assert veltrix.Client.get is veltrix.Client._get_plain
        assert reg.get_sample_value("veltrix_store_up", {"client": "toggle"}) is None


def test_watch_events_lag_and_coalescing(registry: CollectorRegistry) -> None:
    with (
        veltrix.Client(
            "memory://metrics-watch", name="watcher", cache=veltrix.CachePolicy(ttl=60)
        ) as reader,
        veltrix.Client("memory://metrics-watch", name="writer") as writer,
    ):
        writer.put("app/k", "1")
        assert reader.get("app/k") == "1"
        writer.put("app/k", "2")
        assert wait_until(lambda: reader.get("app/k") == "2", timeout=3)
        events = value(registry, "veltrix_watch_events_total", client="watcher")
        assert events is not None and events >= 1
        lag = value(registry, "veltrix_watch_lag_seconds_count", client="watcher")
        assert lag is not None and lag >= 1
        assert value(registry, "veltrix_watch_reconnects_total", client="watcher") == 0
        assert value(registry, "veltrix_watch_up", client="watcher") == 1.0
        # A client that runs no watch has no watch_up series (no false "watch down").
        with veltrix.Client(
            "memory://metrics-watch", name="unwatched", cache=veltrix.CachePolicy(watch=False)
        ) as unwatched:
            assert unwatched.get("app/k") == "2"
            assert value(registry, "veltrix_store_up", client="unwatched") == 1.0
            assert value(registry, "veltrix_watch_up", client="unwatched") is None


def test_singleflight_coalesced(store: ControlledStore, registry: CollectorRegistry) -> None:
    import threading

    store.put("slow", b"v")
    store.delay = 0.2
    with client_on(store, "flights", ttl=60) as client:
        threads = [threading.Thread(target=client.get, args=("slow",)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.gets == 1
        assert value(registry, "veltrix_singleflight_coalesced_total", client="flights") == 3


def test_sync_interval_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        metrics.install(CollectorRegistry(), multiprocess=False, sync_interval=0)


def test_metrics_overhead_benchmark_runs() -> None:
    from benchmarks import metrics_overhead

    data = metrics_overhead.run(quick=True)
    assert set(data["results"]) == set(metrics_overhead.NAMES)
    assert all(f["median_ns"] > 0 for f in data["results"].values())
    assert veltrix.Client.get is veltrix.Client._get_plain  # switched back afterwards
    assert "Added per hit" in metrics_overhead.markdown(data)


def test_async_client_hits_are_counted(registry: CollectorRegistry) -> None:
    import asyncio

    from veltrix.aio import AsyncClient

    async def main() -> None:
        async with AsyncClient("memory://metrics-aio", name="async-reader") as client:
            await client.put("app/k", "v")
            for _ in range(5):
                assert await client.get("app/k") == "v"
            assert await client.get("app/none", None) is None
            hits = value(
                registry, "veltrix_cache_requests_total", client="async-reader", result="hit"
            )
            assert hits == 5
            assert AsyncClient.get is AsyncClient._get_counting

    asyncio.run(main())
