"""The resource models: valid manifests parse; invalid ones name the field and the rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from gpupool.api import GPUJobSpec, TeamQuotaSpec
from gpupool.api.conditions import Condition, is_true, remove_condition, set_condition

TEMPLATE = {"spec": {"containers": [{"name": "train", "image": "pytorch:2"}]}}


def job(**spec: Any) -> dict[str, Any]:
    return {"gpusPerWorker": 8, "workers": 2, "template": TEMPLATE, **spec}


def error_of(model: type[GPUJobSpec] | type[TeamQuotaSpec], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return str(caught.value)


def test_fixed_job_parses_with_defaults() -> None:
    spec = GPUJobSpec.model_validate(job())
    assert spec.worker_range == (2, 2)
    assert spec.preemptible is True
    assert spec.priority == 0
    assert spec.to_k8s()["gpusPerWorker"] == 8


def test_elastic_job_range() -> None:
    spec = GPUJobSpec.model_validate(job(workers=None, minWorkers=1, maxWorkers=4))
    assert spec.worker_range == (1, 4)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"gpusPerWorker": 0}, "gpusPerWorker", "greater than or equal to 1"),
        ({"workers": 0}, "workers", "greater than or equal to 1"),
        ({"workers": 2, "minWorkers": 1, "maxWorkers": 2}, "", "set either spec.workers"),
        ({"workers": None}, "", "set either spec.workers"),
        ({"workers": None, "minWorkers": 4, "maxWorkers": 2}, "", "minWorkers must be less"),
        ({"priority": 5000}, "priority", "less than or equal to 1000"),
        ({"gpusperworker": 1}, "gpusperworker", "Extra inputs are not permitted"),
        ({"checkpoint": {"mode": "httpPost"}}, "checkpoint", "httpPost (port, path) is required"),
        ({"checkpoint": {"mode": "sigkill"}}, "checkpoint.mode", "'signal' or 'httpPost'"),
        ({"placement": {"topology": "galaxy"}}, "placement.topology", "'rack'"),
        ({"template": {"spec": {"containers": []}}}, "", "at least one container"),
    ],
)
def test_invalid_jobs_name_the_field(change: dict[str, Any], field: str, words: str) -> None:
    message = error_of(GPUJobSpec, {**job(), **change})
    assert words in message
    assert field in message


def test_team_quota_rules() -> None:
    quota = TeamQuotaSpec.model_validate(
        {"namespaces": ["ml-a"], "guaranteedGPUs": 8, "maxGPUs": 16, "weight": 2}
    )
    assert quota.max_gpus == 16
    assert quota.idle_reclaim is None
    message = error_of(TeamQuotaSpec, {"namespaces": ["a"], "guaranteedGPUs": 9, "maxGPUs": 8})
    assert "spec.guaranteedGPUs must be less than or equal to spec.maxGPUs" in message
    assert "namespaces" in error_of(TeamQuotaSpec, {"namespaces": [], "guaranteedGPUs": 1})
    assert "pattern" in error_of(TeamQuotaSpec, {"namespaces": ["Bad_NS"], "guaranteedGPUs": 1})
    assert "weight" in error_of(
        TeamQuotaSpec, {"namespaces": ["a"], "guaranteedGPUs": 1, "weight": 0}
    )
    idle = {"utilizationBelow": 101}
    assert "idleReclaim.utilizationBelow" in error_of(
        TeamQuotaSpec, {"namespaces": ["a"], "guaranteedGPUs": 1, "idleReclaim": idle}
    )


def test_set_condition_reports_change_and_keeps_transition_time() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = datetime(2026, 1, 2, tzinfo=UTC)
    conditions: list[Condition] = []
    assert set_condition(conditions, "Running", "True", "Started", "on node-1", now=t0)
    assert not set_condition(conditions, "Running", "True", "Started", "on node-1", now=t1)
    assert set_condition(conditions, "Running", "True", "Started", "on node-2", now=t1)
    assert conditions[0].last_transition_time == t0
    assert set_condition(conditions, "Running", "False", "Preempted", "by team b", now=t1)
    assert conditions[0].last_transition_time == t1
    assert not is_true(conditions, "Running")
    assert remove_condition(conditions, "Running")
    assert not remove_condition(conditions, "Running")
