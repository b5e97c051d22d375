"""The shipped Grafana dashboard and Prometheus alert rules, read the way their tests need."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from tests.support import REPO_ROOT

DASHBOARD = REPO_ROOT / "dashboards" / "grafana" / "veltrix.json"
ALERTS = REPO_ROOT / "dashboards" / "prometheus" / "alerts.yml"
ALERTS_TEST = REPO_ROOT / "dashboards" / "prometheus" / "alerts_test.yml"
METRIC = re.compile(r"\bveltrix_[a-z0-9_]+")


@dataclass(frozen=True)
class Query:
    where: str  # "panel 'Cache hit ratio' A" or "alert VeltrixStoreDown"
    expr: str


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p.get("type") != "row"]


def dashboard_queries() -> list[Query]:
    return [
        Query(f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in panels()
        for target in panel["targets"]
    ]


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_queries() -> list[Query]:
    return [
        Query(f"alert {rule['alert']}", " ".join(rule["expr"].split())) for rule in alert_rules()
    ]


def metrics_named(expr: str) -> set[str]:
    """The Veltrix metric families an expression reads (histogram suffixes dropped)."""
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in METRIC.findall(expr)}
