"""Crash safety: the operator killed mid-reclaim, and the API server restarted under it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gpupool.devcluster import FAKE_DURATION
from gpupool.k8s import GPUJOBS, KubeClient

from .harness import CapacityMonitor, OperatorProcess, PodDeleteTrap, Pool, wait_for

pytestmark = pytest.mark.integration


async def test_sigkill_in_the_middle_of_a_reclaim(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """vision borrows 8 of 16 GPUs; nlp claims them; the operator is SIGKILLed while the
    victim's checkpoint hook is running, then started again. No GPU is ever double-booked,
    no job is lost, the preemption is completed and counted once, and the checkpoint is
    recorded."""
    await pool.add_nodes(2, 8)
    _, vision_ns = await pool.add_team("vision", 8)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    async with CapacityMonitor(pool, 8) as monitor:
        for name in ("a", "b"):
            await pool.submit(vision_ns, name, hook_timeout=30)
        for name in ("a", "b"):
            await pool.wait_phase(vision_ns, name, "Running")

        pool.checkpoints.delay = 6.0
        await pool.submit(nlp_ns, "bert")

        async def checkpointing() -> str | None:
            if not pool.checkpoints.calls:
                return None
            for name in ("a", "b"):
                if await pool.phase(vision_ns, name) == "Checkpointing":
                    return name
            return None

        victim = await wait_for("a victim checkpointing", checkpointing, timeout=30)
        operator.kill()
        pool.checkpoints.delay = 0.0
        status = await pool.status(vision_ns, victim)
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["CheckpointRequested"]["status"] == "True", "record not persisted"
        assert await pool.job_pods(vision_ns, victim), "pods deleted before the checkpoint"

        operator.start()
        await pool.wait_phase(nlp_ns, "bert", "Running", timeout=45)
        status = await pool.wait_phase(vision_ns, victim, "Pending", timeout=30)
        assert status["preemptions"] == 1
        assert status["lastCheckpoint"]["location"].startswith(f"s3://ckpt/{vision_ns}/{victim}")
        other = "b" if victim == "a" else "a"
        assert await pool.phase(vision_ns, other) == "Running"
        assert await pool.status(vision_ns, other) != {}
        listing = await kube.list(GPUJOBS, vision_ns)
        assert sorted(j["metadata"]["name"] for j in listing["items"]) == ["a", "b"]
    assert monitor.samples > 10


async def test_sigkill_between_the_http_hook_and_the_pod_deletion(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """httpPost: the operator is SIGKILLed at the victim's first pod DELETE, the moment
    after the hook returned its location. That location is already in
    status.lastCheckpoint then, and the restarted operator finishes the reclaim with it."""
    await pool.add_nodes(1, 8)
    _, vision_ns = await pool.add_team("vision", 0, max_gpus=8)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    await pool.submit(vision_ns, "a", hook_timeout=30)
    await pool.wait_phase(vision_ns, "a", "Running")
    seen: dict[str, Any] = {}

    async def at_the_delete() -> None:
        seen["status"] = await pool.status(vision_ns, "a")
        seen["calls"] = len(pool.checkpoints.calls)
        await asyncio.to_thread(operator.kill)

    async with PodDeleteTrap(kube, vision_ns, "a", at_the_delete) as trap:
        await pool.submit(nlp_ns, "bert")
        await asyncio.wait_for(trap.sprung.wait(), timeout=45)
    assert not operator.alive()
    assert seen["calls"] >= 1, "pods deleted before the hook was called"
    saved = seen["status"].get("lastCheckpoint") or {}
    assert saved.get("location") == f"s3://ckpt/{vision_ns}/a/step-1", seen["status"]
    assert saved.get("source") == "hook"

    operator.start()
    await pool.wait_phase(nlp_ns, "bert", "Running", timeout=60)
    status = await pool.wait_phase(vision_ns, "a", "Pending", timeout=30)
    assert status["preemptions"] == 1
    assert status["lastCheckpoint"]["location"].startswith(f"s3://ckpt/{vision_ns}/a/step-")


async def test_a_run_that_completes_during_its_reclaim_is_finished_after_a_crash(
    pool: Pool, operator: OperatorProcess
) -> None:
    """vision's job is being reclaimed for nlp (its checkpoint hook hangs) when its
    worker completes on its own; the operator is SIGKILLed and started again. The job
    is Succeeded — not preempted: no preemptions, no Preempted condition, no Requeued
    Event — and nlp gets the GPUs."""
    await pool.add_nodes(1, 8)
    _, vision_ns = await pool.add_team("vision", 0, max_gpus=8)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    await pool.submit(vision_ns, "a", hook_timeout=60, pod_annotations={FAKE_DURATION: "15s"})
    await pool.wait_phase(vision_ns, "a", "Running")
    # Longer than the 15 s the worker still runs, shorter than the hook's 60 s.
    pool.checkpoints.delay = 30.0
    await pool.submit(nlp_ns, "bert")

    async def completed_while_checkpointing() -> bool:
        if await pool.phase(vision_ns, "a") != "Checkpointing":
            return False
        pods = await pool.pods(vision_ns, live=False)
        return any(p.get("status", {}).get("phase") == "Succeeded" for p in pods)

    await wait_for("a's worker completing mid-reclaim", completed_while_checkpointing, timeout=45)
    assert pool.checkpoints.calls, "the hook was not running"
    operator.kill()
    pool.checkpoints.delay = 0.0
    operator.start()
    status = await pool.wait_phase(vision_ns, "a", "Succeeded", timeout=45)
    assert status["preemptions"] == 0
    conditions = {c["type"]: c for c in status["conditions"]}
    assert "Preempted" not in conditions
    assert conditions["Finished"]["reason"] == "Completed"
    assert conditions["CheckpointRequested"]["status"] == "False"
    await pool.wait_phase(nlp_ns, "bert", "Running", timeout=45)
    assert await pool.events(vision_ns, "a", "Requeued") == []


async def test_the_operator_recovers_when_the_api_server_restarts(
    pool: Pool, operator: OperatorProcess, request: pytest.FixtureRequest
) -> None:
    cluster: Any = request.getfixturevalue("cluster")
    if not hasattr(cluster, "restart_apiserver"):
        pytest.skip("the cluster fixture cannot restart its API server")
    await pool.add_nodes(1, 8)
    _, ns = await pool.add_team("vision", 8)
    operator.start()
    await pool.submit(ns, "before", gpus=4)
    await pool.wait_phase(ns, "before", "Running")
    await cluster.restart_apiserver()
    await pool.submit(ns, "after", gpus=4)
    await pool.wait_phase(ns, "after", "Running", timeout=60)
    assert operator.alive()
    assert await pool.phase(ns, "before") == "Running"
