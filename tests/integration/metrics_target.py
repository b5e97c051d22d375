"""A process for Prometheus to scrape: Veltrix clients over real stores, kept busy.

Run by tests/integration/test_prometheus.py as
``python -m tests.integration.metrics_target RUN ZK_HOSTS SHARED_REDIS_URL STORE_REDIS_URL DIR``.
It starts three named clients (``RUN-sqlite``, ``RUN-zookeeper`` with the shared Redis as
its L2 cache and bus, ``RUN-redis`` on a Redis server the test owns and later kills),
installs the metrics collector, serves ``/metrics`` on an ephemeral loopback port,
prints ``PORT <n>`` and then reads and writes until its standard input closes.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from prometheus_client import start_http_server

import veltrix
import veltrix.metrics
from veltrix.errors import VeltrixError

KEYS = [f"app/key{i}" for i in range(5)]
READERS_PER_CLIENT = 3


def _busy(client: veltrix.Client, stop: threading.Event, *, writer: bool) -> None:
    """Read every key (and one that never exists) in a loop; the writer also changes a
    key every 0.2 s so the store's watch has something to deliver."""
    written = 0
    next_write = 0.0
    while not stop.is_set():
        try:
            for key in KEYS:
                client.get(key, default="")
            client.get("app/never-written", default="")
            if writer and time.monotonic() >= next_write:
                written += 1
                client.put(KEYS[0], str(written))
                next_write = time.monotonic() + 0.2
        except VeltrixError:  # the killed store: the metrics tell, the loop goes on
            pass
        time.sleep(0.005)


def main(run: str, zk_hosts: str, shared_redis: str, store_redis: str, work_dir: str) -> None:
    policy = veltrix.CachePolicy(ttl=0.5, negative_ttl=0.5, error_backoff=0.3, track_hits=True)
    clients = [
        veltrix.Client(
            f"sqlite:///{Path(work_dir) / 'config.db'}", cache=policy, name=f"{run}-sqlite"
        ),
        veltrix.Client(
            f"zookeeper://{zk_hosts}/{run}",
            cache=policy,
            cache_url=shared_redis,
            name=f"{run}-zookeeper",
        ),
        veltrix.Client(store_redis, cache=policy, name=f"{run}-redis"),
    ]
    for client in clients:
        for key in KEYS:
            client.put(key, "0")
    veltrix.metrics.install()
    server, _ = start_http_server(0, addr="127.0.0.1")
    stop = threading.Event()
    threads = [
        threading.Thread(target=_busy, args=(client, stop), kwargs={"writer": i == 0}, daemon=True)
        for client in clients
        for i in range(READERS_PER_CLIENT)
    ]
    for thread in threads:
        thread.start()
    print(f"PORT {server.server_port}", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or exits)
    stop.set()
    for thread in threads:
        thread.join(5)
    for client in clients:
        client.close()
    server.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:6])
