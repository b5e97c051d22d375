"""One fleet member: a process with reader threads, reading hot keys through a Client.

Run as ``python -m benchmarks.redis_fleet '<json config>'``: prints ``ready`` once its
client exists, reads the common start time (epoch seconds) from stdin, then prints
one JSON line of results (use :func:`run_fleet`). The store is a SQLite file wrapped in :class:`CountingBackend`, which counts
the ``get`` calls that really reach the store (independently of the client's own
counters). Used by ``tests/integration/test_redis_cache.py`` and
``benchmarks/bench_redis_l2.py``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

from veltrix import CachePolicy, Client
from veltrix.adapters.sqlite import SQLiteBackend
from veltrix.backend import AbsentType, Entry


class CountingBackend:
    """A SQLite store that counts the reads reaching it, per key."""

    schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = SQLiteBackend.transient_errors
    max_value_bytes: ClassVar[int | None] = SQLiteBackend.max_value_bytes

    def __init__(self, path: str, *, delay: float = 0.0) -> None:
        self.inner = SQLiteBackend(path)
        self.url = self.inner.url
        self.delay = delay  # simulated store latency per read
        self.gets: Counter[str] = Counter()
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        with self._lock:
            self.gets[key] += 1
        if self.delay:
            time.sleep(self.delay)
        return self.inner.get(key)

    def list(self, prefix: str) -> Iterator[Entry]:
        return self.inner.list(prefix)

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        return self.inner.put(key, value, if_version=if_version)

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        return self.inner.delete(key, if_version=if_version)

    def close(self) -> None:
        self.inner.close()


def run(config: dict[str, Any]) -> dict[str, Any]:
    backend = CountingBackend(config["store"], delay=config.get("delay", 0.0))
    policy = CachePolicy(ttl=config["ttl"], negative_ttl=config["ttl"], watch=False)
    client = Client(backend, cache=policy, cache_url=config.get("cache_url"))
    keys: list[str] = config["keys"]
    reads = [0] * config["threads"]
    failures: list[str] = []
    # Every ``sample_every``-th read is timed (0: none), so the percentiles cover misses too.
    sample_every: int = config.get("sample_every", 0)
    samples: list[list[float]] = [[] for _ in range(config["threads"])]

    def reader(index: int) -> None:
        n = 0
        timed = samples[index]
        clock = time.perf_counter
        try:
            while True:
                if sample_every:
                    for i, key in enumerate(keys):
                        if i % sample_every:
                            client.get(key)
                        else:
                            started = clock()
                            client.get(key)
                            timed.append(clock() - started)
                else:
                    for key in keys:
                        client.get(key)
                n += len(keys)
                if time.time() >= stop_at:
                    break
        except Exception as exc:  # counted, not raised: the parent asserts on it
            failures.append(f"{type(exc).__name__}: {exc}")
        reads[index] = n

    # Handshake: "ready" once the client exists, then the parent sends the common start time.
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    stop_at = start_at + config["duration"]
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    started = time.monotonic()
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(config["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stats = client.stats()
    client.close()
    latencies = sorted(t for timed in samples for t in timed)
    return {
        "latency_s": {
            name: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
            for name, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999), ("max", 1.0))
        }
        if latencies
        else {},
        "store_gets": dict(backend.gets),
        "reads": sum(reads),
        "elapsed": elapsed,
        "failures": failures[:5],
        "failed": len(failures),
        "stats": stats,
    }


def run_fleet(
    config: dict[str, Any], processes: int, *, timeout: float = 120
) -> list[dict[str, Any]]:
    """Start ``processes`` workers, start them together once all are ready, collect results."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.redis_fleet", json.dumps(config)],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("fleet worker did not start")
        start_at = time.time() + 0.3
        results = []
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at}\n")
            proc.stdin.flush()
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"fleet worker failed ({proc.returncode})")
            results.append(json.loads(out))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
