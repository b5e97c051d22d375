"""Client.health(): the typed status, and `veltrix check` printing it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import veltrix
from tests.unit.stores import ControlledStore, wait_until
from tests.unit.test_cli import run
from veltrix import Health, HealthState


def test_a_healthy_client_with_a_watch() -> None:
    policy = veltrix.CachePolicy(ttl=60)
    with (
        veltrix.Client("memory://health-watch", cache=policy) as client,
        veltrix.Client("memory://health-watch") as writer,
    ):
        assert client.health().last_refresh is None  # nothing read yet
        before = time.time()
        assert client.get("app/k", None) is None  # a miss: read from the store, starts the watch
        health = client.health()
        assert isinstance(health, Health)
        assert health.healthy and health.up and health.store_reachable
        assert health.watch_connected is True
        assert health.last_refresh is not None and before <= health.last_refresh <= time.time()
        assert health.oldest_stale_age == 0.0
        assert health.l2 is None
        assert health.problems() == []
        writer.put("app/k", "1")
        assert wait_until(lambda: client.get("app/k", None) == "1", timeout=3)


def test_an_outage_shows_in_the_status(store: ControlledStore) -> None:
    store.put("app/k", b"v")
    policy = veltrix.CachePolicy(ttl=0.05, watch=False, retries=0, error_backoff=5)
    with veltrix.Client(store, cache=policy) as client:  # type: ignore[arg-type]
        assert client.get("app/k") == "v"
        refreshed = client.health().last_refresh
        store.go_down()
        time.sleep(0.1)
        assert client.get("app/k") == "v"  # stale
        health = client.health()
        assert health.state is HealthState.DOWN
        assert not health.healthy and not health.store_reachable
        assert health.last_refresh == refreshed  # the failed call did not count
        assert health.oldest_stale_age > 0.04
        assert health.watch_connected is None  # watch=False
        assert health.problems() == ["store is down: store is down"]
        time.sleep(0.05)
        assert client.health().oldest_stale_age >= health.oldest_stale_age + 0.04


def test_check_prints_the_health(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'check.db'}"
    with veltrix.Client(url) as writer:  # check reads: it creates no store
        writer.put("k", "v")
    result = run("check", "--json", url=url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    health = report["health"]
    assert health["state"] == "up" and health["healthy"] is True
    assert health["store_reachable"] is True
    assert health["last_refresh"] > 0
    assert health["problems"] == []
    table = run("check", url=url)
    assert table.returncode == 0
    assert b"health" in table.stdout and b"last refresh" in table.stdout


def test_check_of_an_unreachable_store_prints_one_error_line() -> None:
    result = run("check", url="redis://127.0.0.1:9/0")
    assert result.returncode == 7
    assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr.decode()
