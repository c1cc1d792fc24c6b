"""The Grafana dashboard shipped in the chart: valid JSON, well-formed panels, and every
PromQL expression names only metrics the operator or the agent actually exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gpupool.agent.metrics import make_registry
from gpupool.controller.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "helm" / "gpupool" / "dashboards" / "gpupool.json"
DOCS = ROOT / "docs" / "metrics-operator.md"

# PromQL words that are not metric names: keywords and aggregation modifiers.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def series_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry can expose, whether or not it has samples yet."""
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        else:
            names.add(family.name)
    return names


KNOWN = series_names(REGISTRY) | series_names(make_registry(lambda: []))


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers outside label matchers, range
    selectors, grouping clauses and strings, that are not function calls or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", text):
        if match.group(2) is None and match.group(1) not in KEYWORDS:
            names.add(match.group(1))
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    loaded = dashboard()
    assert loaded["title"] == "gpupool" and loaded["uid"]
    assert {variable["name"] for variable in loaded["templating"]["list"]} == {"datasource", "team"}
    ids = [panel["id"] for panel in loaded["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels():
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]


def test_the_dashboard_covers_what_a_platform_engineer_watches() -> None:
    used = set().union(*(metric_names(expr) for expr in expressions()))
    for wanted in (
        "gpupool_team_gpus",
        "gpupool_gpu_utilization_mean_percent",
        "gpupool_queue_wait_seconds_bucket",
        "gpupool_preemptions_total",
        "gpupool_checkpoint_hooks_total",
        "gpupool_gpu_idle_seconds",
        "gpupool_idle_reclaimed_gpus_total",
        "gpupool_team_allocated_gpu_seconds_total",
    ):
        assert wanted in used, wanted


@pytest.mark.parametrize("expr", expressions())
def test_every_query_names_only_metrics_that_exist(expr: str) -> None:
    depth = {"(": 0, "{": 0, "[": 0}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in depth:
            depth[char] += 1
        elif char in ")}]":
            depth["({["[")}]".index(char)]] -= 1
        assert min(depth.values()) >= 0, f"unbalanced {expr!r}"
    assert not any(depth.values()), f"unbalanced {expr!r}"
    names = metric_names(expr)
    assert names, f"no metric in {expr!r}"
    assert names <= KNOWN, f"unknown metric(s) {sorted(names - KNOWN)} in {expr!r}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (team) (rate(a_total{x="b"}[5m]))', {"a_total"}),
        ("histogram_quantile(0.9, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
        ("count(g > 1800) or vector(0)", {"g"}),
        ("x / clamp_min(y, 1e-9)", {"x", "y"}),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_operator_metric_is_documented() -> None:
    documented = DOCS.read_text()
    for name in series_names(REGISTRY):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{base}`" in documented or f"`{name}`" in documented, name
