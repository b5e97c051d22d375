"""Metrics against real servers: a Redis store through a TCP proxy we stop, and the L2.

The shared Redis server keeps running (other tests use it); the client talks to
it through a loopback proxy owned by this test, and stopping the proxy is the
outage: ``veltrix_store_up`` drops to 0 and ``veltrix_stale_value_age_seconds``
grows while the cached value is served, then both recover with the proxy.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

import veltrix
from tests.support import server_env, unique_name
from veltrix import metrics


class Proxy:
    """Forwards loopback TCP connections to ``target``; :meth:`stop` cuts every one."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._sockets += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._thread.join(timeout=2)


@pytest.fixture
def redis_target() -> tuple[str, int]:
    url = urlsplit(server_env("VELTRIX_TEST_REDIS_URL", "Redis server"))
    return url.hostname or "127.0.0.1", url.port or 6379


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    reg = CollectorRegistry()
    installation = metrics.install(reg, multiprocess=False)
    yield reg
    installation.uninstall()


def test_store_up_and_stale_age_follow_a_real_outage(
    redis_target: tuple[str, int], registry: CollectorRegistry
) -> None:
    proxy = Proxy(redis_target)
    port = proxy.port
    name = unique_name("metrics-outage")
    key = f"{name}/timeout"
    policy = veltrix.CachePolicy(ttl=0.3, watch=False, retries=0, error_backoff=0.2)

    def sample(metric: str, **labels: str) -> float | None:
        return registry.get_sample_value(metric, {"client": name, **labels})

    with veltrix.Client(
        f"redis://127.0.0.1:{port}/0?timeout=0.5", cache=policy, name=name
    ) as client:
        try:
            client.put(key, "250")
            client.invalidate(key)
            assert client.get(key) == "250"  # read from the store through the proxy
            assert sample("veltrix_store_up") == 1
            assert sample("veltrix_stale_value_age_seconds") == 0
            assert sample("veltrix_store_requests_total", op="get", outcome="ok") == 1

            proxy.stop()  # the outage
            time.sleep(0.4)  # past the TTL
            assert client.get(key) == "250"  # served stale
            assert sample("veltrix_store_up") == 0
            first = sample("veltrix_stale_value_age_seconds")
            assert first is not None and first > 0.05
            time.sleep(0.3)
            assert client.get(key) == "250"
            second = sample("veltrix_stale_value_age_seconds")
            assert second is not None and second >= first + 0.25
            failed = sample("veltrix_store_requests_total", op="get", outcome="unavailable")
            assert failed is not None and failed >= 1
            assert (sample("veltrix_cache_requests_total", result="stale") or 0) >= 2

            proxy = Proxy(redis_target, port)  # the store is back
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and sample("veltrix_store_up") != 1:
                client.get(key)  # reads start the probe that finds it back
                time.sleep(0.05)
            assert sample("veltrix_store_up") == 1
            assert client.get(key) == "250"
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and sample("veltrix_stale_value_age_seconds"):
                client.get(key)
                time.sleep(0.05)
            assert sample("veltrix_stale_value_age_seconds") == 0
            client.delete(key)
        finally:
            proxy.stop()


def test_l2_families_with_a_real_shared_cache(registry: CollectorRegistry, tmp_path: Path) -> None:
    redis_url = server_env("VELTRIX_TEST_REDIS_URL", "Redis server")
    name = unique_name("metrics-l2")
    policy = veltrix.CachePolicy(ttl=30, watch=False)
    store = f"sqlite:///{tmp_path / 'config.db'}"

    def sample(metric: str, client: str, **labels: str) -> float | None:
        return registry.get_sample_value(metric, {"client": client, **labels})

    with (
        veltrix.Client(store, cache=policy, cache_url=redis_url, name=f"{name}-a") as a,
        veltrix.Client(store, cache=policy, cache_url=redis_url, name=f"{name}-b") as b,
    ):
        assert a._l2 is not None and b._l2 is not None
        assert a._l2.wait_ready(5) and b._l2.wait_ready(5)
        a.put("app/k", "1")  # written through to L2 and announced on the bus
        b.get("app/k")  # an L2 hit: no store call
        assert sample("veltrix_l2_requests_total", f"{name}-b", result="hit") == 1
        assert sample("veltrix_store_requests_total", f"{name}-b", op="get", outcome="ok") is None
        assert sample("veltrix_l2_circuit_open", f"{name}-a") == 0
        assert (sample("veltrix_bus_messages_total", f"{name}-a", direction="sent") or 0) >= 1
        b.get("app/missing", None)  # an L2 miss: the store is asked
        assert sample("veltrix_l2_requests_total", f"{name}-b", result="miss") == 1
        health = b.health()
        assert health.l2 is not None and not health.l2.circuit_open and health.l2.bus_connected


def test_zookeeper_watch_lag_from_the_znode_mtime(
    zk_hosts: str, registry: CollectorRegistry
) -> None:
    url = f"zookeeper://{zk_hosts}/{unique_name('metrics-lag')}"
    name = unique_name("zk-watcher")
    with (
        veltrix.Client(url, cache=veltrix.CachePolicy(ttl=60), name=name) as reader,
        veltrix.Client(url, name=f"{name}-writer") as writer,
    ):
        writer.put("app/k", "1")
        assert reader.get("app/k") == "1"  # starts the watch
        writer.put("app/k", "2")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and reader.get("app/k") != "2":
            time.sleep(0.01)
        assert reader.get("app/k") == "2"
        count = registry.get_sample_value("veltrix_watch_lag_seconds_count", {"client": name})
        total = registry.get_sample_value("veltrix_watch_lag_seconds_sum", {"client": name})
        assert count is not None and count >= 1
        assert total is not None and 0 <= total / count < 5  # same host: the clocks agree
        assert reader.health().watch_connected is True
