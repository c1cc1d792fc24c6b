"""The operator's scheduler metrics, updated where the loop and executor decide and act.

The registry is process-wide, so each test reads how far a series moved.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.controller.metrics import METRICS, REGISTRY, api_resource
from gpupool.k8s import (
    GPUJOBS,
    GPUNODES,
    PODS,
    TEAMQUOTAS,
    ClientSettings,
    KubeClient,
    NotReachable,
)
from gpupool.k8s.credentials import Credentials
from gpupool.planner import PendingJob, PendingReason, TeamFigures

from .world import World, job, team

STEPS = ("read", "observe", "dispatch", "track", "plan", "record", "status")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def gpunode(name: str, users: dict[int, str], utilization: float) -> dict[str, Any]:
    """A GPUNode as the node's agent writes it (GPU index -> "namespace/pod")."""
    devices: list[dict[str, Any]] = []
    for index in range(8):
        device: dict[str, Any] = {
            "index": index,
            "utilization": utilization,
            "utilization1m": utilization,
            "utilization5m": utilization,
            "utilization15m": utilization,
        }
        if index in users:
            namespace, _, pod = users[index].partition("/")
            device["pod"] = {"namespace": namespace, "name": pod}
        devices.append(device)
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": name},
        "status": {"reporting": True, "gpuCount": 8, "gpus": devices},
    }


async def test_an_admission_counts_per_team_with_its_queue_wait(world: World) -> None:
    admitted = value("gpupool_admissions_total", team="vision")
    waits = value("gpupool_queue_wait_seconds_count", team="vision")
    waited = value("gpupool_queue_wait_seconds_sum", team="vision")
    steps = {step: value("gpupool_scheduling_step_seconds_count", step=step) for step in STEPS}
    # Submitted at the builders' T0, where the fake clock starts; the cycle runs 1 s later.
    world.kube.put(GPUJOBS, job("vision/a"))
    world.kube.put(GPUJOBS, job("vision/b", workers=3))
    await world.cycle()
    assert value("gpupool_admissions_total", team="vision") - admitted == 1
    assert value("gpupool_queue_wait_seconds_count", team="vision") - waits == 1
    assert value("gpupool_queue_wait_seconds_sum", team="vision") - waited == pytest.approx(1.0)
    for step in STEPS:
        assert value("gpupool_scheduling_step_seconds_count", step=step) - steps[step] == 1
    assert value("gpupool_team_gpus", team="vision", kind="allocated") == 8
    assert value("gpupool_team_gpus", team="vision", kind="guaranteed") == 8
    assert value("gpupool_team_gpus", team="vision", kind="pending") == 24
    assert value("gpupool_pending_jobs", team="vision") == 1
    assert value("gpupool_pending_jobs", team="nlp") == 0


async def test_a_reclaim_counts_the_preemption_and_the_hook_outcome(world: World) -> None:
    reclaimed = value("gpupool_preemptions_total", reason="ReclaimBorrowed")
    skipped = value("gpupool_checkpoint_hooks_total", outcome="skipped")
    timed = value("gpupool_checkpoint_hook_seconds_count", outcome="skipped")
    world.kube.put(GPUJOBS, job("vision/a"))
    world.kube.put(GPUJOBS, job("vision/b"))
    await world.cycle()
    world.run_pods()
    await world.cycle()
    assert value("gpupool_team_gpus", team="vision", kind="borrowed") == 8
    world.kube.put(GPUJOBS, job("nlp/bert"))
    await world.cycle(0)  # the dry run of its worker pod, before anyone is preempted
    await world.cycle()
    assert value("gpupool_preemptions_total", reason="ReclaimBorrowed") - reclaimed == 1
    assert value("gpupool_checkpoint_hooks_total", outcome="skipped") - skipped == 1
    assert value("gpupool_checkpoint_hook_seconds_count", outcome="skipped") - timed == 1


async def test_gpu_seconds_allocated_and_used_accrue_per_team(world: World) -> None:
    world.kube.put(GPUJOBS, job("vision/a"))
    await world.cycle()
    world.run_pods()
    (pod,) = world.pods()
    users = {index: f"vision/{pod['metadata']['name']}" for index in range(8)}
    world.kube.put(GPUNODES, gpunode(pod["spec"]["nodeName"], users, 50.0))
    await world.cycle()
    allocated = value("gpupool_team_allocated_gpu_seconds_total", team="vision")
    used = value("gpupool_team_used_gpu_seconds_total", team="vision")
    await world.cycle(60)
    allocated = value("gpupool_team_allocated_gpu_seconds_total", team="vision") - allocated
    used = value("gpupool_team_used_gpu_seconds_total", team="vision") - used
    assert allocated == pytest.approx(8 * 60)
    # Half busy: half the GPU-seconds were used.
    assert used == pytest.approx(8 * 60 * 0.5)


async def test_reclaiming_an_idle_job_counts_its_gpus_and_idle_gpu_seconds(world: World) -> None:
    idle = {"utilizationBelow": 10, "forMinutes": 1, "mode": "enforce"}
    vision = team("vision", 0)
    vision["spec"]["idleReclaim"] = idle
    world.kube.put(TEAMQUOTAS, vision)
    world.kube.put(TEAMQUOTAS, team("nlp", 0))
    gpus = value("gpupool_idle_reclaimed_gpus_total", team="vision")
    seconds = value("gpupool_idle_reclaimed_gpu_seconds_total", team="vision")
    world.kube.put(GPUJOBS, job("vision/a"))
    world.kube.put(GPUJOBS, job("vision/b"))
    await world.cycle()
    world.run_pods()
    for pod in world.pods():
        users = {index: f"vision/{pod['metadata']['name']}" for index in range(8)}
        world.kube.put(GPUNODES, gpunode(pod["spec"]["nodeName"], users, 0.0))
    await world.cycle()
    await world.cycle(120)
    assert value("gpupool_idle_jobs", team="vision", mode="enforce") == 2
    world.kube.put(GPUJOBS, job("nlp/bert"))
    await world.cycle(0)  # the dry run of its worker pod, before anyone is preempted
    await world.cycle()
    assert value("gpupool_idle_reclaimed_gpus_total", team="vision") - gpus == 8
    assert value("gpupool_idle_reclaimed_gpu_seconds_total", team="vision") - seconds == (
        pytest.approx(8 * 121)
    )


def test_team_gauges_follow_the_plan_and_forget_teams_that_are_gone() -> None:
    figures = TeamFigures("ml", 8, 10, 12, 11, 3, 0, 4, 2, 1)
    METRICS.set_teams([figures])
    assert value("gpupool_team_gpus", team="ml", kind="entitlement") == 10
    assert value("gpupool_team_gpus", team="ml", kind="borrowed") == 3
    METRICS.set_teams([])
    assert (
        REGISTRY.get_sample_value("gpupool_team_gpus", {"team": "ml", "kind": "allocated"}) is None
    )


def test_queue_length_is_zero_for_a_team_with_nothing_waiting() -> None:
    waiting = PendingJob("ml/a", "ml", PendingReason.INSUFFICIENT_GPUS, "needs 8", 1, 1)
    METRICS.set_queue([waiting, waiting], ["ml", "cv"])
    assert value("gpupool_pending_jobs", team="ml") == 2
    assert REGISTRY.get_sample_value("gpupool_pending_jobs", {"team": "cv"}) == 0


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/api/v1/namespaces/a/pods/b", "pods"),
        ("/api/v1/pods", "pods"),
        ("/api/v1/nodes/n1", "nodes"),
        ("/apis/gpupool.io/v1alpha1/namespaces/a/gpujobs/j/status", "gpujobs"),
        ("/apis/gpupool.io/v1alpha1/teamquotas", "teamquotas"),
        ("/api/v1/namespaces/a", "namespaces"),
        ("/apis/events.k8s.io/v1/namespaces/a/events", "events"),
    ],
)
def test_api_errors_are_labelled_by_resource(path: str, resource: str) -> None:
    assert api_resource(path) == resource


async def test_the_client_reports_calls_that_failed_for_good() -> None:
    credentials = Credentials(server="http://127.0.0.1:9")  # the discard port: nothing listens
    before = value("gpupool_api_errors_total", verb="GET", resource="pods", code="0")
    settings = ClientSettings(attempts=1, on_error=METRICS.count_api_error)
    async with KubeClient(credentials, settings) as client:
        with pytest.raises(NotReachable):
            await client.list(PODS, "a")
    assert value("gpupool_api_errors_total", verb="GET", resource="pods", code="0") - before == 1
