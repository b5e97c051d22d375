"""The shipped alert rules and Grafana dashboard, checked by promtool and by their shape.

promtool (Debian's ``prometheus`` package, located by ``scripts/services up prometheus``)
checks the rules file and runs its unit tests (dashboards/prometheus/alerts_test.yml:
each alert fires when it should and stays quiet otherwise). Whether every query returns
data from a real scrape is tests/integration/test_prometheus.py's job.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.dashboards import (
    ALERTS,
    ALERTS_TEST,
    alert_rules,
    dashboard_queries,
    panels,
    variables,
)
from tests.support import server_env

REQUIRED_ALERTS = {
    "VeltrixStoreDown",
    "VeltrixRefreshFailing",
    "VeltrixServingStale",
    "VeltrixWatchDown",
    "VeltrixWatchDisconnected",
    "VeltrixL2CircuitOpen",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return server_env("VELTRIX_TEST_PROMTOOL", "promtool (scripts/services up prometheus)")


def run_promtool(promtool: str, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def test_promtool_checks_the_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(ALERTS))
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_promtool_unit_tests_pass(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", ALERTS_TEST.name, cwd=ALERTS_TEST.parent)
    assert "SUCCESS" in output


def test_every_alert_has_a_unit_test_that_expects_it_to_fire() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alert_rules()}
    assert names >= REQUIRED_ALERTS
    assert firing == names, f"alerts without a firing test: {names - firing}"
    assert quiet == names, f"alerts without a test that they stay quiet: {names - quiet}"


def test_a_broken_threshold_fails_the_unit_tests(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: with the stale threshold moved, promtool reports it."""
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    rules = ALERTS.read_text()
    assert "veltrix_stale_value_age_seconds > 300" in rules
    (tmp_path / ALERTS.name).write_text(
        rules.replace(
            "veltrix_stale_value_age_seconds > 300", "veltrix_stale_value_age_seconds > 900"
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", ALERTS_TEST.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "VeltrixServingStale" in result.stdout + result.stderr


def test_alerts_name_the_client_and_have_a_severity() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert "{{ $labels.client }}" in rule["annotations"]["summary"], rule["alert"]


def test_dashboard_has_datasource_and_client_variables() -> None:
    found = variables()
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] == "prometheus"
    client = found["client"]
    assert client["type"] == "query"
    assert client["datasource"]["uid"] == "${datasource}"
    assert client["multi"] and client["includeAll"]
    assert client["query"]["query"] == "label_values(veltrix_store_up, client)"


def test_every_panel_uses_the_datasource_variable_and_filters_by_client() -> None:
    assert panels()
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    for query in dashboard_queries():
        assert 'client=~"$client"' in query.expr, query.where


def test_dashboard_covers_the_issue_list() -> None:
    titles = " | ".join(panel["title"].lower() for panel in panels())
    for topic in (
        "hit ratio",
        "store latency p50 / p99",
        "store up",
        "stale",
        "watch lag",
        "reconnects",
        "errors by type",
        "l2",
        "bus",
    ):
        assert topic in titles, topic
