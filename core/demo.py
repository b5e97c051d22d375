"""``veltrix demo``: the product's founding scenario, on any store.

Worker threads consume events; each event reads five configuration keys. The
demo runs the same workload twice, reading the store directly and then through a
Veltrix client, changes a value in the middle of the second run, and reports
events/s for both, the cache hit ratio, store calls, and how long the change
took to reach every worker.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veltrix.backend import Backend, SupportsWrite
from veltrix.cache import CachePolicy
from veltrix.client import Client
from veltrix.codecs import convert
from veltrix.errors import (
    BackendNotInstalledError,
    ConfigurationError,
    KeyNotFoundError,
    UnsupportedOperationError,
    VeltrixError,
)
from veltrix.keys import join
from veltrix.registry import open_backend
from veltrix.urls import redact_url

SEED: dict[str, bytes] = {
    "payments/timeout_ms": b"250",
    "payments/retries": b"3",
    "payments/fraud_check/enabled": b"false",
    "payments/endpoint": b"https://payments.internal/v2",
    "payments/rate_limit": b"120.5",
}
#: (key, type) read by every event.
READS: list[tuple[str, Any]] = [
    ("payments/timeout_ms", int),
    ("payments/retries", int),
    ("payments/fraud_check/enabled", bool),
    ("payments/endpoint", str),
    ("payments/rate_limit", float),
]
CHANGED_KEY = "payments/fraud_check/enabled"


@dataclass
class PhaseResult:
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class DemoReport:
    url: str
    workers: int
    direct: PhaseResult
    cached: PhaseResult
    reads: int
    store_calls: int
    misses: int
    watch_updates: int
    propagation_ms: list[float] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.cached.events_per_second / max(self.direct.events_per_second, 1e-9)

    @property
    def hit_ratio(self) -> float:
        return 1 - self.misses / self.reads if self.reads else 0.0


def _run_workers(
    workers: int,
    seconds: float,
    read: Callable[[str, Any], Any],
    on_event: Callable[[int, Any], None],
) -> PhaseResult:
    stop = threading.Event()
    counts = [0] * workers
    failures: list[VeltrixError] = []

    def worker(index: int) -> None:
        count = 0
        try:
            while not stop.is_set():
                flag = None
                for key, target in READS:
                    value = read(key, target)
                    if key == CHANGED_KEY:
                        flag = value
                on_event(index, flag)
                count += 1
        except VeltrixError as exc:  # reported once by the caller, not as a thread traceback
            failures.append(exc)
            stop.set()
        counts[index] = count

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return PhaseResult(sum(counts), time.perf_counter() - started)


def run_demo(
    url: str | None = None,
    *,
    duration: float = 4.0,
    workers: int = 4,
    prefix: str = "veltrix-demo",
    progress: Callable[[str], None] = lambda message: None,
    metrics_port: int | None = None,
) -> DemoReport:
    """Run the demo against ``url`` (a throw-away SQLite file when ``None``).

    With ``metrics_port``, the Prometheus metrics of the demo's client (named ``demo``)
    are served on ``http://127.0.0.1:<metrics_port>/metrics`` while the demo runs.
    """
    with _metrics_server(metrics_port, progress):
        return _run(url, duration=duration, workers=workers, prefix=prefix, progress=progress)


@contextmanager
def _metrics_server(port: int | None, progress: Callable[[str], None]) -> Iterator[None]:
    """Serve the live clients' metrics on loopback ``port`` (nothing when ``None``).

    The collector goes into a registry of its own, removed when the demo ends, so a
    caller's own registry and installation are left as they were.
    """
    if port is None:
        yield
        return
    try:
        from prometheus_client import CollectorRegistry, start_http_server

        from veltrix.metrics import install
    except ImportError as exc:
        raise BackendNotInstalledError(
            "--metrics-port needs prometheus-client: pip install 'veltrix[metrics]'"
        ) from exc
    registry = CollectorRegistry()
    installation = install(registry, multiprocess=False)
    try:
        try:
            server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror}"
            ) from exc
        progress(f"metrics on http://127.0.0.1:{port}/metrics")
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
    finally:
        installation.uninstall()


def _run(
    url: str | None,
    *,
    duration: float,
    workers: int,
    prefix: str,
    progress: Callable[[str], None],
) -> DemoReport:
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="veltrix-demo-")
        url = f"sqlite:///{Path(tmp.name) / 'demo.db'}"
    writer: Backend = open_backend(url)
    writer_source = redact_url(url)
    try:
        if not isinstance(writer, SupportsWrite):
            raise UnsupportedOperationError(
                f"the demo seeds configuration, and {writer_source} is read-only"
            )
        progress(f"seeding {len(SEED)} keys under {prefix}/ in {writer_source}")
        for key, value in SEED.items():
            writer.put(join(prefix, key), value)

        def direct_read(key: str, target: Any) -> Any:
            entry = writer.get(join(prefix, key))
            if entry is None:
                raise KeyNotFoundError(f"{join(prefix, key)!r} vanished from {writer_source}")
            return convert(key, entry.value, target)

        progress(f"phase 1: {workers} workers read the store directly for {duration / 3:.1f}s")
        direct = _run_workers(workers, duration / 3, direct_read, lambda i, flag: None)

        # A private memory:// store exists only in ``writer``: read that very instance.
        # Any other store gets a client of its own, as a consumer process would have.
        shared = getattr(writer, "url", None) == "memory://"  # a URL that reopens nothing
        client = Client(writer if shared else url, cache=CachePolicy(ttl=30.0), name="demo")
        try:
            seen_at: list[float | None] = [None] * workers
            changed_at: list[float] = []

            def on_event(index: int, flag: Any) -> None:
                if flag is True and seen_at[index] is None:
                    seen_at[index] = time.perf_counter()

            def cached_read(key: str, target: Any) -> Any:
                return client.get(join(prefix, key), type=target)

            def change_midway() -> None:
                time.sleep(duration / 3)
                writer.put(join(prefix, CHANGED_KEY), b"true")
                changed_at.append(time.perf_counter())  # from the moment the write committed

            progress(
                f"phase 2: {workers} workers read through Veltrix for {2 * duration / 3:.1f}s; "
                f"{CHANGED_KEY} changes half-way"
            )
            changer = threading.Thread(target=change_midway, daemon=True)
            changer.start()
            cached = _run_workers(workers, 2 * duration / 3, cached_read, on_event)
            changer.join()
            stats = client.stats()
        finally:
            client.close()
        propagation = [
            max(0.0, (seen - changed_at[0]) * 1000)
            for seen in seen_at
            if seen is not None and changed_at
        ]
        return DemoReport(
            url=client.source,
            workers=workers,
            direct=direct,
            cached=cached,
            reads=cached.events * len(READS),
            store_calls=stats["store_calls"],
            misses=stats["misses"],
            watch_updates=stats["watch_updates"],
            propagation_ms=propagation,
        )
    finally:
        writer.close()
        if tmp is not None:
            tmp.cleanup()


__all__ = ["DemoReport", "run_demo"]
