"""asyncio: the cost of a cached read in a coroutine, and the loop under a burst of misses.

    .venv/bin/python -m benchmarks.aio [--quick]

1. Cached reads awaited in one coroutine, in interleaved rounds: ``await
   AsyncClient.get`` against an ``async def`` that returns a dict value (the cheapest
   awaitable read), the sync ``Client.get`` and ``dict.get``.
2. Loop stall: 1,000 tasks started at once, each missing a different key of a store
   that takes 50 ms per read, while a 1 ms ticker runs on the same loop; the largest
   lateness of the ticker. The same burst of 1,000 tasks that only ``await
   asyncio.sleep(0.05)`` is the baseline: starting that many tasks costs the loop by
   itself, whatever they do.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from veltrix import CachePolicy, Client
from veltrix.adapters.memory import MemoryBackend
from veltrix.aio import AsyncClient


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


async def _burst(start: Callable[[int], Awaitable[Any]], tasks: int) -> tuple[float, float]:
    stalls: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - started - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await asyncio.gather(*(start(i) for i in range(tasks)))
    took = time.perf_counter() - started
    done.set()
    await tick
    return max(stalls), took


def loop_stall(*, tasks: int, workers: int) -> dict[str, float]:
    backend = _SlowStore.from_url("memory://")
    for i in range(tasks):
        backend.put(f"k/{i}", b"v")

    async def baseline() -> tuple[float, float]:
        return await _burst(lambda i: asyncio.sleep(0.05), tasks)

    async def misses() -> tuple[float, float]:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(backend, cache=policy, max_workers=workers) as client:
            return await _burst(lambda i: client.get(f"k/{i}"), tasks)

    base_stall, _ = asyncio.run(baseline())
    stall, took = asyncio.run(misses())
    return {
        "workers": workers,
        "tasks": tasks,
        "stall_ms": stall * 1e3,
        "baseline_stall_ms": base_stall * 1e3,
        "all_misses_s": took,
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    hits = hit_costs(rounds=5 if quick else 21, calls=20_000 if quick else 100_000)
    stalls = [loop_stall(tasks=1000, workers=w) for w in (8, 32)]
    return {"hits_ns": hits, "stalls": stalls, "loadavg": os.getloadavg(), "quick": quick}


def markdown(data: dict[str, Any]) -> str:
    hits = data["hits_ns"]
    base = hits["await async def returning a dict value"]
    lines = [
        "| cached read | ns per await | x async def returning a dict value |",
        "|---|---:|---:|",
    ]
    for name, ns in hits.items():
        lines.append(f"| {name} | {ns:.0f} | {ns / base:.2f} |")
    lines += [
        "",
        "| 1,000 concurrent misses, store 50 ms | max loop stall | same burst of plain sleeping tasks | all answered in |",
        "|---|---:|---:|---:|",
    ]
    for row in data["stalls"]:
        lines.append(
            f"| {row['workers']} worker threads | {row['stall_ms']:.1f} ms "
            f"| {row['baseline_stall_ms']:.1f} ms | {row['all_misses_s']:.2f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import section_main

    return section_main("aio", run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
