"""Node failure: the jobs on a NotReady node resume elsewhere from their checkpoints."""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.k8s import GPUJOBS, KubeClient

from .harness import OperatorProcess, Pool, env_of, wait_for

pytestmark = pytest.mark.integration


async def test_jobs_on_a_notready_node_resume_elsewhere_from_their_last_checkpoint(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """a and b fill 2 nodes; a higher-priority job preempts one of them (a checkpoint),
    then goes away, and the preempted job resumes. Its node then goes NotReady: the job
    is requeued (NodeFailure) without asking its pods, and resumes on a new node from the
    same checkpoint."""
    await pool.add_nodes(2, 8)
    _, ns = await pool.add_team("vision", 16)
    operator.start()
    for name in ("a", "b"):
        await pool.submit(ns, name)
    for name in ("a", "b"):
        await pool.wait_phase(ns, name, "Running")
    await pool.submit(ns, "urgent", priority=10)
    await pool.wait_phase(ns, "urgent", "Running", timeout=30)
    victim = await pool.preempted(ns, ["a", "b"])
    checkpoint = (await pool.status(ns, victim))["lastCheckpoint"]["location"]
    await kube.delete(GPUJOBS, "urgent", ns)
    await pool.wait_phase(ns, victim, "Running", timeout=30)
    (pod,) = await pool.job_pods(ns, victim)
    dead = pod["spec"]["nodeName"]
    hooks_before = len(pool.checkpoints.calls)

    (spare,) = await pool.add_nodes(1, 8)
    await pool.mark_not_ready(dead)

    async def resumed() -> dict[str, Any] | None:
        pods = await pool.job_pods(ns, victim)
        running = [p for p in pods if p["spec"]["nodeName"] == spare]
        return running[0] if running else None

    moved = await wait_for(f"{victim} on {spare}", resumed, timeout=40)
    assert env_of(moved)["GPUPOOL_RESUME_FROM"] == checkpoint
    status = await pool.wait_phase(ns, victim, "Running", timeout=30)
    assert status["preemptions"] == 2
    assert status["lastCheckpoint"]["location"] == checkpoint
    assert len(pool.checkpoints.calls) == hooks_before, "a dead node's pods were asked"
    notes = [e["note"] for e in await pool.wait_events(ns, victim, "Preempting", containing=dead)]
    assert any("NodeFailure" in note and dead in note for note in notes), notes
    assert not [p for p in await pool.pods(ns) if p["spec"]["nodeName"] == dead]


async def test_a_job_on_a_gpu_its_agent_marks_unhealthy_is_requeued_off_that_gpu(
    pool: Pool, operator: OperatorProcess
) -> None:
    """One 8-GPU node: a 4-GPU job on GPUs 0-3; the agent reports GPU 2 unhealthy. The job
    is requeued (NodeFailure) and resumes there on healthy GPUs; with 7 healthy GPUs and 4
    in use, another 4-GPU job waits: the planner keeps off the bad GPU."""
    (node,) = await pool.add_nodes(1, 8)
    _, ns = await pool.add_team("vision", 8)
    operator.start()
    await pool.submit(ns, "small", gpus=4)
    await pool.wait_phase(ns, "small", "Running")
    (pod,) = await pool.job_pods(ns, "small")
    users = {index: f"{ns}/{pod['metadata']['name']}" for index in range(4)}
    await pool.set_gpunode(node, 8, users=users, utilization=90, unhealthy={2: "XID 79"})

    async def requeued() -> dict[str, Any] | None:
        status = await pool.status(ns, "small")
        return status if status.get("preemptions") == 1 else None

    await wait_for("small requeued", requeued, timeout=30)
    notes = [e["note"] for e in await pool.wait_events(ns, "small", "Preempting")]
    assert any("NodeFailure" in note and "GPU 2" in note for note in notes), notes
    await pool.wait_phase(ns, "small", "Running", timeout=30)
    (moved,) = await pool.job_pods(ns, "small")
    assert moved["metadata"]["name"] == "small-1-0"
    await pool.set_gpunode(node, 8, users={}, utilization=0, unhealthy={2: "XID 79"})
    await pool.submit(ns, "whole", gpus=4)

    async def waits() -> dict[str, Any] | None:
        status = await pool.status(ns, "whole")
        return status if status.get("pendingReason") else None

    await wait_for("whole to wait", waits)
    assert not await pool.job_pods(ns, "whole")
