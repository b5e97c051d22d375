"""Consul benchmarks against the Consul test server (``scripts/services up consul``).

    .venv/bin/python -m benchmarks.bench_consul [--quick]

1. write -> watch latency: time from the start of ``put`` to the watch callback,
   one write at a time (p50 / p99), next to the bare write latency.
2. reads: ``veltrix.Client`` cached ``get`` vs py-consul ``kv.get`` vs the adapter's
   uncached ``ConsulBackend.get``.

Prints a markdown section and writes the same figures to
``benchmarks/results/consul.json``. The server is our Python test server on
loopback, not a real Consul agent: store-side figures measure the HTTP round trip
to it, so compare ratios, not absolute store latencies, with production.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import consul

import veltrix
from benchmarks._common import load_services_env, summary_us, timed_calls
from veltrix.adapters.consul import ConsulBackend
from veltrix.backend import Change

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "consul.json"


def bench_watch_latency(address: str, writes: int) -> dict[str, Any]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    backend = ConsulBackend.from_url(f"consul://{address}/{prefix}?watch_min_interval=0")
    arrived: dict[bytes, float] = {}
    cond = threading.Condition()

    def on_change(change: Change) -> None:
        if change.entry is not None:
            with cond:
                arrived[change.entry.value] = time.perf_counter()
                cond.notify_all()

    watch = backend.watch("w", on_change)
    latencies: list[float] = []
    put_times: list[float] = []
    try:
        for i in range(writes):
            value = str(i).encode()
            started = time.perf_counter()
            backend.put("w/key", value)
            put_times.append(time.perf_counter() - started)
            with cond:
                if not cond.wait_for(lambda: value in arrived, timeout=10):  # noqa: B023
                    raise RuntimeError(f"write {i} not delivered within 10 s")
                latencies.append(arrived[value] - started)
    finally:
        watch.stop()
        backend.delete("w/key")
        backend.close()
    return {"write_to_watch": summary_us(latencies), "write": summary_us(put_times)}


def bench_reads(address: str, cached_reads: int, store_reads: int) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    backend = ConsulBackend.from_url(f"consul://{address}/{prefix}")
    backend.put("payments/timeout_ms", b"250")
    raw = consul.Consul(host=host, port=int(port))
    full_key = f"{prefix}/payments/timeout_ms"

    for _ in range(20):  # warm connections
        raw.kv.get(full_key)
        backend.get("payments/timeout_ms")
    results: dict[str, Any] = {}
    results["py_consul_kv_get"] = summary_us(timed_calls(lambda: raw.kv.get(full_key), store_reads))
    results["adapter_get_uncached"] = summary_us(
        timed_calls(lambda: backend.get("payments/timeout_ms"), store_reads)
    )
    client = veltrix.Client(backend, cache=veltrix.CachePolicy(ttl=30.0, watch=True))
    assert client.get("payments/timeout_ms") == "250"
    results["veltrix_cached_get"] = summary_us(
        timed_calls(lambda: client.get("payments/timeout_ms"), cached_reads)
    )
    started = time.perf_counter()
    for _ in range(cached_reads):
        client.get("payments/timeout_ms")
    results["veltrix_cached_get_loop_ns"] = (time.perf_counter() - started) / cached_reads * 1e9
    results["client_stats"] = client.stats()
    client.close()
    backend.delete("payments/timeout_ms")
    backend.close()
    return results


def markdown(data: dict[str, Any]) -> str:
    watch, reads = data["watch"], data["reads"]
    w, p = watch["write_to_watch"], watch["write"]
    kv, ad, ca = (
        reads[k] for k in ("py_consul_kv_get", "adapter_get_uncached", "veltrix_cached_get")
    )
    lines = [
        "## Consul KV (test server on loopback)",
        "",
        f"_{data['environment']['python']} on {data['environment']['machine']}, "
        f"{'quick' if data['quick'] else 'full'} run; server: tests/servers/consul "
        "(Python, in-process store), not a real Consul agent._",
        "",
        "| measure | n | p50 | p99 | mean |",
        "|---|---:|---:|---:|---:|",
        f"| write -> watch callback | {w['n']} | {w['p50_us']:.0f} µs | {w['p99_us']:.0f} µs "
        f"| {w['mean_us']:.0f} µs |",
        f"| write alone (put via /v1/txn) | {p['n']} | {p['p50_us']:.0f} µs "
        f"| {p['p99_us']:.0f} µs | {p['mean_us']:.0f} µs |",
        f"| py-consul kv.get | {kv['n']} | {kv['p50_us']:.0f} µs | {kv['p99_us']:.0f} µs "
        f"| {kv['mean_us']:.0f} µs |",
        f"| ConsulBackend.get (no cache) | {ad['n']} | {ad['p50_us']:.0f} µs "
        f"| {ad['p99_us']:.0f} µs | {ad['mean_us']:.0f} µs |",
        f"| veltrix Client.get (cached) | {ca['n']} | {ca['p50_us']:.2f} µs "
        f"| {ca['p99_us']:.2f} µs | {ca['mean_us']:.2f} µs |",
        "",
        "- cached get vs py-consul kv.get (p50): "
        f"**{data['ratios']['kv_get_over_cached_p50']:.0f}x** faster; "
        f"tight loop {reads['veltrix_cached_get_loop_ns']:.0f} ns per get.",
        f"- write -> watch callback p50 is {data['ratios']['watch_over_write_p50']:.2f}x the "
        "write's own p50 (the blocked query wakes while the write's response is on its way; "
        "then list, diff and the callback thread).",
        f"- client stats after the cached run: {reads['client_stats']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_consul")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (CI smoke run)")
    args = parser.parse_args(argv)
    load_services_env()
    address = os.environ.get("VELTRIX_TEST_CONSUL_ADDR")
    if not address:
        raise SystemExit("VELTRIX_TEST_CONSUL_ADDR is not set: run scripts/services up consul")
    os.environ.pop("CONSUL_HTTP_TOKEN", None)
    writes, store_reads, cached_reads = (50, 300, 20_000) if args.quick else (500, 3_000, 200_000)
    watch = bench_watch_latency(address, writes)
    reads = bench_reads(address, cached_reads, store_reads)
    data: dict[str, Any] = {
        "store": "consul",
        "quick": args.quick,
        "server": "tests/servers/consul (wire-faithful test server, loopback)",
        "environment": {
            "python": platform.python_implementation() + " " + platform.python_version(),
            "machine": platform.machine() + f", {os.cpu_count()} CPUs",
        },
        "watch": watch,
        "reads": reads,
        "ratios": {
            "kv_get_over_cached_p50": reads["py_consul_kv_get"]["p50_us"]
            / reads["veltrix_cached_get"]["p50_us"],
            "kv_get_over_cached_mean": reads["py_consul_kv_get"]["mean_us"]
            / reads["veltrix_cached_get"]["mean_us"],
            "watch_over_write_p50": watch["write_to_watch"]["p50_us"] / watch["write"]["p50_us"],
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    print(markdown(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
