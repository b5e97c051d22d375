"""Outage: reads of cached keys while the store dies, per store, and cold starts with it down.

    scripts/services up zookeeper redis consul
    .venv/bin/python -m benchmarks.outage [--quick] [--stores zookeeper,redis,consul,sqlite]

For each store, 8 reader threads read 100 keys through one ``Client`` (TTL 1 s, the
default policy otherwise), checking every value: once in a tight loop ("busy": the
GIL alone then delays some reads by 100+ ms, also with a healthy store, so the
"before" column is the baseline) and once pausing 1 ms between reads ("paced":
what a read waits for is then Veltrix's doing). Then the store is
taken away for real and brought back:

- ZooKeeper, Redis, the Consul test server: the server process is killed with
  SIGKILL and restarted by ``scripts/services``;
- SQLite (embedded, no server to kill): another process takes the write lock and
  hangs, so this client's own write waits out ``busy_timeout`` holding the store,
  and every read of it stalls behind; the hung process is then killed (SIGKILL).

Measured per phase (before / outage / after): reads completed, failed reads, max
and p99 read latency, stale serves; then the recovery time (a value written by
another client after the restart until a reader sees it) and the cold start: a
new client with a last-known-good file of 1,000 keys, built while the store is down,
serving all of them, and how long a key it never held takes to fail.

Redis and the Consul test server keep their data in memory (Redis is told to SAVE
before the kill so it reloads it; the Consul test server cannot): for the Consul
test server the readers pause while the restarted, empty server is re-seeded.
The same harness runs, shorter, in tests/integration/test_outage.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veltrix import CachePolicy, Client

STORES = ("zookeeper", "redis", "consul", "sqlite")
SLOW_READ = 0.001  # reads slower than this are kept for percentiles (the rest are counted)


@dataclass
class PhaseStats:
    """What the readers did in one phase."""

    reads: int = 0
    failures: int = 0
    seconds: float = 0.0
    max_s: float = 0.0
    slow: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, other: PhaseStats) -> None:
        self.reads += other.reads
        self.failures += other.failures
        self.max_s = max(self.max_s, other.max_s)
        self.slow.extend(other.slow)
        self.errors.extend(other.errors[: 5 - len(self.errors)])

    @property
    def p99_s(self) -> float:
        """99th percentile read latency; ``SLOW_READ`` when fewer than 1 % were slower."""
        over = max(1, self.reads // 100)
        if len(self.slow) < over:
            return SLOW_READ
        return sorted(self.slow)[-over]

    def summary(self) -> dict[str, Any]:
        return {
            "reads": self.reads,
            "reads_per_s": round(self.reads / self.seconds) if self.seconds else 0,
            "failed_reads": self.failures,
            "p99_ms": round(self.p99_s * 1e3, 2),
            "max_ms": round(self.max_s * 1e3, 2),
            "first_errors": self.errors,
        }


class Readers:
    """``threads`` threads reading ``keys`` through ``client`` until stopped; each read
    is timed and its value checked with ``accept(key, value)``. Stats go to the
    current phase (:meth:`phase`); :meth:`pause` holds the readers."""

    def __init__(
        self,
        client: Client,
        keys: list[str],
        accept: Callable[[str, str], bool],
        *,
        threads: int = 8,
        pause: float = 0.0,
    ) -> None:
        self._client, self._keys, self._accept = client, keys, accept
        self._pause = pause
        self._phase = "warm"
        self._phase_started = time.monotonic()
        self._stats: list[dict[str, PhaseStats]] = [{} for _ in range(threads)]
        self._seconds: dict[str, float] = {}
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._threads = [
            threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(threads)
        ]

    def _read(self, index: int) -> None:
        own = self._stats[index]
        client, accept = self._client, self._accept
        clock = time.perf_counter
        while not self._stop.is_set():
            self._running.wait()
            stats = own.setdefault(self._phase, PhaseStats())
            for key in self._keys:
                started = clock()
                try:
                    ok = accept(key, client.get(key))
                except Exception as exc:
                    ok = False
                    if len(stats.errors) < 5:
                        stats.errors.append(f"{type(exc).__name__}: {exc}")
                took = clock() - started
                stats.reads += 1
                if not ok:
                    stats.failures += 1
                if took > SLOW_READ:
                    stats.slow.append(took)
                    stats.max_s = max(stats.max_s, took)
                if self._pause:
                    time.sleep(self._pause)

    def phase(self, name: str) -> None:
        now = time.monotonic()
        self._seconds[self._phase] = self._seconds.get(self._phase, 0.0) + now - self._phase_started
        self._phase, self._phase_started = name, now

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._running.clear()
        time.sleep(0.05)  # let a loop in progress finish its round
        try:
            yield
        finally:
            self._running.set()

    def __enter__(self) -> Readers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.phase("done")
        self._stop.set()
        self._running.set()
        for thread in self._threads:
            thread.join(10)

    def stats(self, name: str) -> PhaseStats:
        total = PhaseStats(seconds=self._seconds.get(name, 0.0))
        for own in self._stats:
            if name in own:
                total.add(own[name])
        return total


# -- the stores and how each one dies ---------------------------------------------------


@dataclass
class Target:
    """One store under test: its URL and how to take it away and bring it back."""

    name: str
    url: str
    kill: Callable[[], None]
    restart: Callable[[], None]
    #: The restarted store has lost its data (re-seed it before readers go on).
    volatile: bool = False
    cleanup: Callable[[], None] = lambda: None


def _service_target(name: str, url: str, *, volatile: bool = False) -> Target:
    from tests.support import kill_service, start_service

    return Target(
        name, url, lambda: kill_service(name), lambda: start_service(name), volatile=volatile
    )


def zookeeper_target() -> Target:
    hosts = os.environ["VELTRIX_TEST_ZOOKEEPER"]
    return _service_target("zookeeper", f"zookeeper://{hosts}/veltrix-outage/{_name()}")


def redis_target() -> Target:
    import redis

    url = os.environ["VELTRIX_TEST_REDIS_URL"]
    target = _service_target("redis", url.rsplit("/", 1)[0] + "/5")
    kill = target.kill

    def save_and_kill() -> None:  # the test server keeps no data on disk unless told to
        with redis.Redis.from_url(url) as admin:
            admin.save()
        kill()

    target.kill = save_and_kill
    return target


def consul_target() -> Target:
    address = os.environ["VELTRIX_TEST_CONSUL_ADDR"]
    return _service_target("consul", f"consul://{address}/outage/{_name()}", volatile=True)


class _HungWriter:
    """Another process that takes the SQLite write lock and hangs (as a crashed-but-alive
    writer would), until it is killed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        code = (
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(self.path)], stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"locked":
            raise RuntimeError("the hung writer did not take the lock")

    def kill(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None


def sqlite_target(directory: Path) -> Target:
    path = directory / "outage.db"
    hung = _HungWriter(path)
    return Target(
        "sqlite",
        f"sqlite:///{path}?busy_timeout=10",
        kill=hung.start,
        restart=hung.kill,
        cleanup=hung.kill,
    )


def _name() -> str:
    return f"o-{uuid.uuid4().hex[:10]}"


# -- the runs -----------------------------------------------------------------------------


def _seed(url: str, keys: list[str], value: Callable[[str], str]) -> None:
    with Client(url, cache=CachePolicy(ttl=0, watch=False)) as writer:
        for key in keys:
            writer.put(key, value(key))


def _blocked_writes(client: Client, stop: threading.Event) -> threading.Thread:
    """A thread writing through ``client`` (SQLite: the write that waits out the lock)."""

    def write() -> None:
        n = 0
        while not stop.is_set():
            with contextlib.suppress(Exception):
                client.put("outage/own-writes", str(n))
            n += 1
            stop.wait(0.05)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def run_outage(
    target: Target,
    *,
    keys: int = 100,
    threads: int = 8,
    pause: float = 0.0,
    before: float = 2.0,
    outage: float = 5.0,
    after: float = 2.0,
    recovery_timeout: float = 30.0,
) -> dict[str, Any]:
    """Readers through one client while ``target`` dies and comes back (see the module doc)."""
    names = [f"outage/k{i:03d}" for i in range(keys)] + ["outage/marker"]
    _seed(target.url, names, lambda key: "old")
    accept = {"old", "new"}
    policy = CachePolicy(ttl=1.0)
    with Client(target.url, cache=policy) as client:
        for key in names:
            client.get(key)
        stop_writes = threading.Event()
        writes = _blocked_writes(client, stop_writes) if target.name == "sqlite" else None
        with Readers(
            client, names, lambda key, value: value in accept, threads=threads, pause=pause
        ) as load:
            time.sleep(0.5)
            load.phase("before")
            time.sleep(before)
            stats_before = client.stats()
            load.phase("outage")
            target.kill()
            time.sleep(outage)
            load.phase("restart")
            stats_outage = client.stats()
            restart_started = time.monotonic()
            if target.volatile:
                with load.paused():
                    target.restart()
                    _seed(target.url, names, lambda key: "old")
            else:
                target.restart()
            restarted = time.monotonic()
            load.phase("after")
            _seed(target.url, ["outage/marker"], lambda key: "new")
            written = time.monotonic()
            recovered = None
            while time.monotonic() - written < recovery_timeout:
                if client.get("outage/marker") == "new":
                    recovered = time.monotonic() - written
                    break
                time.sleep(0.001)
            time.sleep(after)
        stop_writes.set()
        if writes is not None:
            writes.join(15)
        final = client.stats()
        health = client.health()
    result = {
        "store": target.name,
        "readers": threads,
        "pause_ms": pause * 1e3,
        "keys": len(names),
        "outage_s": outage,
        "before": load.stats("before").summary(),
        "outage": load.stats("outage").summary(),
        "after": load.stats("after").summary(),
        "restart_s": round(restarted - restart_started, 2),
        "recovery_s": None if recovered is None else round(recovered, 3),
        "stale_served_during_outage": stats_outage["stale_served"] - stats_before["stale_served"],
        "health_transitions": final["health_transitions"],
        "health_after": str(health.state),
    }
    result["outage"]["reads_vs_before"] = round(
        result["outage"]["reads_per_s"] / max(1, result["before"]["reads_per_s"]), 3
    )
    return result


def run_cold_start(target: Target, *, keys: int = 1000) -> dict[str, Any]:
    """Time to serve ``keys`` last-known-good keys from a client built while the store is down."""
    names = [f"cold/k{i:04d}" for i in range(keys)]
    with tempfile.TemporaryDirectory() as directory:
        lkg_file = Path(directory) / "lkg.json"
        _seed(target.url, names, lambda key: f"v-{key}")
        with Client(target.url, cache=CachePolicy(ttl=60), last_known_good_path=lkg_file) as warm:
            for key in names:
                warm.get(key)
        target.kill()
        try:
            started = time.perf_counter()
            with Client(
                target.url, cache=CachePolicy(ttl=60), last_known_good_path=lkg_file
            ) as cold:
                built = time.perf_counter() - started
                wrong = sum(cold.get(key) != f"v-{key}" for key in names)
                served = time.perf_counter() - started
                unknown_started = time.perf_counter()
                unknown_error = ""
                try:
                    cold.get("cold/never-held")
                except Exception as exc:
                    unknown_error = type(exc).__name__
                unknown = time.perf_counter() - unknown_started
                last_known_good_served = cold.stats()["last_known_good_served"]
        finally:
            target.restart()
    return {
        "store": target.name,
        "keys": keys,
        "build_s": round(built, 4),
        "serve_all_s": round(served, 4),
        "wrong_values": wrong,
        "last_known_good_served": last_known_good_served,
        "never_held_error": unknown_error,
        "never_held_s": round(unknown, 3),
    }


def target_for(name: str, directory: Path) -> Target:
    if name == "sqlite":
        return sqlite_target(directory)
    return {"zookeeper": zookeeper_target, "redis": redis_target, "consul": consul_target}[name]()


LOADS = {"busy": 0.0, "paced": 0.001}  # readers' pause between reads, seconds


def run(stores: tuple[str, ...] = STORES, *, quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {"outage": [], "cold_start": [], "quick": quick}
    with tempfile.TemporaryDirectory() as directory:
        for name in stores:
            target = target_for(name, Path(directory))
            try:
                for load, pause in LOADS.items():
                    print(f"[outage] {name}: kill under {load} readers ...", flush=True)
                    row = run_outage(
                        target,
                        pause=pause,
                        outage=2.0 if quick else 5.0,
                        before=1.0 if quick else 2.0,
                    )
                    results["outage"].append({"load": load, **row})
                print(f"[outage] {name}: cold start ...", flush=True)
                results["cold_start"].append(run_cold_start(target))
            finally:
                target.cleanup()
    results["loadavg"] = os.getloadavg()
    return results


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "| store | readers | reads/s before | during outage (ratio) | failed reads "
        "| max read before | p99 / max read during outage | stale serves | recovery |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in data["outage"]:
        before, during = row["before"], row["outage"]
        failed = before["failed_reads"] + during["failed_reads"] + row["after"]["failed_reads"]
        recovery = "never" if row["recovery_s"] is None else f"{row['recovery_s']:.2f} s"
        lines.append(
            f"| {row['store']} | {row['readers']} {row['load']} | {before['reads_per_s']:,} "
            f"| {during['reads_per_s']:,} ({during['reads_vs_before']:.2f}x) | {failed} "
            f"| {_ms(before['max_ms'])} | {_ms(during['p99_ms'])} / {_ms(during['max_ms'])} "
            f"| {row['stale_served_during_outage']:,} | {recovery} |"
        )
    lines += [
        "",
        "| store | cold start: 1,000 last-known-good keys served in | wrong values "
        "| a never-held key fails in |",
        "|---|---|---|---|",
    ]
    for row in data["cold_start"]:
        lines.append(
            f"| {row['store']} | {row['serve_all_s'] * 1e3:.0f} ms | {row['wrong_values']} | "
            f"{row['never_held_s'] * 1e3:.0f} ms ({row['never_held_error'] or 'no error'}) |"
        )
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "< 1 ms" if value <= SLOW_READ * 1e3 else f"{value:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    from benchmarks._common import section_main

    return section_main("outage", run, markdown, argv, stores=STORES)


if __name__ == "__main__":
    raise SystemExit(main())
