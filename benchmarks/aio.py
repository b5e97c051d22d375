"""asyncio: the cost of a cached read in a coroutine, and the loop under a burst of misses.

    .venv/bin/python -m benchmarks.aio [--quick]

1. Cached reads awaited in one coroutine, in interleaved rounds: ``await
   AsyncClient.get`` against an ``async def`` that returns a dict value (the cheapest
   awaitable read), the sync ``Client.get`` and ``dict.get``.
2. Loop stall: 1,000 tasks started at once, each missing a different key of a store
   that takes 50 ms per read, while a 1 ms ticker runs on the same loop. Two figures,
   kept apart because they measure different things:

   - the *spawn iteration*: all 1,000 tasks' first steps run in one loop iteration
     (that is how asyncio starts tasks), so the ticker is late by at least that
     long whatever the tasks do; this is the benchmark's own burst, plus what the
     library does per miss before its first ``await``;
   - the *stall after it*: the ticker's largest (and p99) lateness while the misses
     are in flight and their results come back: GIL hand-offs with the worker
     threads and the loop's work per result.

   The same burst of 1,000 tasks that only ``await asyncio.sleep(0.05)`` is the
   baseline for both. Also the loop thread's CPU time per task in the spawn
   iteration (``time.thread_time``): the spawn's wall time beyond it is time the loop
   waited for the GIL. Each figure is the median of 5 bursts, run in interleaved
   rounds so every row sees the same machine. The ticker alone on an
   idle loop, for as long as the slowest burst lasts, shows what the machine itself
   costs the loop (a longer window catches more of it).
3. Bursts of 50, 200 and 1,000 tasks against each store with native asyncio reads
   that is running here: the local Redis (``VELTRIX_TEST_REDIS_URL``), the local
   Consul test server (``VELTRIX_TEST_CONSUL_ADDR``, the Python server of
   ``tests/servers/consul``, not a Consul agent) and the Secret Manager test server
   over gRPC (``VELTRIX_TEST_GCPSM_GRPC``); a store without its server is skipped.
   Each task misses a different key: misses read on the loop through the store's
   asyncio client (``native_reads=True``: ``redis.asyncio``, aiohttp, ``grpc.aio``)
   against the same misses on the worker threads through the sync client (redis-py,
   py-consul over requests, the blocking gRPC client; the default), in interleaved
   rounds: the loop's stall and each
   miss's latency (task start to value, p50/p99). Also one miss at a time (no
   concurrency), native against threads.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from benchmarks._common import rank_percentile
from benchmarks._stores import store_url
from veltrix import CachePolicy, Client
from veltrix.adapters.memory import MemoryBackend
from veltrix.aio import DEFAULT_MAX_WORKERS, AsyncClient
from veltrix.backend import SupportsBatch, supports


class _SlowStore(MemoryBackend):
    def get(self, key: str) -> Any:
        time.sleep(0.05)
        return super().get(key)


async def _per_call_ns(read: Callable[[], Awaitable[Any]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await read()
    return (time.perf_counter() - started) / calls * 1e9


def hit_costs(*, rounds: int, calls: int) -> dict[str, float]:
    backend = MemoryBackend.from_url("memory://")
    backend.put("app/timeout", b"500")
    values = {"app/timeout": "500"}
    sync = Client(backend, cache=CachePolicy(ttl=3600, watch=False))
    sync.get("app/timeout")

    async def plain() -> str:
        return values["app/timeout"]

    async def run() -> dict[str, list[float]]:
        client = AsyncClient(backend, cache=CachePolicy(ttl=3600, watch=False))
        await client.get("app/timeout")

        async def sync_get() -> str:
            return sync.get("app/timeout")

        async def dict_get() -> str | None:
            return values.get("app/timeout")

        candidates: dict[str, Callable[[], Awaitable[Any]]] = {
            "await AsyncClient.get": lambda: client.get("app/timeout"),
            "await async def returning a dict value": plain,
            "await (sync Client.get in a coroutine)": sync_get,
            "await (dict.get in a coroutine)": dict_get,
        }
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(rounds):
            for name, read in candidates.items():
                samples[name].append(await _per_call_ns(read, calls))
        await client.aclose()
        return samples

    samples = asyncio.run(run())
    sync.close()
    return {name: statistics.median(values) for name, values in samples.items()}


async def _burst(start: Callable[[int], Awaitable[Any]], tasks: int) -> dict[str, float]:
    """Start ``tasks`` tasks at once with a 1 ms ticker on the loop; split what the loop
    went through into the spawn (every task's first step, all in one loop iteration)
    and the time after it, while the tasks wait and their results come back."""
    loop = asyncio.get_running_loop()
    ticks: list[tuple[float, float]] = []  # (started, lateness)
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            ticks.append((started, time.perf_counter() - started - 0.001))

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    spawned: list[float] = []

    def mark_spawned() -> None:
        spawned.extend((time.perf_counter(), time.thread_time()))

    cpu_started = time.thread_time()
    launched = time.perf_counter()
    jobs = [asyncio.ensure_future(start(i)) for i in range(tasks)]
    # Runs right after the tasks' first steps: the ready queue is FIFO.
    loop.call_soon(mark_spawned)
    await asyncio.gather(*jobs)
    took = time.perf_counter() - launched
    done.set()
    await tick
    after = [late for started, late in ticks if started >= spawned[0]]
    return {
        "spawn_ms": (spawned[0] - launched) * 1e3,
        "stall_max_ms": max(after) * 1e3,
        "stall_p99_ms": rank_percentile(after, 0.99) * 1e3,
        "spawn_cpu_us_per_task": (spawned[1] - cpu_started) / tasks * 1e6,
        "all_done_s": took,
    }


Burst = Callable[[], Coroutine[Any, Any, dict[str, float]]]


def misses_burst(*, tasks: int, workers: int | None) -> Burst:
    """1,000 tasks missing different keys of a store that takes 50 ms per read."""
    backend = _SlowStore.from_url("memory://")
    for i in range(tasks):
        backend.put(f"k/{i}", b"v")

    async def misses() -> dict[str, float]:
        policy = CachePolicy(ttl=60, watch=False)
        options = {} if workers is None else {"max_workers": workers}
        async with AsyncClient(backend, cache=policy, **options) as client:
            return await _burst(lambda i: client.get(f"k/{i}"), tasks)

    return misses


def first_step_ns(*, tasks: int, rounds: int) -> dict[str, float]:
    """ns the loop spends in one miss before its first ``await`` suspends (coroutines
    stepped by hand inside a running loop: no task, no thread woken meanwhile), against
    the first step of ``asyncio.sleep(0.05)``. Median over ``rounds``."""
    backend = MemoryBackend.from_url("memory://")
    for i in range(tasks):
        backend.put(f"k/{i}", b"v")

    async def steps(make: Callable[[int], Coroutine[Any, Any, Any]]) -> float:
        coroutines = [make(i) for i in range(tasks)]
        started = time.perf_counter()
        for coroutine in coroutines:
            coroutine.send(None)
        took = time.perf_counter() - started
        for coroutine in coroutines:
            coroutine.close()
        return took / tasks * 1e9

    async def run() -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {"AsyncClient.get (miss)": [], "asyncio.sleep": []}
        for _ in range(rounds):
            policy = CachePolicy(ttl=60, watch=False)
            async with AsyncClient(backend, cache=policy) as client:
                samples["AsyncClient.get (miss)"].append(
                    await steps(lambda i: client.get(f"k/{i}"))
                )
                while client._flights:  # the pool answers the abandoned misses
                    await asyncio.sleep(0.005)
            samples["asyncio.sleep"].append(await steps(lambda i: asyncio.sleep(0.05)))
        return samples

    return {name: statistics.median(values) for name, values in asyncio.run(run()).items()}


def ticker_alone(*, seconds: float) -> Burst:
    """The 1 ms ticker on an otherwise idle loop: what the machine alone costs it."""

    async def idle() -> dict[str, float]:
        return await _burst(lambda i: asyncio.sleep(seconds), 1)

    return idle


def sleep_baseline(*, tasks: int) -> Burst:
    """The same burst of tasks that only ``await asyncio.sleep(0.05)``."""

    async def burst() -> dict[str, float]:
        return await _burst(lambda i: asyncio.sleep(0.05), tasks)

    return burst


def native_misses_burst(url: str, *, tasks: int, native: bool) -> Burst:
    """``tasks`` tasks missing different keys of the store at ``url`` at once, read on
    the loop (``native``) or on the worker threads (the default pool)."""

    async def misses() -> dict[str, float]:
        latencies: list[float] = []
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(url, cache=policy, native_reads=native) as client:

            async def miss(i: int) -> None:
                started = time.perf_counter()
                await client.get(f"k/{i}")
                latencies.append(time.perf_counter() - started)

            row = await _burst(miss, tasks)
            assert client.native_misses == (tasks if native else 0)
        row["miss_p50_ms"] = statistics.median(latencies) * 1e3
        row["miss_p99_ms"] = rank_percentile(latencies, 0.99) * 1e3
        return row

    return misses


def miss_one_at_a_time(url: str, *, keys: int, rounds: int) -> dict[str, float]:
    """µs per miss, one at a time (a fresh client reads ``keys`` different keys in
    turn), native against threads, median over interleaved rounds."""

    async def one_round(native: bool) -> float:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(url, cache=policy, native_reads=native) as client:
            await client.get("k/0")  # the connection (or the thread) is up
            started = time.perf_counter()
            for i in range(1, keys + 1):
                await client.get(f"k/{i}")
            return (time.perf_counter() - started) / keys * 1e6

    samples: dict[str, list[float]] = {"native": [], "threads": []}
    for _ in range(rounds):
        samples["native"].append(asyncio.run(one_round(True)))
        samples["threads"].append(asyncio.run(one_round(False)))
    return {name: statistics.median(values) for name, values in samples.items()}


def native_store(kind: str, tasks: int) -> str | None:
    """A fresh namespace of the local ``kind`` store holding ``k/0`` .. ``k/<tasks>``;
    None when its server is not running."""
    from veltrix.registry import open_backend

    url = store_url(kind, Path("."), [])
    if url is None:
        return None
    backend: Any = open_backend(url)
    values = {f"k/{i}": b"v" for i in range(tasks + 1)}
    try:
        if supports(backend, SupportsBatch):
            backend.put_many(values, atomic=False)
        else:
            for key, value in values.items():
                backend.put(key, value)
    finally:
        backend.close()
    return url


def loop_stalls(rows: dict[str, tuple[Any, Burst]], runs: int) -> list[dict[str, Any]]:
    """Every row's bursts in interleaved rounds (each round runs each row once, so the
    rows see the same machine), then each figure's median over the rounds."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in rows}
    for _ in range(runs):
        for name, (_, burst) in rows.items():
            samples[name].append(asyncio.run(burst()))
    return [
        {
            "row": name,
            "workers": workers,
            **{k: statistics.median(s[k] for s in samples[name]) for k in samples[name][0]},
        }
        for name, (workers, _) in rows.items()
    ]


#: Bursts of misses against the stores with native reads, native against threads.
NATIVE_BURSTS = (50, 200, 1000)
#: The stores with native asyncio reads: (name in the results, label, asyncio
#: client, sync client).
NATIVE_STORES = {
    "redis": ("local Redis", "redis.asyncio", "redis-py"),
    "consul": ("local Consul test server", "aiohttp", "py-consul"),
    "gcpsm": ("local Secret Manager test server, gRPC", "grpc.aio", "blocking gRPC"),
}
#: Worker threads compared (None: the client's default).
WORKER_COUNTS: tuple[int | None, ...] = (None, 8, 64)


def run(*, quick: bool = False) -> dict[str, Any]:
    load_before = os.getloadavg()
    hits = hit_costs(rounds=5 if quick else 21, calls=20_000 if quick else 100_000)
    runs = 1 if quick else 5
    first_steps = first_step_ns(tasks=1000, rounds=5 if quick else 21)
    rows: dict[str, tuple[Any, Burst]] = {
        "idle": ("idle", ticker_alone(seconds=1.0 if quick else 6.3)),  # as long as 8 workers
        "baseline": ("-", sleep_baseline(tasks=1000)),
    }
    for workers in WORKER_COUNTS:
        rows[f"misses-{workers}"] = (workers, misses_burst(tasks=1000, workers=workers))
    urls = {kind: native_store(kind, 1000) for kind in NATIVE_STORES}
    for kind, url in urls.items():
        if url is None:
            continue
        for tasks in NATIVE_BURSTS:
            for native in (True, False):
                burst = native_misses_burst(url, tasks=tasks, native=native)
                rows[f"{kind}-{tasks}-{native}"] = ((kind, tasks, native), burst)
    idle, baseline, *stalls = loop_stalls(rows, runs)
    by_store: dict[str, Any] = {}
    for kind, url in urls.items():
        store_rows = [
            r for r in stalls if isinstance(r.get("workers"), tuple) and r["workers"][0] == kind
        ]
        for row in store_rows:
            _, row["tasks"], row["native"] = row.pop("workers")
        by_store[kind] = store_rows
        by_store[f"{kind}_one_at_a_time_us"] = (
            miss_one_at_a_time(url, keys=200 if quick else 1000, rounds=3 if quick else 7)
            if url is not None
            else None
        )
    stalls = [row for row in stalls if "native" not in row]
    return {
        **by_store,
        "hits_ns": hits,
        "first_step_ns": first_steps,
        "ticker_alone": idle,
        "sleep_baseline": baseline,
        "stalls": stalls,
        "runs": runs,
        "loadavg_before": load_before,
        "loadavg": os.getloadavg(),
        "quick": quick,
    }


def markdown(data: dict[str, Any]) -> str:
    hits = data["hits_ns"]
    base = hits["await async def returning a dict value"]
    lines = [
        "| cached read | ns per await | x async def returning a dict value |",
        "|---|---:|---:|",
    ]
    for name, ns in hits.items():
        lines.append(f"| {name} | {ns:.0f} | {ns / base:.2f} |")
    steps = data["first_step_ns"]
    lines += [
        "",
        "| a task's first step, before it suspends | ns | x asyncio.sleep |",
        "|---|---:|---:|",
    ]
    for name, ns in steps.items():
        lines.append(f"| {name} | {ns:.0f} | {ns / steps['asyncio.sleep']:.2f} |")
    base = data["sleep_baseline"]
    lines += [
        "",
        "| 1,000 tasks at once (store 50 ms) | spawn iteration | max stall after it | p99 stall after it "
        "| loop CPU per first step | all answered in |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in [data["ticker_alone"], base, *data["stalls"]]:
        if row["workers"] == "idle":
            name = f"the ticker alone for {row['all_done_s']:.1f} s (one sleeping task)"
        elif row["workers"] == "-":
            name = "baseline: tasks that only sleep 50 ms"
        elif row["workers"] is None:
            name = f"misses, default workers (at most {DEFAULT_MAX_WORKERS})"
        else:
            name = f"misses, {row['workers']} worker threads"
        cpu = "-" if row["workers"] == "idle" else f"{row['spawn_cpu_us_per_task']:.1f} µs"
        lines.append(
            f"| {name} | {row['spawn_ms']:.1f} ms | {row['stall_max_ms']:.1f} ms "
            f"| {row['stall_p99_ms']:.2f} ms | {cpu} "
            f"| {row['all_done_s']:.2f} s |"
        )
    lines += [
        "",
        "Median of "
        f"{data['runs']} bursts per row. Over the baseline: "
        + "; ".join(
            f"{_label(row['workers'])} spawn x{row['spawn_ms'] / base['spawn_ms']:.2f}, "
            f"max stall after it x{row['stall_max_ms'] / base['stall_max_ms']:.2f}"
            for row in data["stalls"]
        )
        + ".",
    ]
    for kind in NATIVE_STORES:
        lines += ["", *_native_markdown(data, kind)]
    return "\n".join(lines)


def _native_markdown(data: dict[str, Any], kind: str) -> list[str]:
    where, aio_client, sync_client = NATIVE_STORES[kind]
    rows = data.get(kind) or []
    if not rows:
        return [f"{where}: not run (its server was not running)."]
    lines = [
        f"| misses at once, {where} | read | spawn iteration | max stall after it "
        "| p99 stall after it | miss latency p50 | p99 | all answered in |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        how = (
            f"on the loop ({aio_client})"
            if row["native"]
            else f"worker threads ({sync_client}, at most {DEFAULT_MAX_WORKERS})"
        )
        lines.append(
            f"| {row['tasks']:,} | {how} | {row['spawn_ms']:.1f} ms | {row['stall_max_ms']:.1f} ms "
            f"| {row['stall_p99_ms']:.2f} ms | {row['miss_p50_ms']:.1f} ms "
            f"| {row['miss_p99_ms']:.1f} ms | {row['all_done_s'] * 1e3:.0f} ms |"
        )
    by = {(row["tasks"], row["native"]): row for row in rows}
    ratios = []
    for tasks in sorted({row["tasks"] for row in rows}):
        native, threads = by[(tasks, True)], by[(tasks, False)]
        ratios.append(
            f"{tasks:,} misses: max stall x{native['stall_max_ms'] / threads['stall_max_ms']:.2f}, "
            f"latency p50 x{native['miss_p50_ms'] / threads['miss_p50_ms']:.2f}, "
            f"all answered x{native['all_done_s'] / threads['all_done_s']:.2f}"
        )
    lines += [
        "",
        f"Median of {data['runs']} bursts per row. Native over threads: " + "; ".join(ratios) + ".",
    ]
    one = data.get(f"{kind}_one_at_a_time_us")
    if one:
        lines += [
            "",
            f"| one miss at a time, {where} | µs per miss | x threads |",
            "|---|---:|---:|",
            f"| on the loop ({aio_client}) | {one['native']:.0f} "
            f"| {one['native'] / one['threads']:.2f} |",
            f"| on a worker thread ({sync_client}) | {one['threads']:.0f} | 1.00 |",
        ]
    return lines


def _label(workers: int | None) -> str:
    return "default workers" if workers is None else f"{workers} workers"


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import section_main

    return section_main("aio", run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
