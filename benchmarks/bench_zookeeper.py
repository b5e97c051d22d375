"""ZooKeeper benchmarks against the real server (``scripts/services up zookeeper``).

    .venv/bin/python -m benchmarks.bench_zookeeper [--quick]

1. watches, side by side for both watch modes (persistent recursive watches,
   the default on ZooKeeper >= 3.6, and one-shot watches):
   - write -> watch-callback latency: the time from the start of ``put`` on one
     connection to the watch callback on another (one watcher per mode, each on its
     own connection, all seeing the same writes), one write at a time (so nothing
     coalesces), p50 / p99, next to the bare write latency;
   - a burst: writes to distinct keys issued back to back, time until the last
     callback (how the watch keeps up when events pile up);
   - ``watch()`` on a tree of existing keys: set-up time and watches the server holds.
2. reads: ``veltrix.Client`` cached ``get`` vs kazoo's ``get`` vs the adapter's
   uncached ``ZooKeeperBackend.get``.
3. list: the adapter's pipelined ``list`` vs a walk that waits for each znode.

Prints a markdown section and writes the same figures to
``benchmarks/results/zookeeper.json``. ZooKeeper 3.8 standalone on loopback, with
fsync of its transaction log on every write (the server default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

import veltrix
from benchmarks._common import load_services_env, summary_ms
from veltrix.adapters.zookeeper import ZooKeeperBackend
from veltrix.backend import Change

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "zookeeper.json"


def per_call_us(fns: dict[str, Any], calls: dict[str, int], runs: int = 5) -> dict[str, Any]:
    """Median and best of ``runs`` timings per candidate, in µs per call.

    Runs alternate between candidates so drift (other load on the machine) hits all.
    """
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name] * 1e6)
    return {
        name: {
            "calls": calls[name] * runs,
            "median_us": statistics.median(values),
            "best_us": min(values),
        }
        for name, values in samples.items()
    }


def bench_propagation(
    hosts: str, chroot: str, writes: int, modes: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Every write is seen by one watcher per mode at once, so both modes are measured
    against the same writes (same server state, same warm-up)."""
    url = f"zookeeper://{hosts}{chroot}"
    writer = ZooKeeperBackend.from_url(url)
    watchers = {mode: ZooKeeperBackend.from_url(f"{url}?watch_mode={mode}") for mode in modes}
    arrived: dict[str, dict[str, float]] = {mode: {} for mode in modes}
    cond = threading.Condition()

    def recorder(mode: str) -> Callable[[Change], None]:
        def on_change(change: Change) -> None:
            now = time.perf_counter()
            if change.entry is not None:
                with cond:
                    arrived[mode][change.entry.value.decode()] = now
                    cond.notify_all()

        return on_change

    keys = [f"prop/k{i}" for i in range(10)]
    for key in keys:
        writer.put(key, b"init")
    watches = [watchers[mode].watch("prop", recorder(mode)) for mode in modes]
    assert [w.mode for w in watches] == list(modes)
    latencies: dict[str, list[float]] = {mode: [] for mode in modes}
    lost = dict.fromkeys(modes, 0)
    put_only: list[float] = []
    try:
        for i in range(writes):
            token = f"w{i}"
            start = time.perf_counter()
            writer.put(keys[i % len(keys)], token.encode())
            put_only.append(time.perf_counter() - start)
            with cond:
                cond.wait_for(lambda: all(token in arrived[m] for m in modes), timeout=10)  # noqa: B023
            for mode in modes:
                if token in arrived[mode]:
                    latencies[mode].append(arrived[mode][token] - start)
                else:
                    lost[mode] += 1
    finally:
        for watch in watches:
            watch.stop()
        writer.close()
        for watcher in watchers.values():
            watcher.close()
    return {
        mode: {
            "writes": writes,
            "not_delivered_within_10s": lost[mode],
            "write_to_callback": summary_ms(latencies[mode]),
            "write_only": summary_ms(put_only),
        }
        for mode in modes
    }


def bench_burst(hosts: str, chroot: str, keys: int, mode: str) -> dict[str, Any]:
    """``keys`` puts to distinct keys back to back; time until every callback ran."""
    url = f"zookeeper://{hosts}{chroot}"
    writer = ZooKeeperBackend.from_url(url)
    watcher = ZooKeeperBackend.from_url(f"{url}?watch_mode={mode}")
    prefix = f"burst-{mode}"
    writer.put(f"{prefix}/seed", b"x")
    seen: set[str] = set()
    done = threading.Event()

    def on_change(change: Change) -> None:
        seen.add(change.key)
        if len(seen) >= keys:
            done.set()

    watch = watcher.watch(prefix, on_change)
    try:
        start = time.perf_counter()
        for i in range(keys):
            writer.put(f"{prefix}/g{i % 10}/k{i}", b"v")
        writes_s = time.perf_counter() - start
        delivered = done.wait(60)
        last_callback_s = time.perf_counter() - start
    finally:
        watch.stop()
        writer.close()
        watcher.close()
    return {
        "keys": keys,
        "all_delivered": delivered,
        "writes_ms": writes_s * 1e3,
        "last_callback_ms": last_callback_s * 1e3,
        "lag_after_last_write_ms": (last_callback_s - writes_s) * 1e3,
    }


def bench_watch_setup(hosts: str, chroot: str, keys: int) -> dict[str, Any]:
    """``watch()`` on a tree of ``keys`` keys, per mode: time and server-side watches."""
    url = f"zookeeper://{hosts}{chroot}"
    with_kazoo = KazooClient(hosts=hosts)
    with_kazoo.start(timeout=10)
    for i in range(keys):
        with_kazoo.create(f"{chroot}/setup/g{i % 10}/k{i}", b"v", makepath=True)
    with_kazoo.stop()
    with_kazoo.close()
    out: dict[str, Any] = {"keys": keys}
    for mode in ("persistent", "oneshot"):
        watcher = ZooKeeperBackend.from_url(f"{url}?watch_mode={mode}")
        watcher.get("setup")  # connected before timing
        start = time.perf_counter()
        watch = watcher.watch("setup", lambda change: None)
        elapsed = time.perf_counter() - start
        session = watcher._client.client_id[0]
        out[mode] = {
            "watch_ms": elapsed * 1e3,
            "server_watches": len(session_watches(hosts, session)),
        }
        watch.stop()
        watcher.close()
    return out


def four_letter(hosts: str, command: str, *, timeout: float = 5.0) -> str:
    """The first server's answer to a four-letter command (``srvr``, ``wchc``...)."""
    host, port = hosts.split(",", maxsplit=1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(command.encode())
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode()


def session_watches(hosts: str, session: int) -> list[str]:
    """The paths the server holds watches on for one session (``wchc``), sorted."""
    reply = four_letter(hosts, "wchc")
    if "not in the whitelist" in reply:
        raise RuntimeError(reply.strip())
    paths: list[str] = []
    current = None
    for line in reply.splitlines():
        if line.startswith("0x"):
            current = int(line, 16)
        elif line.startswith("\t") and current == session:
            paths.append(line.strip())
    return sorted(paths)


def bench_reads(hosts: str, chroot: str, quick: bool) -> dict[str, Any]:
    url = f"zookeeper://{hosts}{chroot}"
    backend = ZooKeeperBackend.from_url(url)
    backend.put("read/timeout_ms", b"250")
    raw = KazooClient(hosts=hosts)
    raw.start(timeout=10)
    path = f"{chroot}/read/timeout_ms"
    client = veltrix.Client(url, cache=veltrix.CachePolicy(ttl=3600.0))
    try:
        assert client.get("read/timeout_ms") == "250"
        assert raw.get(path)[0] == b"250"
        store_calls = 200 if quick else 1000
        timings = per_call_us(
            {
                "cached": lambda: client.get("read/timeout_ms"),
                "kazoo": lambda: raw.get(path),
                "adapter": lambda: backend.get("read/timeout_ms"),
            },
            {"cached": 20_000 if quick else 200_000, "kazoo": store_calls, "adapter": store_calls},
        )
        cached, kazoo_get, adapter_get = timings["cached"], timings["kazoo"], timings["adapter"]
        stats = client.stats()
    finally:
        client.close()
        raw.stop()
        raw.close()
        backend.close()
    return {
        "veltrix_cached_get": cached,
        "kazoo_get": kazoo_get,
        "adapter_uncached_get": adapter_get,
        "kazoo_over_cached": kazoo_get["median_us"] / cached["median_us"],
        "adapter_over_kazoo": adapter_get["median_us"] / kazoo_get["median_us"],
        "client_store_calls": stats["store_calls"],
    }


def bench_list(hosts: str, chroot: str, nodes: int) -> dict[str, Any]:
    url = f"zookeeper://{hosts}{chroot}"
    backend = ZooKeeperBackend.from_url(url)
    raw = KazooClient(hosts=hosts)
    raw.start(timeout=10)
    try:
        transaction = raw.transaction()
        transaction.create(f"{chroot}/tree", b"")  # parents with data: keys too
        for group in range(10):
            transaction.create(f"{chroot}/tree/g{group}", b"")
        for i in range(nodes):
            transaction.create(f"{chroot}/tree/g{i % 10}/k{i}", b"v%d" % i)
        transaction.commit()

        def sequential() -> int:
            count, stack = 0, [f"{chroot}/tree"]
            while stack:
                node = stack.pop()
                data, _ = raw.get(node)
                count += data is not None
                stack.extend(f"{node}/{c}" for c in raw.get_children(node))
            return count

        assert sequential() == nodes + 11 == len(list(backend.list("tree")))
        timings = per_call_us(
            {"pipelined": lambda: list(backend.list("tree")), "sequential": sequential},
            {"pipelined": 1, "sequential": 1},
        )
        pipelined, one_by_one = timings["pipelined"], timings["sequential"]
    finally:
        raw.stop()
        raw.close()
        backend.close()
    return {
        "keys": nodes + 11,
        "pipelined_list_ms": pipelined["median_us"] / 1e3,
        "sequential_walk_ms": one_by_one["median_us"] / 1e3,
        "speedup": one_by_one["median_us"] / pipelined["median_us"],
    }


def server_version(hosts: str) -> str:
    raw = KazooClient(hosts=hosts)
    raw.start(timeout=10)
    try:
        return ".".join(str(part) for part in raw.server_version())
    finally:
        raw.stop()
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args()
    load_services_env()
    hosts = os.environ.get("VELTRIX_TEST_ZOOKEEPER")
    if not hosts:
        raise SystemExit("VELTRIX_TEST_ZOOKEEPER is not set: run scripts/services up zookeeper")
    os.environ.pop("VELTRIX_ZK_AUTH", None)
    chroot = f"/veltrix-bench/{uuid.uuid4().hex[:10]}"
    writes = 200 if args.quick else 1000

    modes = ("persistent", "oneshot")
    by_mode = bench_propagation(hosts, chroot, writes, modes)
    bursts = {mode: bench_burst(hosts, chroot, writes, mode) for mode in modes}
    setup = bench_watch_setup(hosts, chroot, writes)
    propagation = by_mode["persistent"]  # the default on this server
    reads = bench_reads(hosts, chroot, args.quick)
    listing = bench_list(hosts, chroot, 200 if args.quick else 1000)

    results = {
        "store": "zookeeper",
        "quick": args.quick,
        "server": f"ZooKeeper {server_version(hosts)} standalone on loopback",
        "kazoo": version("kazoo"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "propagation": propagation,
        "propagation_by_mode": by_mode,
        "burst_by_mode": bursts,
        "watch_setup": setup,
        "reads": reads,
        "list": listing,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")

    r = reads
    print(f"## ZooKeeper ({results['server']}, kazoo {results['kazoo']}, {os.cpu_count()} CPUs)\n")
    print(f"Write -> watch callback, {writes} writes one at a time, one watcher per mode:\n")
    print("| watch_mode | measure | p50 | p99 | max | not delivered in 10 s |")
    print("|---|---|---|---|---|---|")
    for mode, prop in by_mode.items():
        for label, m in (
            ("put -> callback", prop["write_to_callback"]),
            ("put alone", prop["write_only"]),
        ):
            print(
                f"| {mode} | {label} | {m['p50_ms']:.2f} ms | {m['p99_ms']:.2f} ms | "
                f"{m['max_ms']:.2f} ms | {prop['not_delivered_within_10s']} |"
            )
    print(
        f"\nBurst of {writes} puts to distinct keys, back to back, and `watch()` on a tree of {writes} keys:\n"
    )
    print(
        "| watch_mode | puts took | last callback | lag after last put | watch() took | server watches |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for mode, b in bursts.items():
        st = setup[mode]
        print(
            f"| {mode} | {b['writes_ms']:.0f} ms | {b['last_callback_ms']:.0f} ms | "
            f"{b['lag_after_last_write_ms']:.1f} ms | {st['watch_ms']:.1f} ms | {st['server_watches']} |"
        )
    print()
    print("Reads of one key (median of 5 runs):\n")
    print("| read | per call | ratio |")
    print("|---|---|---|")
    cached_us = r["veltrix_cached_get"]["median_us"]
    print(f"| veltrix.Client cached get | {cached_us * 1e3:.0f} ns | 1x |")
    print(
        f"| kazoo get | {r['kazoo_get']['median_us']:.1f} µs | "
        f"{r['kazoo_over_cached']:.0f}x slower |"
    )
    print(
        f"| ZooKeeperBackend.get (uncached) | {r['adapter_uncached_get']['median_us']:.1f} µs | "
        f"{r['adapter_over_kazoo']:.2f}x kazoo |"
    )
    print(
        f"\nList of {listing['keys']} keys in 10 groups: pipelined {listing['pipelined_list_ms']:.1f} ms"
        f" vs one znode at a time {listing['sequential_walk_ms']:.1f} ms "
        f"({listing['speedup']:.1f}x).\n"
    )
    print(f"Written to {RESULTS.relative_to(ROOT)}.")


if __name__ == "__main__":
    main()
