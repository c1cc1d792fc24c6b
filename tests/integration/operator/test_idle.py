"""Idle reclaim from GPUNode utilization, in both modes, on the real API server."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration

IDLE = {"utilizationBelow": 10, "forMinutes": 1}


async def test_idle_jobs_are_reclaimed_in_enforce_mode_and_only_reported_in_report_mode(
    pool: Pool, operator: OperatorProcess
) -> None:
    """2 nodes × 8 GPUs. vision (enforce) and nlp (report) each run one 8-GPU job whose
    GPUs the agents report at 1% for over a minute. Both get Idle=True and an Event; when
    each team submits another job, vision's idle job is checkpointed and requeued for it
    (IdleReclaim), nlp's keeps running and the newcomer waits."""
    await pool.add_nodes(2, 8)
    _, vision_ns = await pool.add_team("vision", 8, idleReclaim={**IDLE, "mode": "enforce"})
    _, nlp_ns = await pool.add_team("nlp", 8, idleReclaim={**IDLE, "mode": "report"})
    operator.start()
    await pool.submit(vision_ns, "sleepy")
    await pool.submit(nlp_ns, "dozy")
    for namespace, name in ((vision_ns, "sleepy"), (nlp_ns, "dozy")):
        await pool.wait_phase(namespace, name, "Running")
        (pod,) = await pool.job_pods(namespace, name)
        node = pod["spec"]["nodeName"]
        users = {index: f"{namespace}/{pod['metadata']['name']}" for index in range(8)}
        await pool.set_gpunode(node, 8, users=users, utilization=1.0)

    async def idle(namespace: str, name: str) -> dict[str, Any] | None:
        status = await pool.status(namespace, name)
        conditions = {c["type"]: c for c in status.get("conditions", ())}
        found = conditions.get("Idle")
        return status if found is not None and found["status"] == "True" else None

    for namespace, name, reason in (
        (vision_ns, "sleepy", "IdleReclaimable"),
        (nlp_ns, "dozy", "IdleReported"),
    ):
        status = await wait_for(
            f"{name} idle",
            lambda n=namespace, j=name: idle(n, j),
            timeout=100,  # type: ignore[misc]
        )
        assert status["utilization"]["mean1m"] == 1.0
        assert status["utilization"]["idleSince"]
        assert {c["type"]: c for c in status["conditions"]}["Idle"]["reason"] == reason
        await pool.wait_events(namespace, name, "Idle")

    await pool.submit(vision_ns, "eager")
    await pool.submit(nlp_ns, "keen")
    await pool.wait_phase(vision_ns, "eager", "Running", timeout=30)
    sleepy = await pool.wait_phase(vision_ns, "sleepy", "Pending")
    assert sleepy["preemptions"] == 1
    preempted = {c["type"]: c for c in sleepy["conditions"]}["Preempted"]
    assert preempted["reason"] == "IdleReclaim"
    assert sleepy["lastCheckpoint"]["location"].startswith("s3://ckpt/")

    async def keen_waits() -> dict[str, Any] | None:
        status = await pool.status(nlp_ns, "keen")
        return status if status.get("pendingReason") else None

    await wait_for("keen to wait", keen_waits)
    assert await pool.phase(nlp_ns, "dozy") == "Running"
