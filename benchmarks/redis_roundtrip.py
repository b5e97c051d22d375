"""Redis store round trips: raw redis-py GET vs the adapter's miss path vs a cached get.

    .venv/bin/python -m benchmarks.redis_roundtrip [--quick]

The other stores' round trips are in their own ``bench_<store>.py``; this is the
Redis row of section 2. ``GET`` of a plain string key is the cheapest thing Redis
does; ``RedisBackend.get`` reads the entry hash (value, version, content type) of
the store layout; ``Client.get`` is a cache hit. Writes ``benchmarks/results/redis_store.json``.
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

from benchmarks._common import (
    load_services_env,
    machine,
    package_versions,
    summary_us,
    timed_calls,
    write_json,
)


def run(quick: bool = False) -> dict[str, Any]:
    import redis

    import veltrix
    from veltrix.adapters.redis import RedisBackend

    load_services_env()
    url = os.environ.get("VELTRIX_TEST_REDIS_URL")
    if not url:
        raise SystemExit("VELTRIX_TEST_REDIS_URL is not set: run scripts/services up redis")
    name = f"bench-{uuid.uuid4().hex[:8]}"
    store_reads, cached_reads = (300, 20_000) if quick else (3_000, 200_000)
    raw = redis.Redis.from_url(url)
    raw_key = f"veltrix-bench:{name}:plain"
    raw.set(raw_key, b"250")
    backend = RedisBackend.from_url(f"{url.rstrip('/')}/{name}")
    backend.put("payments/timeout_ms", b"250")
    client = veltrix.Client(backend, cache=veltrix.CachePolicy(ttl=3600.0))
    try:
        assert client.get("payments/timeout_ms") == "250"
        results = {
            "redis_py_get": summary_us(
                timed_calls(lambda: raw.get(raw_key), store_reads, warm_up=20)
            ),
            "adapter_get_uncached": summary_us(
                timed_calls(lambda: backend.get("payments/timeout_ms"), store_reads, warm_up=20)
            ),
            "veltrix_cached_get": summary_us(
                timed_calls(lambda: client.get("payments/timeout_ms"), cached_reads, warm_up=100)
            ),
        }
    finally:
        client.close()
        backend.delete("payments/timeout_ms")
        backend.close()
        raw.delete(raw_key)
        raw.close()
    return {
        "benchmark": "redis_store",
        "quick": quick,
        "reads": results,
        "raw_over_cached_p50": results["redis_py_get"]["p50_us"]
        / results["veltrix_cached_get"]["p50_us"],
        "adapter_over_raw_p50": results["adapter_get_uncached"]["p50_us"]
        / results["redis_py_get"]["p50_us"],
        "machine": machine(),
        "versions": package_versions("redis"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    data = run(quick=args.quick)
    print("| read | p50 µs | p99 µs |\n|---|---:|---:|")
    for name, s in data["reads"].items():
        print(f"| {name} | {s['p50_us']:.2f} | {s['p99_us']:.2f} |")
    print(f"written {write_json('redis_store', data)}")


if __name__ == "__main__":
    main()
