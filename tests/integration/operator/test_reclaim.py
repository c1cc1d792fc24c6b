"""Borrowing idle GPUs and taking them back, checkpoint first, on the real API server."""

from __future__ import annotations

import time

import pytest

from gpupool.k8s import GPUJOBS, TEAMQUOTAS, KubeClient

from .harness import CapacityMonitor, OperatorProcess, Pool, env_of, wait_for

pytestmark = pytest.mark.integration


async def test_idle_gpus_are_lent_then_reclaimed_and_the_borrower_resumes(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """2 nodes × 8 GPUs. vision (guaranteed 8) runs two 8-GPU jobs, borrowing nlp's idle 8.
    nlp (guaranteed 8) submits one: a vision job is checkpointed and requeued, nlp's job
    runs within seconds; when nlp's job goes, the vision job resumes from its checkpoint."""
    await pool.add_nodes(2, 8)
    vision, vision_ns = await pool.add_team("vision", 8)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    async with CapacityMonitor(pool, 8):
        for name in ("a", "b"):
            await pool.submit(vision_ns, name)
        for name in ("a", "b"):
            await pool.wait_phase(vision_ns, name, "Running")

        async def borrowing() -> dict[str, int] | None:
            status = (await kube.get(TEAMQUOTAS, vision)).get("status") or {}
            return status if status.get("borrowedGPUs") == 8 else None

        await wait_for("vision borrowing 8 GPUs", borrowing)

        started = time.monotonic()
        await pool.submit(nlp_ns, "bert")
        await pool.wait_phase(nlp_ns, "bert", "Running", timeout=30)
        placed_in = time.monotonic() - started
        assert placed_in < 15, f"the owner waited {placed_in:.1f}s for its GPUs"

        victim = await pool.preempted(vision_ns, ["a", "b"])
        status = await pool.status(vision_ns, victim)
        assert status["phase"] == "Pending"
        checkpoint = status["lastCheckpoint"]["location"]
        assert checkpoint.startswith(f"s3://ckpt/{vision_ns}/{victim}/")
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Preempted"]["status"] == "True"
        assert conditions["Preempted"]["reason"] == "ReclaimBorrowed"
        assert conditions["CheckpointRequested"]["status"] == "False"
        (requeued,) = await pool.events(vision_ns, victim, "Requeued")
        assert f"{nlp_ns}/bert" in requeued["note"]
        assert requeued["related"]["name"] == "bert"

        await kube.delete(GPUJOBS, "bert", nlp_ns)
        await pool.wait_phase(vision_ns, victim, "Running", timeout=30)
        (pod,) = await pool.job_pods(vision_ns, victim)
        env = env_of(pod)
        assert env["GPUPOOL_RESUME_FROM"] == checkpoint
        assert env["GPUPOOL_RESTART_COUNT"] == "1"
        assert (await pool.status(vision_ns, victim))["restarts"] == 1
        assert await pool.events(vision_ns, victim, "Resumed")


async def test_a_non_preemptible_job_keeps_its_borrowed_gpus(
    pool: Pool, operator: OperatorProcess
) -> None:
    await pool.add_nodes(1, 8)
    _, vision_ns = await pool.add_team("vision", 0)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    await pool.submit(vision_ns, "keep", preemptible=False)
    await pool.wait_phase(vision_ns, "keep", "Running")
    await pool.submit(nlp_ns, "bert")

    async def explained() -> dict[str, object] | None:
        status = await pool.status(nlp_ns, "bert")
        return status if status.get("pendingReason") else None

    status = await wait_for("bert's pending reason", explained)
    assert status["phase"] == "Pending"
    assert status["queuePosition"] >= 1
    assert await pool.phase(vision_ns, "keep") == "Running"
    assert pool.checkpoints.calls == []


async def test_a_teamquota_change_takes_effect(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """nlp may hold at most 8 GPUs; raising maxGPUs to 16 admits its second job."""
    await pool.add_nodes(2, 8)
    nlp, nlp_ns = await pool.add_team("nlp", 8, max_gpus=8)
    operator.start()
    await pool.submit(nlp_ns, "one")
    await pool.submit(nlp_ns, "two")
    await pool.wait_phase(nlp_ns, "one", "Running")

    async def at_limit() -> dict[str, object] | None:
        status = await pool.status(nlp_ns, "two")
        return status if status.get("pendingReason") == "TeamAtBorrowingLimit" else None

    await wait_for("two held back by maxGPUs", at_limit)
    await kube.patch(TEAMQUOTAS, nlp, {"spec": {"maxGPUs": 16}})
    await pool.wait_phase(nlp_ns, "two", "Running", timeout=20)
