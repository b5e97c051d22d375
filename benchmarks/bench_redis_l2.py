"""Shared Redis cache (L2) benchmarks against the real Redis (``scripts/services up redis``).

    .venv/bin/python -m benchmarks.bench_redis_l2 [--quick]

1. Fleet: 1, 2, 4, 8, 16 processes (``benchmarks/redis_fleet.py``), 2 reader threads
   each, reading 4 hot keys for a few seconds with a short TTL (0.2 s, so refreshes
   dominate), against a SQLite store that counts the reads reaching it and adds
   2 ms per read (a store round trip). With and without ``cache_url``: store
   calls/s and client reads/s (all processes together).
2. Write -> every client's L1 updated: 8 clients (own Redis connections and bus
   listeners) in one process, store watch off so only the bus carries the change;
   the time from the start of ``put`` until ``get`` on every other client returns
   the new value (installed in L1 by the bus listener from the message's payload, or
   read from L2 by ``get`` after the bus dropped the old value), p50 / p99.

Prints a markdown section and writes the figures to ``benchmarks/results/redis_l2.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from benchmarks._common import (
    REPO_ROOT,
    latency_summary,
    load_services_env,
    machine,
    package_versions,
    write_json,
)
from benchmarks.redis_fleet import run_fleet
from veltrix import CachePolicy, Client
from veltrix.adapters.sqlite import SQLiteBackend
from veltrix.cache import record_version

KEYS = [f"hot/key{i}" for i in range(4)]
TTL = 0.2
STORE_DELAY = 0.002


def seed(path: str) -> None:
    backend = SQLiteBackend(path)
    for key in KEYS:
        backend.put(key, f"value of {key}".encode())
    backend.close()


def fleet(store: str, cache_url: str | None, processes: int, duration: float) -> dict[str, Any]:
    config = {
        "store": store,
        "cache_url": cache_url,
        "ttl": TTL,
        "keys": KEYS,
        "threads": 2,
        "duration": duration,
        "delay": STORE_DELAY,
    }
    results = run_fleet(config, processes)
    elapsed = max(r["elapsed"] for r in results)
    store_calls = sum(sum(r["store_gets"].values()) for r in results)
    reads = sum(r["reads"] for r in results)
    return {
        "processes": processes,
        "l2": cache_url is not None,
        "elapsed_s": elapsed,
        "store_calls": store_calls,
        "store_calls_per_s": store_calls / elapsed,
        "store_calls_per_key_per_ttl": store_calls / len(KEYS) / (duration / TTL),
        "client_reads": reads,
        "client_reads_per_s": reads / elapsed,
        "failed_reads": sum(r["failed"] for r in results),
        "l2_hits": sum(r["stats"].get("l2_hits", 0) for r in results),
        "l2_lock_waits": sum(r["stats"].get("l2_lock_waits", 0) for r in results),
    }


def propagation(store: str, redis_url: str, writes: int, clients_n: int) -> dict[str, Any]:
    cache_url = f"{redis_url}?namespace=bench-{uuid.uuid4().hex[:8]}"
    policy = CachePolicy(ttl=60, watch=False)
    clients = [
        Client(f"sqlite:///{store}", cache=policy, cache_url=cache_url) for _ in range(clients_n)
    ]
    key = KEYS[0]
    samples: list[float] = []
    missed = 0
    writer, readers = clients[0], clients[1:]
    try:
        for client in clients:
            assert client._l2 is not None and client._l2.wait_ready(10)
            client.get(key)
        for i in range(writes):
            started = time.perf_counter()
            version = writer.put(key, f"v{i}")
            deadline = started + 5
            while True:
                records = [c._records.get(key) for c in readers]
                if all(r is not None and record_version(r) == version for r in records):
                    samples.append((time.perf_counter() - started) * 1000)
                    break
                if time.perf_counter() > deadline:
                    missed += 1
                    break
                time.sleep(0.0001)
    finally:
        for client in clients:
            client.close()
    return {
        "clients": clients_n,
        "writes": writes,
        "missed_within_5s": missed,
        **latency_summary(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer processes, shorter runs")
    args = parser.parse_args()
    load_services_env()
    redis_url = os.environ.get("VELTRIX_TEST_REDIS_URL")
    if not redis_url:
        raise SystemExit("VELTRIX_TEST_REDIS_URL is not set: run scripts/services up redis")
    counts = [1, 2, 4] if args.quick else [1, 2, 4, 8, 16]
    duration = 1.5 if args.quick else 3.0
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "config.db")
        seed(store)
        rows = []
        for n in counts:
            cache_url = f"{redis_url}?namespace=bench-{uuid.uuid4().hex[:8]}&timeout=0.2"
            rows.append(fleet(store, None, n, duration))
            rows.append(fleet(store, cache_url, n, duration))
        prop = propagation(store, redis_url, 50 if args.quick else 300, 8)
    server = redis.Redis.from_url(redis_url, protocol=2)
    redis_version = server.info("server")["redis_version"]
    server.close()
    results = {
        "quick": args.quick,
        "redis": redis_version,
        "ttl_s": TTL,
        "store_delay_s": STORE_DELAY,
        "keys": len(KEYS),
        "duration_s": duration,
        "fleet": rows,
        "write_to_all_l1": prop,
        "machine": machine(),
        "packages": package_versions("redis", "cryptography"),
    }
    path = write_json("redis_l2", results)

    print(f"## Shared Redis cache (L2) (Redis {redis_version}, {os.cpu_count()} CPUs)\n")
    print(
        f"{len(KEYS)} hot keys, TTL {TTL}s, store read {STORE_DELAY * 1000:.0f} ms, "
        f"2 reader threads per process, {duration}s per run:\n"
    )
    print(
        "| processes | store calls/s no L2 | store calls/s L2 | ratio | reads/s no L2 | reads/s L2 | calls/key/TTL no L2 | calls/key/TTL L2 | failed reads |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for plain, l2 in zip(rows[::2], rows[1::2], strict=True):
        ratio = plain["store_calls_per_s"] / max(l2["store_calls_per_s"], 1e-9)
        print(
            f"| {plain['processes']} | {plain['store_calls_per_s']:.0f} | {l2['store_calls_per_s']:.0f} | "
            f"{ratio:.1f}x | {plain['client_reads_per_s']:,.0f} | {l2['client_reads_per_s']:,.0f} | "
            f"{plain['store_calls_per_key_per_ttl']:.2f} | {l2['store_calls_per_key_per_ttl']:.2f} | "
            f"{plain['failed_reads'] + l2['failed_reads']} |"
        )
    print(
        f"\nWrite -> every other client ({prop['clients'] - 1}) reads the new value (bus + L2), "
        f"{prop['writes']} writes: p50 {prop['p50_ms']:.2f} ms, p99 {prop['p99_ms']:.2f} ms, "
        f"max {prop['max_ms']:.2f} ms; missed {prop['missed_within_5s']}.\n"
    )
    print(f"Written to {path.relative_to(REPO_ROOT)}.")


if __name__ == "__main__":
    main()
