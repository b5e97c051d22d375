"""The benchmark code runs (a smoke run; benchmarks are not timed tests)."""

from __future__ import annotations

from benchmarks import cache_paths, hot_path
from veltrix.cache import ExpiryScheduler
from veltrix.client import REFRESH_AHEAD_FRACTION


def test_hot_path_benchmark_runs() -> None:
    data = hot_path.run(quick=True)
    results = data["results"]
    assert {"dict.get", "veltrix Client.get", "veltrix Client.get_model"} <= set(results)
    assert all(figures["median_ns"] > 0 for figures in results.values())
    assert "|" in hot_path.markdown(data)


def test_cache_paths_benchmark_runs() -> None:
    miss = cache_paths.miss_path(quick=True)
    assert miss["veltrix Client.get (miss)"] > 0 and miss["raw store get"] > 0
    row = cache_paths.expiry_overshoot(1, 0.001, cycles=3)
    assert row["n"] == 3 and row["missed"] == 0
    # The TTL brought every change: never earlier than the refresh-ahead stretch, a slot
    # and the scheduler's learned lead before it.
    earliest = REFRESH_AHEAD_FRACTION * cache_paths.TTL + 1 / 64 + ExpiryScheduler.MAX_LEAD
    assert row["min_ms"] > -1e3 * earliest - 1
    data = {"miss_ns": miss, "expiry": {"1 paced": row}, "ttl_s": cache_paths.TTL}
    assert "raw store get" in cache_paths.markdown(data)
