"""The new benchmark sections run end to end in a tiny configuration (sqlite/memory only).

A smoke run of the benchmark code, not a benchmark: no timing assertions, no servers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import founding, freshness, memory, report


def test_founding_scenario_runs_on_sqlite(tmp_path: Path) -> None:
    stores = {"sqlite": {"url": f"sqlite:///{tmp_path}/config.db"}}
    data = founding.run(stores=stores, redis_url="", threads=[1, 2], seconds=0.05)
    rows = data["stores"]["sqlite"]["rows"]
    assert [row["threads"] for row in rows] == [1, 2]
    assert all(row["L1"]["events"] > 0 for row in rows)
    assert "L1+L2" not in rows[0]  # no Redis given: that mode is left out, not faked
    assert "| 1 |" in founding.markdown(data)


def test_consumers_count_events_and_surface_errors() -> None:
    result = founding.run_consumers(lambda _i: lambda _key: None, 2, 0.02)
    assert result["events"] > 0 and result["events_per_s"] > 0

    def failing(_i: int) -> Any:
        def get(_key: str) -> None:
            raise KeyError("boom")

        return get

    with pytest.raises(RuntimeError, match="consumer failed"):
        founding.run_consumers(failing, 1, 0.01)


def test_freshness_runs_on_memory_and_sqlite() -> None:
    data = freshness.run(stores=["memory", "sqlite"], watchers=[1, 2], writes=2)
    for kind in ("memory", "sqlite"):
        result = data["stores"][kind]
        assert [row["watchers"] for row in result["rows"]] == [1, 2]
        assert all(row["missed"] == 0 for row in result["rows"])
        assert all(row["gets_not_updated_after_last_write"] == 0 for row in result["rows"])
    assert "sqlite" in freshness.markdown(data)


def test_memory_worker_accounts_for_the_bytes(tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="the bench extra is not installed")
    store = str(tmp_path / "config.db")
    memory.seed(store, 300)
    plain = memory.worker("dict", "trace", store, 300)
    cached = memory.worker("veltrix", "trace", store, 300)
    assert cached["cached_keys"] == 300
    assert plain["value_bytes_per_key"] == cached["value_bytes_per_key"]
    breakdown = cached["breakdown"]
    assert breakdown["Record (tuple: value, version, meta, expires_at)"] > 0
    # Accounted for: what the breakdown names is within a few bytes of what tracemalloc saw.
    assert abs(sum(breakdown.values()) - cached["beyond_value_bytes_per_key"]) < 40
    assert memory.worker("dict", "rss", store, 300)["rss_bytes_per_key"] is not None


def test_report_writes_results_md_from_this_runs_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib", reason="the bench extra is not installed")
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(report, "PLOTS_DIR", tmp_path / "plots")
    monkeypatch.setattr(report, "RESULTS_MD", tmp_path / "RESULTS.md")
    data = freshness.run(stores=["memory"], watchers=[1], writes=2)
    (tmp_path / "freshness.json").write_text(json.dumps(data))
    (tmp_path / "memory.json").write_text("{}")  # left over from an older run: must be ignored
    run = {
        "sections": {
            "freshness": {"status": "ok", "json": "freshness", "loadavg_before": 1.0},
            "memory": {"status": "failed", "reason": "test", "loadavg_before": 1.0},
        }
    }
    text = report.write(run).read_text()
    assert "## 5. Freshness" in text and "memory" in text
    assert "(failed: test)" in text
    assert (tmp_path / "plots" / "freshness.png").stat().st_size > 0


def test_k8s_volume_section_runs() -> None:
    from benchmarks import k8s_volume

    row = k8s_volume.measure("poll", readers=1, swaps=2)
    assert row["missed"] == 0 and row["callback"]["n"] == 2 and row["readers_seen"]["n"] == 2
    data = {
        "keys_in_volume": 21,
        "poll_interval_s": 0.1,
        "rows": [row],
        "hot_path": {"dict.get": {"median_ns": 1.0, "p99_ns": 2.0, "x_dict_get": 1.0}},
        "loadavg": [0.5],
    }
    assert "| poll | 1 busy |" in k8s_volume.markdown(data)
    assert any("kubelet swap" in line for line in report.section_k8s_volume(data))
