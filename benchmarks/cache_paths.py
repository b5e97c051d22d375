"""The cache's slow paths: the cost of a miss, and how late a TTL expiry lands under load.

    .venv/bin/python -m benchmarks.cache_paths [--quick]

1. Miss path: every key read once through a fresh ``Client`` on ``memory://`` (TTL
   60 s, no watch), against the raw store call (``MemoryBackend.get``) and the
   cheapest honest caches of ``benchmarks/baselines.py`` missing on the same store,
   and a reference with ``Client.get``'s shape and none of its guarantees
   (:func:`shape_floor`); ns per read, the best of interleaved rounds (noise only
   ever adds time).
2. Expiry under load: one key with a 1 s TTL and no watch; the store's value is
   changed behind the client's back, so only the TTL can bring it. The sample is the
   time from the cached value's TTL deadline until the first reader returns the new
   value (negative: the value was refreshed before its TTL ran out). Readers: none
   busy (one reader sleeping 1 ms between reads), 4 readers 1 ms apart ("paced"), and
   4 readers in a tight loop ("busy": each thread hop waits for the GIL behind them).
   The busy case runs twice: as shipped (a read in the last tenth of the TTL refreshes
   the value ahead) and with refresh-ahead switched off, the client before it.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from benchmarks._common import rank_percentile
from benchmarks.baselines import available as available_baselines
from veltrix import CachePolicy, Client
from veltrix.adapters.memory import MemoryBackend
from veltrix.cache import EXPIRES_AT

TTL = 1.0
#: name -> (reader threads, pause between reads, refresh-ahead on)
LOADS = {
    "1 paced": (1, 0.001, True),
    "4 paced": (4, 0.001, True),
    "4 busy": (4, 0.0, True),
    "4 busy, refresh-ahead off": (4, 0.0, False),
}


def _store(keys: list[str]) -> MemoryBackend:
    store = MemoryBackend("bench")
    for key in keys:
        store.put(key, b"v")
    return store


#: The miss table's reference row (see :func:`shape_floor`).
SHAPE_FLOOR = "reference: Client.get's shape, no guarantees (miss)"


def shape_floor(load: Any, ttl: float) -> Any:
    """A read-through cache with ``Client.get``'s shape and nothing else, for reference.

    A hit is a subscript of a dict that holds text only (so a miss costs the hot
    dict's ``KeyError`` and a second method call); a miss calls the store, decodes
    the value, reads the clock once and, holding a lock, puts a record and the text
    into two dicts. No single-flight, health, counts, timing, expiry schedule,
    provenance or version: what is left of a Veltrix miss over this row is what those
    cost.
    """
    fresh: dict[str, str] = {}
    records: dict[str, tuple[str, float]] = {}
    lock = threading.Lock()
    clock = time.monotonic

    class Shape:
        def get(self, key: str, default: Any = None, type: Any = None) -> Any:
            if type is None:
                try:
                    return fresh[key]
                except (KeyError, TypeError):
                    pass
            return self._miss(key)

        def _miss(self, key: str) -> str:
            value: str = load(key).value.decode()
            expires_at = clock() + ttl
            lock.acquire()
            try:
                records[key] = (value, expires_at)
                fresh[key] = value
            finally:
                lock.release()
            return value

    return Shape().get


def _per_read_ns(read: Any, keys: list[str]) -> float:
    started = time.perf_counter()
    for key in keys:
        read(key)
    return (time.perf_counter() - started) / len(keys) * 1e9


def miss_path(*, quick: bool) -> dict[str, float]:
    keys = [f"app/key{i}" for i in range(2_000 if quick else 10_000)]
    store = _store(keys)
    rounds = 5 if quick else 15
    best: dict[str, float] = {}

    def note(name: str, ns: float) -> None:
        best[name] = min(ns, best.get(name, ns))

    gc.disable()  # a collection landing in one candidate's round is noise, not its cost
    try:
        for _ in range(rounds):
            note("raw store get", _per_read_ns(store.get, keys))
            client = Client(store, cache=CachePolicy(ttl=60, watch=False))
            note("veltrix Client.get (miss)", _per_read_ns(client.get, keys))
            client.close()
            note(SHAPE_FLOOR, _per_read_ns(shape_floor(store.get, 60.0), keys))
            for name, make in available_baselines().items():
                note(f"{name} (miss)", _per_read_ns(make(store.get, 60.0), keys))
    finally:
        gc.enable()
    return best


def expiry_overshoot(
    readers: int, pause: float, *, cycles: int, ahead: bool = True
) -> dict[str, float]:
    class NoWatch(MemoryBackend):
        watch = None  # type: ignore[assignment]  # TTL alone brings changes

    store = NoWatch("bench")
    store.put("k", b"0")
    client = Client(store, cache=CachePolicy(ttl=TTL, watch=False))
    if not ahead:
        client._refresh_ahead = 0.0  # refresh at the TTL, as before refresh-ahead
    first_seen: dict[str, float] = {}
    stop = threading.Event()

    def read() -> None:
        get, last = client.get, "0"
        while not stop.is_set():
            value = get("k")
            if value != last:
                last = value
                first_seen.setdefault(value, time.monotonic())
            if pause:
                time.sleep(pause)

    threads = [threading.Thread(target=read, daemon=True) for _ in range(readers)]
    client.get("k")
    for thread in threads:
        thread.start()
    samples: list[float] = []
    try:
        for cycle in range(1, cycles + 1):
            time.sleep(0.02)
            deadline = client._records["k"][EXPIRES_AT]  # the cached value's TTL deadline
            store.put("k", str(cycle).encode())
            give_up = time.monotonic() + 5
            while str(cycle) not in first_seen and time.monotonic() < give_up:
                time.sleep(0.001)
            if str(cycle) in first_seen:
                samples.append(first_seen[str(cycle)] - deadline)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        client.close()
    return {
        "n": len(samples),
        "missed": cycles - len(samples),
        "p50_ms": rank_percentile(samples, 0.5) * 1e3,
        "p99_ms": rank_percentile(samples, 0.99) * 1e3,
        "max_ms": max(samples) * 1e3,
        "min_ms": min(samples) * 1e3,
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {"loadavg_before": os.getloadavg(), "quick": quick, "ttl_s": TTL}
    data["miss_ns"] = miss_path(quick=quick)
    print(data["miss_ns"], flush=True)
    data["expiry"] = {}
    for name, (readers, pause, ahead) in LOADS.items():
        data["expiry"][name] = expiry_overshoot(
            readers, pause, cycles=5 if quick else 40, ahead=ahead
        )
        print(name, data["expiry"][name], flush=True)
    data["loadavg_after"] = os.getloadavg()
    return data


def markdown(data: dict[str, Any]) -> str:
    miss = data["miss_ns"]
    raw = miss["raw store get"]
    lines = [
        "| read of a key not cached (memory://) | ns per read | over the raw store call |",
        "|---|---:|---:|",
    ]
    for name, ns in sorted(miss.items(), key=lambda item: item[1]):
        lines.append(f"| {name} | {ns:,.0f} | {ns - raw:+,.0f} ns |")
    lines += [
        "",
        f"| readers (TTL {data['ttl_s'] * 1e3:.0f} ms, no watch) | TTL deadline → first read "
        "of the new value, p50 | p99 | max | earliest | missed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    order = list(LOADS)
    for name, row in sorted(
        data["expiry"].items(), key=lambda item: order.index(item[0]) if item[0] in order else 99
    ):
        lines.append(
            f"| {name} | {row['p50_ms']:+.1f} ms | {row['p99_ms']:+.1f} ms | "
            f"{row['max_ms']:+.1f} ms | {row['min_ms']:+.1f} ms | {row['missed']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import section_main

    return section_main("cache_paths", run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
