"""L2 cost: Redis requests per key per TTL for a fleet reading many keys.

    .venv/bin/python -m benchmarks.bench_l2_requests [--quick] [--redis-url URL]

8 processes (``benchmarks/redis_fleet.py``), 2 reader threads each, read 200 keys in a
loop for 10 s with TTL 1 s through one Redis L2, against a SQLite store that counts the
reads reaching it (1 ms per read). Reported per key per TTL for the whole fleet:

- store reads (counted at the store): the L2's job is to keep this at ~1;
- Redis requests counted by the clients (``SharedCache.counters["l2_requests"]``: each
  command of a pipeline counts, a script call is 1; 0 when the code measured predates
  the counter);
- Redis' own ``INFO commandstats`` over the run, as a cross-check: script calls
  (``evalsha``) and all commands (this total also counts the commands a script runs,
  so it is larger than the requests sent);
- read latency p50 / p99 / p99.9 / max over every 8th read (cache hits included).

Use a Redis no one else is using (``--redis-url``, default ``VELTRIX_TEST_REDIS_URL``):
the command statistics are reset at the start and read server-wide.
Writes the figures to ``benchmarks/results/l2_requests.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import redis

from benchmarks._common import REPO_ROOT, load_services_env, machine, write_json
from benchmarks.redis_fleet import run_fleet
from veltrix.adapters.sqlite import SQLiteBackend


def seed(path: str, keys: list[str]) -> None:
    backend = SQLiteBackend(path)
    for key in keys:
        backend.put(key, f"value of {key}".encode())
    backend.close()


def commandstats(server: Any) -> dict[str, int]:
    stats = server.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


def measure(
    redis_url: str, *, processes: int, keys: int, ttl: float, duration: float
) -> dict[str, Any]:
    names = [f"l2cost/key{i}" for i in range(keys)]
    server = redis.Redis.from_url(redis_url, protocol=2)
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "config.db")
        seed(store, names)
        config = {
            "store": store,
            "cache_url": f"{redis_url}?namespace=cost-{uuid.uuid4().hex[:8]}&timeout=0.2",
            "ttl": ttl,
            "keys": names,
            "threads": 2,
            "duration": duration,
            "delay": 0.001,
            "sample_every": 8,
        }
        server.config_resetstat()
        results = run_fleet(config, processes, timeout=duration + 120)
        calls = commandstats(server)
    server.close()
    windows = duration / ttl
    per = keys * windows

    def total(name: str) -> int:
        return sum(int(r["stats"].get(name, 0)) for r in results)

    store_reads = sum(sum(r["store_gets"].values()) for r in results)
    lat = [r["latency_s"] for r in results if r["latency_s"]]
    return {
        "processes": processes,
        "keys": keys,
        "ttl_s": ttl,
        "duration_s": duration,
        "failed_reads": sum(r["failed"] for r in results),
        "reads": sum(r["reads"] for r in results),
        "store_reads_per_key_per_ttl": store_reads / per,
        "l2_requests_per_key_per_ttl": total("l2_requests") / per,
        "redis_evalsha_per_key_per_ttl": calls.get("evalsha", 0) / per,
        "redis_commands_per_key_per_ttl": sum(calls.values()) / per,
        "redis_commandstats": calls,
        "l2_hits": total("l2_hits"),
        "l2_lock_waits": total("l2_lock_waits"),
        "l2_lock_timeouts": total("l2_lock_timeouts"),
        # Worst process's percentiles (each process times its own reads), in ms.
        "read_ms": {name: max(p[name] for p in lat) * 1e3 for name in ("p50", "p99", "p999", "max")}
        if lat
        else {},
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 processes, 50 keys, 4 s")
    parser.add_argument("--redis-url", help="default: VELTRIX_TEST_REDIS_URL")
    parser.add_argument("--label", default="", help="stored with the figures (e.g. before)")
    args = parser.parse_args()
    load_services_env()
    redis_url = args.redis_url or os.environ.get("VELTRIX_TEST_REDIS_URL")
    if not redis_url:
        raise SystemExit("give --redis-url or run scripts/services up redis")
    if args.quick:
        row = measure(redis_url, processes=4, keys=50, ttl=1.0, duration=4.0)
    else:
        row = measure(redis_url, processes=8, keys=200, ttl=1.0, duration=10.0)
    results = {"label": args.label, **row, "machine": machine()}
    path = write_json("l2_requests" + (f"_{args.label}" if args.label else ""), results)
    print(f"## L2 commands per key per TTL ({row['processes']} processes x {row['keys']} keys)\n")
    print("| figure | per key per TTL |\n|---|---:|")
    for name in (
        "store_reads",
        "l2_requests",
        "redis_evalsha",
        "redis_commands",
    ):
        print(f"| {name} | {row[name + '_per_key_per_ttl']:.2f} |")
    read = row["read_ms"]
    if read:
        print(
            f"\nread latency (worst process) p50 {read['p50']:.4f} ms, p99 {read['p99']:.3f} ms, "
            f"p99.9 {read['p999']:.3f} ms, max {read['max']:.1f} ms; "
            f"failed reads {row['failed_reads']}; lock waits {row['l2_lock_waits']}, "
            f"timeouts {row['l2_lock_timeouts']}"
        )
    print("load average", " ".join(f"{x:.2f}" for x in row["load_average"]))
    print(f"Written to {path.relative_to(REPO_ROOT)}.")


if __name__ == "__main__":
    main()
