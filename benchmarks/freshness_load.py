"""Freshness under load: a write until every busy reader of one process has read it.

    scripts/services up zookeeper redis consul
    .venv/bin/python -m benchmarks.freshness_load [--quick] [--stores zookeeper,redis,consul,sqlite]

One reading process: W reader threads read one key through one watching ``Client``
(TTL 60 s, so only the watch can bring the change), either in a tight loop
("busy") or sleeping 1 ms between reads ("paced", an event handler doing I/O). A
writer (another client) writes a new value; the time until every reader has read
it is one sample (the clock starts when the ``put`` starts: the writer shares the
process, and its round trip, also delayed by the busy readers, is given apart). Unlike ``freshness.py`` (idle clients), this is what a process
that is busy serving events sees.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from veltrix import CachePolicy, Client

STORES = ("zookeeper", "redis", "consul", "sqlite")
LOADS = {"busy": 0.0, "paced": 0.001}


class _Readers:
    def __init__(self, client: Client, key: str, threads: int, pause: float) -> None:
        self.client, self.key, self.pause = client, key, pause
        self.expected = ""
        self.seen_at = [0.0] * threads
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(threads)
        ]

    def _read(self, index: int) -> None:
        get, key, seen = self.client.get, self.key, self.seen_at
        clock = time.perf_counter
        while not self.stop.is_set():
            if not seen[index] and get(key) == self.expected:
                seen[index] = clock()
            if self.pause:
                time.sleep(self.pause)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


def measure(url: str, *, threads: int, pause: float, writes: int) -> dict[str, Any]:
    from benchmarks._common import summary_ms

    key = "fresh/load"
    samples: list[float] = []
    puts: list[float] = []
    missed = 0
    with Client(url, cache=CachePolicy(ttl=0, watch=False)) as writer:
        writer.put(key, "v-start")
        with Client(url, cache=CachePolicy(ttl=60)) as client:
            client.get(key)
            readers = _Readers(client, key, threads, pause)
            readers.expected = "v-start"
            readers.start()
            time.sleep(0.3)
            for n in range(writes):
                value = f"v-{n}"
                readers.seen_at[:] = [0.0] * threads  # in place: the readers hold the list
                readers.expected = value
                put_started = time.perf_counter()
                writer.put(key, value)
                puts.append(time.perf_counter() - put_started)
                deadline = time.monotonic() + 5
                while not all(readers.seen_at) and time.monotonic() < deadline:
                    time.sleep(0.0005)
                if all(readers.seen_at):
                    samples.append(max(readers.seen_at) - put_started)
                else:
                    missed += 1
                time.sleep(0.05)
            readers.close()
    if not samples:
        return {"n": 0, "missed": missed}
    return {**summary_ms(samples), "missed": missed, "put_p50_ms": summary_ms(puts)["p50_ms"]}


def run(stores: tuple[str, ...] = STORES, *, quick: bool = False) -> dict[str, Any]:
    from benchmarks._stores import store_url

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name in stores:
            cleanups: list[Any] = []
            url = store_url(name, Path(directory), cleanups)
            if url is None:
                print(f"[freshness_load] {name}: server not running, skipped", flush=True)
                continue
            try:
                for load, pause in LOADS.items():
                    result = measure(url, threads=4, pause=pause, writes=10 if quick else 40)
                    rows.append({"store": name, "load": load, "readers": 4, **result})
                    print(rows[-1], flush=True)
            finally:
                for cleanup in cleanups:
                    cleanup()
    return {"rows": rows, "loadavg": os.getloadavg(), "quick": quick}


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "| store | readers | write → every reader, p50 | p99 | max | put p50 | missed |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        if not row.get("n"):
            lines.append(
                f"| {row['store']} | {row['readers']} {row['load']} | - | - | - | - | all |"
            )
            continue
        lines.append(
            f"| {row['store']} | {row['readers']} {row['load']} | {row['p50_ms']:.1f} ms "
            f"| {row['p99_ms']:.1f} ms | {row['max_ms']:.1f} ms | {row['put_p50_ms']:.1f} ms "
            f"| {row['missed']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import section_main

    return section_main("freshness_load", run, markdown, argv, stores=STORES)


if __name__ == "__main__":
    raise SystemExit(main())
