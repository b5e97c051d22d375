"""A real Prometheus scrapes a process running Veltrix clients over real stores; every
PromQL expression of the shipped dashboard and alert rules must then return data.

The scraped process (tests/integration/metrics_target.py) runs a SQLite client, a
ZooKeeper client with the shared Redis as L2 cache and bus, and a Redis client whose store
is a redis-server this test starts and then kills (never a shared server): the killed
store must flip ``veltrix_store_up`` to 0 and raise ``veltrix_stale_value_age_seconds``.
Prometheus (scripts/services.d/prometheus) finds the process through a file_sd targets
file this test writes, scrapes it every second, and evaluates the shipped alert rules,
which the test copies into its rules directory.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dashboards import (
    ALERTS,
    Query,
    alert_queries,
    dashboard_queries,
    metrics_named,
    variables,
)
from tests.support import REPO_ROOT, missing_server, port_open, server_env, unique_name, unused_port

pytestmark = pytest.mark.slow

#: What Grafana's ``$__rate_interval`` becomes here: several 1 s scrapes, well inside the run.
RATE_INTERVAL = "10s"
#: Families only the ZooKeeper client (the one with an L2 cache and bus) reports.
L2_ONLY = {"veltrix_l2_requests_total", "veltrix_l2_circuit_open", "veltrix_bus_messages_total"}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def reload(self) -> None:
        """Re-read the configuration and rule files (``--web.enable-lifecycle``)."""
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def rules(self, file: Path) -> list[dict[str, Any]]:
        """The rules Prometheus loaded from ``file``, with their evaluation health."""
        groups = self.get("/api/v1/rules")["groups"]
        return [rule for g in groups if g["file"] == str(file) for rule in g["rules"]]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result

    def values(self, expr: str) -> dict[str, float]:
        """client label -> value."""
        return {s["metric"].get("client", ""): float(s["value"][1]) for s in self.query(expr)}

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> float:
        started = time.monotonic()
        while not check():
            assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
            time.sleep(0.25)
        return time.monotonic() - started


@dataclass
class Scraped:
    run: str
    clients: dict[str, str]  # store -> client name
    prometheus: Prometheus
    kill_store: Callable[[], None]
    rules_file: Path  # the shipped alert rules, loaded into this Prometheus


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server only this test uses (the shared one is never killed)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        missing_server("redis-server not installed (scripts/services up redis)")
    port = unused_port()
    process = subprocess.Popen(
        [
            *(binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)),
            *("--save", "", "--appendonly", "no", "--notify-keyspace-events", "KEA"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, "own redis-server did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", process
    if process.poll() is None:
        process.kill()
    process.wait(10)


@pytest.fixture
def scraped(
    own_redis: tuple[str, subprocess.Popen[bytes]], zk_hosts: str, tmp_path: Path
) -> Iterator[Scraped]:
    prometheus = Prometheus(server_env("VELTRIX_TEST_PROMETHEUS_URL", "Prometheus"))
    targets = Path(server_env("VELTRIX_TEST_PROMETHEUS_TARGETS", "Prometheus targets dir"))
    rules = Path(server_env("VELTRIX_TEST_PROMETHEUS_RULES", "Prometheus rules dir"))
    shared_redis = server_env("VELTRIX_TEST_REDIS_URL", "Redis server")
    store_url, store = own_redis
    run = unique_name("prom").replace("-", "_")
    target = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.integration.metrics_target"),
            *(run, zk_hosts, shared_redis, store_url, str(tmp_path)),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "target.log").open("w"),  # the clients' warnings, once the store dies
        text=True,
    )
    targets_file = targets / f"{run}.json"
    rules_file = rules / f"{run}.yml"
    try:
        shutil.copy(ALERTS, rules_file)
        prometheus.reload()
        assert target.stdout is not None
        line = target.stdout.readline()
        if not line.startswith("PORT "):
            target.wait(10)
            log = (tmp_path / "target.log").read_text()[-3000:]
            pytest.fail(f"metrics target did not start: {line!r}\n{log}")
        port = int(line.split()[1])
        tmp_file = targets / f".{run}.tmp"  # written whole, then renamed into place
        tmp_file.write_text(
            json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"veltrix_run": run}}])
        )
        tmp_file.rename(targets_file)

        def kill_store() -> None:
            store.send_signal(signal.SIGKILL)
            store.wait(10)

        clients = {store: f"{run}-{store}" for store in ("sqlite", "zookeeper", "redis")}
        yield Scraped(run, clients, prometheus, kill_store, rules_file)
    finally:
        targets_file.unlink(missing_ok=True)
        if rules_file.exists():
            rules_file.unlink()
            prometheus.reload()
        if target.stdin is not None:
            target.stdin.close()
        try:
            target.wait(15)
        except subprocess.TimeoutExpired:
            target.kill()
            target.wait(10)


def _for_run(query: Query, run: str) -> str:
    return query.expr.replace("$client", f"{run}-.*").replace("$__rate_interval", RATE_INTERVAL)


def _clients_in(result: list[dict[str, Any]]) -> set[str]:
    return {series["metric"].get("client", "") for series in result}


def test_every_dashboard_and_alert_query_returns_data_and_a_killed_store_shows(
    scraped: Scraped,
) -> None:
    prom, run, names = scraped.prometheus, scraped.run, scraped.clients
    started = time.monotonic()

    # 1. Prometheus finds the target and sees every client's store up.
    up = f'veltrix_store_up{{client=~"{run}-.*"}}'
    found_after = prom.wait_for(
        "all three clients scraped with their store up",
        lambda: prom.values(up) == dict.fromkeys(names.values(), 1.0),
        timeout=30,
    )
    # The shipped rules load into the real server and evaluate without error.
    loaded = prom.rules(scraped.rules_file)
    assert {r["name"] for r in loaded} == {q.where.removeprefix("alert ") for q in alert_queries()}
    prom.wait_for(
        "every alert rule evaluated healthy",
        lambda: all(r["health"] == "ok" for r in prom.rules(scraped.rules_file)),
        timeout=20,
    )
    time.sleep(2)  # a few more scrapes, so rates have points on both sides of the kill

    # 2. The store of one client dies: its health goes down, its stale age grows.
    scraped.kill_store()
    killed = names["redis"]
    down_after = prom.wait_for(
        "veltrix_store_up of the client whose store was killed drops to 0",
        lambda: prom.values(up).get(killed) == 0.0,
        timeout=20,
    )
    stale = f'veltrix_stale_value_age_seconds{{client="{killed}"}}'
    prom.wait_for("the stale age rises", lambda: prom.values(stale).get(killed, 0.0) > 0, 10)
    first_age = prom.values(stale)[killed]
    prom.wait_for(
        "the stale age keeps rising", lambda: prom.values(stale)[killed] >= first_age + 1, 10
    )
    # Prometheus itself evaluates the store-down rule: pending (its `for:` is 1 minute).
    pending = f'ALERTS{{alertname="VeltrixStoreDown", alertstate="pending", client=~"{run}-.*"}}'
    prom.wait_for(
        "VeltrixStoreDown pending for the killed client",
        lambda: _clients_in(prom.query(pending)) == {killed},
        timeout=20,
    )
    assert prom.values(up)[names["sqlite"]] == 1.0  # the other clients are unaffected
    assert prom.values(up)[names["zookeeper"]] == 1.0

    # 3. Every dashboard query returns data for this run's clients.
    empty = []
    for query in dashboard_queries():
        result = prom.query(_for_run(query, run))
        families = metrics_named(query.expr)
        expected = {names["zookeeper"]} if families <= L2_ONLY else set(names.values())
        if 'outcome!="ok"' in query.expr:  # errors by type: only the killed store fails
            expected = {killed}
        if not expected <= _clients_in(result):
            empty.append(f"{query.where}: {query.expr} -> {sorted(_clients_in(result))}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)

    # The panels a reader looks at first carry numbers, not NaN.
    ratio = next(q for q in dashboard_queries() if "Cache hit ratio" in q.where)
    hit_ratio = {
        s["metric"]["client"]: float(s["value"][1]) for s in prom.query(_for_run(ratio, run))
    }
    for store in ("sqlite", "zookeeper"):  # the clients whose store still answers
        assert 0 < hit_ratio[names[store]] <= 1, hit_ratio
    p50 = next(q for q in dashboard_queries() if "Store latency" in q.where)
    latencies = [float(s["value"][1]) for s in prom.query(_for_run(p50, run))]
    assert any(math.isfinite(v) and v > 0 for v in latencies), latencies

    # 4. The client variable lists the run's clients.
    variable = variables()["client"]["query"]["query"]
    assert variable == "label_values(veltrix_store_up, client)"
    listed = prom.get("/api/v1/label/client/values", **{"match[]": "veltrix_store_up"})
    assert set(names.values()) <= set(listed)

    # 5. Alert rules: every expression evaluates, every family it reads exists for the
    # clients that report it, and the store-down alert's expression holds the killed client.
    for query in alert_queries():
        prom.query(query.expr)  # evaluates (a syntax or type error fails here)
        for family in metrics_named(query.expr):
            expected = {names["zookeeper"]} if family in L2_ONLY else set(names.values())
            present = _clients_in(prom.query(f'{family}{{client=~"{run}-.*"}}'))
            if not present:
                present = _clients_in(prom.query(f'{family}_count{{client=~"{run}-.*"}}'))
            assert expected <= present, f"{query.where}: {family} missing for {expected - present}"
    alerts = {q.where.removeprefix("alert "): q.expr for q in alert_queries()}
    run_clients = set(names.values())
    assert _clients_in(prom.query(alerts["VeltrixStoreDown"])) & run_clients == {killed}
    # With their time thresholds at 0, the stale and refresh alerts hold the killed
    # client and only it (the others serve nothing stale and have no failed calls).
    for alert, threshold in (("VeltrixServingStale", "> 300"), ("VeltrixRefreshFailing", "> 600")):
        assert threshold in alerts[alert], alert
        lowered = alerts[alert].replace(threshold, "> 0", 1)
        assert _clients_in(prom.query(lowered)) & run_clients == {killed}, lowered

    elapsed = time.monotonic() - started
    print(
        f"scraped after {found_after:.1f} s, down after {down_after:.1f} s, total {elapsed:.1f} s"
    )
