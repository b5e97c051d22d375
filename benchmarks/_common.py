"""Shared helpers for the benchmarks: timing loops, percentiles, environment, output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import timeit
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


def load_services_env() -> None:
    """Read .services/env (written by scripts/services up) into os.environ."""
    env_file = REPO_ROOT / ".services" / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep:
                os.environ.setdefault(name.strip(), value.strip())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


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
