"""Fleet: store load against the number of processes, with no cache, L1, and L1+L2.

    .venv/bin/python -m benchmarks.fleet [--quick]

P = 1, 2, 4, 8, 16 worker processes (``benchmarks/redis_fleet.py``: 2 reader
threads each, started together after a ready handshake) read the same 4 hot keys
in a tight loop for a few seconds. The store is a SQLite file behind a wrapper that
counts every read reaching it and adds 2 ms to each (a store round trip); keys,
TTL and delay are those of ``benchmarks/bench_redis_l2.py``. Modes:

- ``no cache``: ``CachePolicy(ttl=0)``: every read asks the store (concurrent reads
  of one key in one process still share one call);
- ``L1``: TTL 0.2 s (short, so refreshes dominate a few-second run), per process;
- ``L1+L2``: the same plus ``cache_url`` = the local Redis (one store read per key
  per TTL for the whole fleet).

Target: store calls flat in P with L2.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks._common import load_services_env, machine, package_versions, write_json
from benchmarks.bench_redis_l2 import KEYS, STORE_DELAY, TTL, seed
from benchmarks.redis_fleet import run_fleet

PROCESSES = [1, 2, 4, 8, 16]
QUICK_PROCESSES = [1, 2, 4]
MODES = ("no cache", "L1", "L1+L2")


def measure(
    store: str,
    mode: str,
    processes: int,
    duration: float,
    redis_url: str | None,
    *,
    ttl: float = TTL,
    delay: float = STORE_DELAY,
    keys: list[str] = KEYS,
) -> dict[str, Any]:
    cache_url = None
    if mode == "L1+L2":
        cache_url = f"{redis_url}?namespace=bench-{uuid.uuid4().hex[:8]}&timeout=0.2"
    config = {
        "store": store,
        "cache_url": cache_url,
        "ttl": 0.0 if mode == "no cache" else ttl,
        "keys": keys,
        "threads": 2,
        "duration": duration,
        "delay": delay,
    }
    results = run_fleet(config, processes)
    elapsed = max(r["elapsed"] for r in results)
    store_calls = sum(sum(r["store_gets"].values()) for r in results)
    reads = sum(r["reads"] for r in results)
    return {
        "processes": processes,
        "mode": mode,
        "elapsed_s": elapsed,
        "store_calls": store_calls,
        "store_calls_per_s": store_calls / elapsed,
        "store_calls_per_key_per_ttl": store_calls / len(keys) / (elapsed / ttl),
        "client_reads_per_s": reads / elapsed,
        "failed_reads": sum(r["failed"] for r in results),
    }


def run(
    quick: bool = False,
    *,
    processes: list[int] | None = None,
    duration: float | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    load_services_env()
    redis_url = redis_url or os.environ.get("VELTRIX_TEST_REDIS_URL")
    counts = processes or (QUICK_PROCESSES if quick else PROCESSES)
    duration = duration or (1.5 if quick else 3.0)
    modes = [m for m in MODES if m != "L1+L2" or redis_url]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "config.db")
        seed(store)
        for n in counts:
            for mode in modes:  # modes back to back at each P: same machine conditions
                rows.append(measure(store, mode, n, duration, redis_url))
    return {
        "benchmark": "fleet",
        "quick": quick,
        "processes": counts,
        "modes": modes,
        "keys": len(KEYS),
        "ttl_s": TTL,
        "store_delay_s": STORE_DELAY,
        "threads_per_process": 2,
        "duration_s": duration,
        "rows": rows,
        "machine": machine(),
        "versions": package_versions("redis"),
    }


def flatness(data: dict[str, Any], mode: str = "L1+L2") -> float | None:
    """Store calls/s at the largest P over that at P = 1 (1.0 = perfectly flat)."""
    rows = sorted((r for r in data["rows"] if r["mode"] == mode), key=lambda r: r["processes"])
    if len(rows) < 2 or rows[0]["store_calls_per_s"] <= 0:
        return None
    return float(rows[-1]["store_calls_per_s"] / rows[0]["store_calls_per_s"])


def markdown(data: dict[str, Any]) -> str:
    modes = data["modes"]
    by = {(r["processes"], r["mode"]): r for r in data["rows"]}
    lines = [
        "| processes | "
        + " | ".join(f"store calls/s {m}" for m in modes)
        + " | "
        + " | ".join(f"reads/s {m}" for m in modes)
        + " | failed reads |",
        "|---:|" + "---:|" * (2 * len(modes) + 1),
    ]
    for n in data["processes"]:
        rows = [by[(n, m)] for m in modes]
        lines.append(
            f"| {n} | "
            + " | ".join(f"{r['store_calls_per_s']:,.0f}" for r in rows)
            + " | "
            + " | ".join(f"{r['client_reads_per_s']:,.0f}" for r in rows)
            + f" | {sum(r['failed_reads'] for r in rows)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="P = 1, 2, 4 and 1.5 s runs")
    args = parser.parse_args(argv)
    data = run(quick=args.quick)
    print(markdown(data))
    print(f"written {write_json('fleet', data)}")


if __name__ == "__main__":
    main()
