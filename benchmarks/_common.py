"""Shared helpers for the benchmarks: timing loops, percentiles, environment, output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import timeit
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


def load_services_env() -> None:
    """Read the ``VELTRIX_*`` lines of $VELTRIX_SERVICES_DIR/env (default .services/env,
    written by ``scripts/services up``) into os.environ; variables already set win."""
    env_file = Path(os.environ.get("VELTRIX_SERVICES_DIR", REPO_ROOT / ".services")) / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and name.startswith("VELTRIX_"):
                os.environ.setdefault(name, value)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank on ``fraction * (n - 1)`` (rounded): p50 of 4 samples is the 2nd."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def rank_percentile(values: list[float], fraction: float) -> float:
    """The sample at index ``int(fraction * n)``: p99 of 1,000 samples is the 991st."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    """n, mean, p50, p99 and max in ms of samples given in seconds (rank percentiles)."""
    return {
        "n": len(samples_s),
        "mean_ms": statistics.fmean(samples_s) * 1e3,
        "p50_ms": rank_percentile(samples_s, 0.50) * 1e3,
        "p99_ms": rank_percentile(samples_s, 0.99) * 1e3,
        "max_ms": max(samples_s) * 1e3,
    }


def summary_us(samples_s: list[float]) -> dict[str, float]:
    """n, mean, p50 and p99 in µs of samples given in seconds (rank percentiles)."""
    return {
        "n": len(samples_s),
        "mean_us": statistics.fmean(samples_s) * 1e6,
        "p50_us": rank_percentile(samples_s, 0.50) * 1e6,
        "p99_us": rank_percentile(samples_s, 0.99) * 1e6,
    }


def timed_calls(call: Callable[[], object], n: int, *, warm_up: int = 0) -> list[float]:
    """Seconds taken by each of ``n`` calls of ``call``, after ``warm_up`` untimed calls."""
    for _ in range(warm_up):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def compare_ns(
    candidates: dict[str, tuple[str, dict[str, Any]]], *, calls: int, runs: int
) -> dict[str, dict[str, float]]:
    """ns per call of each candidate statement, measured in interleaved rounds.

    ``candidates`` maps a name to ``(statement, globals)``; statements are compiled
    by :mod:`timeit`, so no wrapper call is added to what is measured. Rounds
    alternate between candidates so drift (other load, frequency changes) hits all.
    """
    timers = {name: timeit.Timer(stmt, globals=env) for name, (stmt, env) in candidates.items()}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for timer in timers.values():
        timer.timeit(number=max(1, calls // 10))  # warm up
    for _ in range(runs):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(number=calls) / calls * 1e9)
    return summarize_ns(samples)


def summarize_ns(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Median, p99 and best of each candidate's ns-per-call rounds."""
    return {
        name: {
            "median_ns": statistics.median(values),
            "p99_ns": percentile(values, 0.99),
            "min_ns": min(values),
        }
        for name, values in samples.items()
    }


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "count": len(samples_ms),
        "p50_ms": percentile(samples_ms, 0.50),
        "p99_ms": percentile(samples_ms, 0.99),
        "max_ms": max(samples_ms) if samples_ms else float("nan"),
    }


def package_versions(*names: str) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def section_main(
    name: str,
    run: Callable[..., dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
    argv: list[str] | None,
    *,
    stores: tuple[str, ...] | None = None,
) -> int:
    """The command line of a section module: ``--quick`` (and ``--stores`` when it runs
    per store), run, print its table, write ``results/<name>.json``."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}")
    parser.add_argument("--quick", action="store_true")
    if stores is not None:
        parser.add_argument("--stores", default=",".join(stores))
    args = parser.parse_args(argv)
    load_services_env()
    if stores is None:
        data = run(quick=args.quick)
    else:
        data = run(tuple(s for s in args.stores.split(",") if s), quick=args.quick)
    print(markdown(data))
    print("written", write_json(name, data))
    return 0
