"""Kubernetes mounted volume: a kubelet swap until the client has the new value.

    .venv/bin/python -m benchmarks.k8s_volume [--quick]

A volume in a temporary directory is updated the way the kubelet does it (new
timestamped directory, ``..data`` renamed over, old directory removed:
``tests/kubelet_volume.py``) by a process of its own, as the kubelet is, one swap at a
time, 50-100 ms apart. One
``veltrix.Client`` on ``k8s-volume://`` (TTL 1 h, so only the watch can bring the
value) subscribes to the volume; with *busy* load 4 threads also read the key through
that client in a tight loop. Measured from the start of the swap (the kubelet's first
write) until the client's callback sees the new value, and until every reader's
``get`` returns it, p50 / p99; watch by inotify (watchfiles) and by polling ``..data``
every 100 ms (the default is 1 s; a poll's delay is uniform over the interval).

The kubelet's own delay (its sync period plus its ConfigMap cache TTL, about a minute
by default) comes before all of this and is not measured here.

Then the cost of a cached read: ``Client.get`` of a key from the volume against
``dict.get`` (the cheapest honest alternative: values loaded once into a dict at
start, never updated), and the store's own ``get`` (one ``readlink`` of ``..data``
per call, no client cache), in interleaved rounds.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks._common import compare_ns, machine, package_versions, summary_ms
from tests.kubelet_volume import AtomicWriter
from veltrix import CachePolicy, Client
from veltrix.adapters.k8s_volume import KubernetesVolumeBackend
from veltrix.backend import Change

KEY = "timeout_ms"
KEYS = 20  # keys in the volume: a swap re-reads all of them
READERS = 4
POLL_INTERVAL = 0.1
GAP = (0.05, 0.1)
MODES = {
    "inotify": f"?watch=inotify&poll_interval={POLL_INTERVAL}",
    "poll": f"?watch=poll&poll_interval={POLL_INTERVAL}",
}


def _payload(n: int) -> dict[str, bytes]:
    return {**{f"key{i:02d}": f"{n}-{i}".encode() for i in range(KEYS)}, KEY: f"v{n}".encode()}


class _Observer:
    """The callback's and the readers' first sight of the expected value."""

    def __init__(self, client: Client, readers: int) -> None:
        self.client = client
        self.expected = ""
        self.callback_at = 0.0
        self.seen_at = [0.0] * readers
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(readers)
        ]

    def on_change(self, change: Change) -> None:
        entry = change.entry
        if change.key == KEY and entry is not None and entry.value.decode() == self.expected:
            self.callback_at = self.callback_at or time.perf_counter()

    def _read(self, index: int) -> None:
        get, seen, clock = self.client.get, self.seen_at, time.perf_counter
        while not self.stop.is_set():
            if not seen[index] and get(KEY) == self.expected:
                seen[index] = clock()

    def reset(self, expected: str) -> None:
        self.callback_at = 0.0
        self.seen_at[:] = [0.0] * len(self.seen_at)
        self.expected = expected

    def done(self) -> bool:
        return bool(self.callback_at) and all(self.seen_at)


def _kubelet(connection: Connection, target: str) -> None:
    """The kubelet's side, in a process of its own (as the real one is): one swap per
    request, answered with its start time (``perf_counter`` is CLOCK_MONOTONIC, one
    clock for every process of the machine) and its duration."""
    writer = AtomicWriter(Path(target))
    while (n := connection.recv()) is not None:
        started = time.perf_counter()
        writer.write(_payload(n))
        connection.send((started, time.perf_counter() - started))


def measure(mode: str, readers: int, swaps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        writer = AtomicWriter(Path(directory) / "config")
        writer.write(_payload(0))
        url = f"k8s-volume://{writer.target}{MODES[mode]}"
        ours, theirs = multiprocessing.Pipe()
        kubelet = multiprocessing.get_context("spawn").Process(
            target=_kubelet, args=(theirs, str(writer.target)), daemon=True
        )
        kubelet.start()
        callback: list[float] = []
        readers_seen: list[float] = []
        swap_s: list[float] = []
        missed = 0
        with Client(url, cache=CachePolicy(ttl=3600)) as client:
            observer = _Observer(client, readers)
            observer.reset("v0")
            client.watch("", observer.on_change)
            client.get(KEY)
            for thread in observer.threads:
                thread.start()
            time.sleep(0.3)
            for n in range(1, swaps + 1):
                observer.reset(f"v{n}")
                ours.send(n)
                started, took = ours.recv()
                swap_s.append(took)
                deadline = time.monotonic() + 5
                while not observer.done() and time.monotonic() < deadline:
                    time.sleep(0.0005)
                if observer.done():
                    callback.append(observer.callback_at - started)
                    if readers:
                        readers_seen.append(max(observer.seen_at) - started)
                else:
                    missed += 1
                time.sleep(random.uniform(*GAP))
            observer.stop.set()
            for thread in observer.threads:
                thread.join(5)
        ours.send(None)
        kubelet.join(10)
    result: dict[str, Any] = {
        "mode": mode,
        "readers": readers,
        "swaps": swaps,
        "missed": missed,
        "swap_p50_ms": summary_ms(swap_s)["p50_ms"],
        "callback": summary_ms(callback) if callback else None,
        "readers_seen": summary_ms(readers_seen) if readers_seen else None,
    }
    return result


def hot_path(quick: bool) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as directory:
        writer = AtomicWriter(Path(directory) / "config")
        writer.write(_payload(0))
        url = f"k8s-volume://{writer.target}"
        store = KubernetesVolumeBackend.from_url(url)
        plain = {KEY: "v0"}
        with Client(url, cache=CachePolicy(ttl=3600)) as client:
            client.watch("", lambda change: None)
            assert client.get(KEY) == "v0" and store.get(KEY) is not None
            calls, runs = (20_000, 9) if quick else (200_000, 31)
            results = compare_ns(
                {
                    "dict.get (loaded once, never updated)": (
                        "get(key)",
                        {"get": plain.get, "key": KEY},
                    ),
                    "veltrix Client.get (k8s-volume)": (
                        "get(key)",
                        {"get": client.get, "key": KEY},
                    ),
                    "KubernetesVolumeBackend.get (no client cache)": (
                        "get(key)",
                        {"get": store.get, "key": KEY},
                    ),
                },
                calls=calls // 10 if quick else calls,
                runs=runs,
            )
        store.close()
    base = results["dict.get (loaded once, never updated)"]["median_ns"]
    for figures in results.values():
        figures["x_dict_get"] = figures["median_ns"] / base
    return results


def run(quick: bool = False) -> dict[str, Any]:
    swaps = 20 if quick else 100
    rows = []
    for mode in MODES:
        for readers in (0, READERS):
            rows.append(measure(mode, readers, swaps))
            print(rows[-1], flush=True)
    return {
        "benchmark": "k8s_volume",
        "command": ".venv/bin/python -m benchmarks.k8s_volume" + (" --quick" if quick else ""),
        "keys_in_volume": KEYS + 1,
        "poll_interval_s": POLL_INTERVAL,
        "rows": rows,
        "hot_path": hot_path(quick),
        "loadavg": os.getloadavg(),
        "machine": machine(),
        "versions": package_versions("veltrix", "watchfiles"),
        "quick": quick,
    }


def _ms(summary: dict[str, float] | None, field: str) -> str:
    return "-" if summary is None else f"{summary[field]:.1f} ms"


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "| watch | readers | swap → callback p50 | p99 | swap → every reader's get p50 | p99 "
        "| swap itself p50 | missed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        load = f"{row['readers']} busy" if row["readers"] else "idle"
        lines.append(
            f"| {row['mode']} | {load} | {_ms(row['callback'], 'p50_ms')} "
            f"| {_ms(row['callback'], 'p99_ms')} | {_ms(row['readers_seen'], 'p50_ms')} "
            f"| {_ms(row['readers_seen'], 'p99_ms')} | {row['swap_p50_ms']:.2f} ms | {row['missed']} |"
        )
    lines += ["", "| cached read | median ns | p99 ns | x dict.get |", "|---|---:|---:|---:|"]
    for name, f in data["hot_path"].items():
        lines.append(
            f"| {name} | {f['median_ns']:.1f} | {f['p99_ns']:.1f} | {f['x_dict_get']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import section_main

    return section_main("k8s_volume", run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
