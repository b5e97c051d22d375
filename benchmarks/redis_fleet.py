"""One fleet member: a process with reader threads, reading hot keys through a Client.

Run as ``python -m benchmarks.redis_fleet '<json config>'``; prints one JSON line of
results. The store is a SQLite file wrapped in :class:`CountingBackend`, which counts
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
    stop_at = config["start_at"] + config["duration"]
    reads = [0] * config["threads"]
    failures: list[str] = []

    def reader(index: int) -> None:
        n = 0
        try:
            while True:
                for key in keys:
                    client.get(key)
                n += len(keys)
                if time.time() >= stop_at:
                    break
        except Exception as exc:  # counted, not raised: the parent asserts on it
            failures.append(f"{type(exc).__name__}: {exc}")
        reads[index] = n

    delay = config["start_at"] - time.time()
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
    return {
        "store_gets": dict(backend.gets),
        "reads": sum(reads),
        "elapsed": elapsed,
        "failures": failures[:5],
        "failed": len(failures),
        "stats": stats,
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
