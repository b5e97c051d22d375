"""The founding scenario: a consumer loop whose every event makes 5 configuration reads.

    .venv/bin/python -m benchmarks.founding [--quick]

Consumer threads T = 1, 2, 4, 8, 16 share one configuration source and handle
events as fast as they can for a fixed time; each event is 5 reads and nothing
else, so the figure is the ceiling the configuration layer puts on a service.
Sources, for ZooKeeper and Consul:

- ``direct``: the store's own client on every read (kazoo ``get`` on one shared
  ``KazooClient``, which pipelines concurrent requests; py-consul ``kv.get`` with
  one ``consul.Consul`` per thread, so threads do not queue on one HTTP session);
- ``L1``: one shared ``veltrix.Client`` (TTL 30 s, watch on);
- ``L1+L2``: the same with ``cache_url`` = the local Redis (L2 only matters on a
  miss, so in steady state this is L1 plus its bus listener);
- the cheapest honest caches (``benchmarks/baselines.py``) over the direct client:
  a hand-written TTL dict, ``cachetools.TTLCache`` with a lock, ``functools.lru_cache``.

At each thread count the sources run in interleaved rounds (each round runs every
source for a slice of the time, in a rotated order), and each source's figure is its
median round: the machine's speed drifts over minutes, and a source measured in one
block of time would carry that drift into its ratios.

Target: events/s through Veltrix >= 100x reading the store directly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks._common import load_services_env, machine, package_versions, write_json
from benchmarks.baselines import available as available_baselines

KEYS = [
    "payments/timeout_ms",
    "payments/retries",
    "payments/currency",
    "fraud/threshold",
    "features/new_checkout",
]
VALUES = ["250", "3", "EUR", "0.82", "true"]
THREADS = [1, 2, 4, 8, 16]
QUICK_THREADS = [1, 4]
ROUNDS = 4  # interleaved rounds per thread count (see the module docstring)


def run_consumers(
    read: Callable[[int], Callable[[str], object]], threads: int, seconds: float
) -> dict[str, float]:
    """Events handled by ``threads`` consumers in ``seconds``; ``read(i)`` gives thread i its reader."""
    readers = [read(i) for i in range(threads)]
    counts = [0] * threads
    stop = [False]
    barrier = threading.Barrier(threads + 1)
    errors: list[str] = []

    def consumer(index: int) -> None:
        get = readers[index]
        k0, k1, k2, k3, k4 = KEYS
        events = 0
        barrier.wait()
        try:
            while not stop[0]:
                get(k0)
                get(k1)
                get(k2)
                get(k3)
                get(k4)
                events += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        counts[index] = events

    pool = [threading.Thread(target=consumer, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop[0] = True
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"consumer failed: {errors[0]}")
    return {"events": sum(counts), "seconds": elapsed, "events_per_s": sum(counts) / elapsed}


def _zookeeper_direct(
    hosts: str, chroot: str
) -> tuple[Callable[[int], Callable[[str], object]], Callable[[], None]]:
    from kazoo.client import KazooClient

    raw = KazooClient(hosts=hosts)
    raw.start(timeout=10)

    def reader(_: int) -> Callable[[str], object]:
        def get(key: str) -> object:
            return raw.get(f"{chroot}/{key}")[0].decode()

        return get

    def close() -> None:
        raw.stop()
        raw.close()

    return reader, close


def _consul_direct(
    address: str, prefix: str
) -> tuple[Callable[[int], Callable[[str], object]], Callable[[], None]]:
    import consul

    host, _, port = address.rpartition(":")
    clients: list[Any] = []

    def reader(_: int) -> Callable[[str], object]:
        kv = consul.Consul(host=host, port=int(port)).kv
        clients.append(kv)

        def get(key: str) -> object:
            return kv.get(f"{prefix}/{key}")[1]["Value"].decode()

        return get

    return reader, clients.clear


def _shared(get: Callable[[str], object]) -> Callable[[int], Callable[[str], object]]:
    """Every consumer thread reads through the same ``get`` (one shared client)."""
    return lambda _index: get


def _nothing() -> None:
    return None


def _baseline(
    direct: Callable[[int], Callable[[str], object]],
    make: Callable[[Callable[[str], object], float], Callable[[str], object]],
) -> tuple[Callable[[int], Callable[[str], object]], Callable[[], None]]:
    """One cache of the ``make`` kind over thread 0's direct reader, shared by all threads."""
    shared = make(direct(0), 30.0)
    return (lambda _index: shared), _nothing


def _store_setups(quick: bool) -> dict[str, dict[str, Any]]:
    env = os.environ.get
    stores: dict[str, dict[str, Any]] = {}
    name = f"bench-{uuid.uuid4().hex[:8]}"
    if env("VELTRIX_TEST_ZOOKEEPER"):
        hosts = str(env("VELTRIX_TEST_ZOOKEEPER"))
        chroot = f"/veltrix-bench/{name}"
        stores["zookeeper"] = {
            "url": f"zookeeper://{hosts}{chroot}",
            "direct": lambda: _zookeeper_direct(hosts, chroot),
            "direct_client": "kazoo KazooClient.get (one shared client)",
        }
    if env("VELTRIX_TEST_CONSUL_ADDR"):
        address = str(env("VELTRIX_TEST_CONSUL_ADDR"))
        prefix = f"veltrix-bench/{name}"
        stores["consul"] = {
            "url": f"consul://{address}/{prefix}",
            "direct": lambda: _consul_direct(address, prefix),
            "direct_client": "py-consul kv.get (one consul.Consul per thread)",
            "server": "tests/servers/consul (Python test server)",
        }
    return stores


def run(
    quick: bool = False,
    *,
    stores: dict[str, dict[str, Any]] | None = None,
    redis_url: str | None = None,
    threads: list[int] | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Measure every mode for every store; ``stores`` maps a name to ``url`` and optionally
    ``direct`` (a factory of per-thread readers + close); the smoke test passes sqlite."""
    import veltrix

    load_services_env()
    if stores is None:
        stores = _store_setups(quick)
    if redis_url is None:
        redis_url = os.environ.get("VELTRIX_TEST_REDIS_URL")
    threads = threads or (QUICK_THREADS if quick else THREADS)
    seconds = seconds or (0.5 if quick else 2.0)
    policy = veltrix.CachePolicy(ttl=30.0, watch=True)
    results: dict[str, Any] = {}
    for store, setup in stores.items():
        seed = veltrix.Client(setup["url"], cache=veltrix.CachePolicy(ttl=0, watch=False))
        for key, value in zip(KEYS, VALUES, strict=True):
            seed.put(key, value)
        modes: dict[str, tuple[Callable[[int], Callable[[str], object]], Callable[[], None]]] = {}
        clients: list[Any] = []
        if "direct" in setup:
            modes["direct"] = setup["direct"]()
            direct_reader, _ = modes["direct"]
            for name, make in available_baselines().items():  # over the same store client
                modes[name] = _baseline(direct_reader, make)
        l1 = veltrix.Client(setup["url"], cache=policy)
        clients.append(l1)
        modes["L1"] = (_shared(l1.get), _nothing)
        if redis_url:
            l2 = veltrix.Client(
                setup["url"],
                cache=policy,
                cache_url=f"{redis_url}?namespace=bench-{uuid.uuid4().hex[:8]}",
            )
            clients.append(l2)
            modes["L1+L2"] = (_shared(l2.get), _nothing)
        for client in clients:  # warm: the scenario is steady state, not cold start
            for key, value in zip(KEYS, VALUES, strict=True):
                assert client.get(key) == value
        rows: list[dict[str, Any]] = []
        try:
            for n in threads:
                row: dict[str, Any] = {"threads": n}
                rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
                order = list(modes)
                for index in range(ROUNDS):  # interleaved, each round in a rotated order
                    for mode in order[index % len(order) :] + order[: index % len(order)]:
                        reader, _close = modes[mode]
                        rounds[mode].append(run_consumers(reader, n, seconds / ROUNDS))
                for mode, samples in rounds.items():
                    row[mode] = {
                        "events": sum(sample["events"] for sample in samples),
                        "events_per_s": statistics.median(s["events_per_s"] for s in samples),
                        "rounds_events_per_s": [s["events_per_s"] for s in samples],
                    }
                if "direct" in row:
                    for mode in ("L1", "L1+L2"):
                        if mode in row:
                            row[f"{mode}_over_direct"] = (
                                row[mode]["events_per_s"] / row["direct"]["events_per_s"]
                            )
                for name in available_baselines():
                    if name in row:
                        row[f"L1_over {name}"] = (
                            row["L1"]["events_per_s"] / row[name]["events_per_s"]
                        )
                rows.append(row)
            store_calls = {
                mode: client.stats()["store_calls"]
                for mode, client in zip(("L1", "L1+L2"), clients, strict=False)
            }
        finally:
            for _reader, close in modes.values():
                close()
            for client in clients:
                client.close()
            for key in KEYS:
                seed.delete(key)
            seed.close()
        results[store] = {
            "direct_client": setup.get("direct_client"),
            "server": setup.get("server"),
            "rows": rows,
            "client_store_calls": store_calls,
        }
    return {
        "benchmark": "founding",
        "quick": quick,
        "reads_per_event": len(KEYS),
        "seconds_per_point": seconds,
        "rounds": ROUNDS,
        "threads": threads,
        "l2": bool(redis_url),
        "stores": results,
        "machine": machine(),
        "versions": package_versions("kazoo", "py-consul", "redis"),
    }


def markdown(data: dict[str, Any]) -> str:
    lines = []
    for store, result in data["stores"].items():
        lines += [
            f"**{store}** (direct = {result['direct_client']}"
            + (f"; server: {result['server']}" if result.get("server") else "")
            + ")",
            "",
            "| threads | direct events/s | L1 events/s | L1+L2 events/s | L1 / direct | L1+L2 / direct |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for row in result["rows"]:

            def cell(mode: str, r: dict[str, Any] = row) -> str:
                return f"{r[mode]['events_per_s']:,.0f}" if mode in r else "-"

            def ratio(name: str, r: dict[str, Any] = row) -> str:
                return f"{r[name]:,.0f}x" if name in r else "-"

            lines.append(
                f"| {row['threads']} | {cell('direct')} | {cell('L1')} | {cell('L1+L2')} | "
                f"{ratio('L1_over_direct')} | {ratio('L1+L2_over_direct')} |"
            )
        names = [n for n in available_baselines() if any(n in r for r in result["rows"])]
        if names:
            lines += [
                "",
                "Against the cheapest honest caches over the same store client "
                "(events/s; L1 / baseline):",
                "",
                "| threads | " + " | ".join(names) + " |",
                "|---:|" + "---:|" * len(names),
            ]
            for row in result["rows"]:
                cells = [
                    f"{row[n]['events_per_s']:,.0f} ({row[f'L1_over {n}']:.2f}x)"
                    if n in row
                    else "-"
                    for n in names
                ]
                lines.append(f"| {row['threads']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 thread counts, 0.5 s per point")
    args = parser.parse_args(argv)
    data = run(quick=args.quick)
    print(markdown(data))
    print(f"written {write_json('founding', data)}")


if __name__ == "__main__":
    main()
