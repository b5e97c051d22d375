"""A dead store never reaches the read path: each store taken away for real under load.

Busy reader threads read cached keys through one client while the store is killed
with SIGKILL (ZooKeeper, Redis, the Consul test server) or stalled by a hung
process holding its write lock (SQLite), then brought back; and a client is built
with the store down from a disk snapshot. The harness is the benchmark's
(``benchmarks/outage.py``), run shorter; the targets in benchmarks/RESULTS.md come
from its full run on a quiet machine, so the bounds here leave room for a loaded CI.

These tests stop and restart the shared servers: they must not run in parallel
with other tests using them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.outage import Target, run_cold_start, run_outage, target_for
from tests.support import server_env

pytestmark = pytest.mark.slow

SERVERS = {
    "zookeeper": ("VELTRIX_TEST_ZOOKEEPER", "ZooKeeper server"),
    "redis": ("VELTRIX_TEST_REDIS_URL", "Redis server"),
    "consul": ("VELTRIX_TEST_CONSUL_ADDR", "Consul test server"),
}


@pytest.fixture(params=["zookeeper", "redis", "consul", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    name: str = request.param
    if name in SERVERS:
        server_env(*SERVERS[name])
    os.environ.pop("VELTRIX_ZK_AUTH", None)
    os.environ.pop("CONSUL_HTTP_TOKEN", None)
    target = target_for(name, tmp_path)
    try:
        yield target
    finally:
        target.cleanup()


def test_reads_of_cached_keys_never_fail_or_wait_while_the_store_is_down(
    target: Target,
) -> None:
    result = run_outage(target, keys=50, threads=4, before=0.5, outage=1.5, after=0.5)
    for phase in ("before", "outage", "after"):
        assert result[phase]["failed_reads"] == 0, (phase, result[phase]["first_errors"])
    during = result["outage"]
    assert during["reads"] > 10_000, f"reads stopped flowing during the outage: {result}"
    # One read may wait out refresh_deadline (20 ms) before the store is known down, and
    # busy readers lose the GIL for 100+ ms now and then (also with a healthy store); a
    # read that waited on the dead store would take a connect timeout (seconds).
    assert during["max_ms"] < 2000, f"a read waited on the dead store: {result}"
    assert result["stale_served_during_outage"] > 1000
    assert result["recovery_s"] is not None and result["recovery_s"] < 5, result
    # Back up: "slow" only when a refresh right after recovery outlived the 20 ms
    # deadline behind the busy readers.
    assert result["health_after"] in ("up", "slow"), result
    assert result["health_transitions"] >= 2  # down (or slow) and up again


def test_cold_start_serves_the_snapshot_at_once_with_the_store_down(target: Target) -> None:
    result = run_cold_start(target, keys=1000)
    assert result["wrong_values"] == 0
    assert result["serve_all_s"] < 2, result
    if target.name == "sqlite":
        # A hung writer stalls writes, not WAL reads: the store itself answers.
        assert result["never_held_error"] == "KeyNotFoundError"
    else:
        assert result["last_known_good_served"] == 1000
        assert result["never_held_error"] == "BackendUnavailableError"
        # Within one bounded connect attempt (ZooKeeper's connect_timeout, 5 s).
        assert result["never_held_s"] < 6, result
