"""When the agent writes GPUNode status: thresholds, urgency, heartbeat, backoff."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gpupool.agent.policy import Backoff, PublishPolicy
from gpupool.agent.status import GPUDevice, GPUNodeStatus, NodeTopology, PodRef

POLICY = PublishPolicy(interval=10, heartbeat=60, utilization_points=5, memory_fraction=0.05)


def status(*gpus: GPUDevice, **fields: Any) -> GPUNodeStatus:
    return GPUNodeStatus(reporting=True, gpus=list(gpus), **fields)


def gpu(index: int = 0, **fields: Any) -> GPUDevice:
    base: dict[str, Any] = {
        "uuid": f"GPU-{index}",
        "utilization": 50.0,
        "utilization_1m": 50.0,
        "memory_used_mib": 40_000,
        "memory_total_mib": 80_000,
    }
    return GPUDevice(index=index, **(base | fields))


def test_first_status_is_urgent() -> None:
    decision = POLICY.decide(None, status(gpu()), 0)
    assert decision.publish and decision.urgent


def test_nothing_changed_waits_for_the_heartbeat() -> None:
    assert not POLICY.decide(status(gpu()), status(gpu()), 30).publish
    decision = POLICY.decide(status(gpu()), status(gpu()), 60)
    assert decision.publish and decision.reason == "heartbeat"


@pytest.mark.parametrize(
    ("change", "publish"),
    [
        ({"utilization": 55.0}, False),
        ({"utilization": 55.1}, True),
        ({"utilization_1m": 44.0}, True),
        ({"memory_used_mib": 44_000}, False),
        ({"memory_used_mib": 44_001}, True),
        ({"pod": PodRef(namespace="a", name="p")}, True),
        ({"ecc_errors": 1}, True),
        ({"temperature_c": 90.0}, False),
        ({"power_w": 400.0}, False),
        ({"idle_seconds": 500.0}, False),
    ],
)
def test_change_thresholds_after_the_interval(change: dict[str, Any], publish: bool) -> None:
    assert POLICY.decide(status(gpu()), status(gpu(**change)), 10).publish is publish


def test_material_change_still_waits_for_the_interval() -> None:
    decision = POLICY.decide(status(gpu()), status(gpu(utilization=90.0)), 9.9)
    assert not decision.publish


def test_turning_unhealthy_is_published_at_once() -> None:
    sick = gpu(healthy=False, health_reason="XID 79")
    decision = POLICY.decide(status(gpu(), gpu(1)), status(gpu(), replace(sick, index=1)), 0.5)
    assert decision.publish and decision.urgent
    assert "XID 79" in decision.reason


def test_recovering_waits_for_the_interval() -> None:
    sick = status(gpu(healthy=False, health_reason="lost"))
    assert not POLICY.decide(sick, status(gpu()), 1).publish
    assert POLICY.decide(sick, status(gpu()), 10).publish


def test_reporting_flip_and_gpu_set_change_are_urgent() -> None:
    assert POLICY.decide(status(gpu()), GPUNodeStatus(reporting=False), 0).urgent
    assert POLICY.decide(status(gpu()), status(gpu(), gpu(1)), 0).urgent


def test_topology_or_message_change_is_material() -> None:
    moved = status(gpu(), topology=NodeTopology(rack="r2"))
    assert POLICY.decide(status(gpu()), moved, 10).publish


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial=1, maximum=8)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8), (100, 8)]:
        delay = backoff.delay(failures)
        assert ceiling / 2 <= delay <= ceiling
