"""The benchmark code runs (a smoke run; benchmarks are not timed tests)."""

from __future__ import annotations

from benchmarks import hot_path


def test_hot_path_benchmark_runs() -> None:
    data = hot_path.run(quick=True)
    results = data["results"]
    assert {"dict.get", "veltrix Client.get", "veltrix Client.get_model"} <= set(results)
    assert all(figures["median_ns"] > 0 for figures in results.values())
    assert "|" in hot_path.markdown(data)
