"""Borrowing idle GPUs and taking them back, checkpoint first, on the real API server."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest

from gpupool.devcluster import FAKE_CHECKPOINT
from gpupool.k8s import GPUJOBS, TEAMQUOTAS, KubeClient
from gpupool.workload import worker

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
        # kwok gives the pods IPs of the pool's loopback CIDR, where the hooks listen.
        ips = {
            pod["metadata"]["name"]: pod["status"]["podIP"]
            for name in ("a", "b")
            for pod in await pool.job_pods(vision_ns, name)
        }
        assert all(ipaddress.ip_address(ip) in pool.pod_cidr for ip in ips.values()), ips

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
        # The hook went to the victim's own pod: its IP, the port of its spec.
        (call,) = [call for call in pool.checkpoints.calls if call["job"] == victim]
        assert call["_to"] == ips[call["pod"]]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Preempted"]["status"] == "True"
        assert conditions["Preempted"]["reason"] == "ReclaimBorrowed"
        assert conditions["CheckpointRequested"]["status"] == "False"
        (requeued,) = await pool.wait_events(vision_ns, victim, "Requeued")
        assert f"{nlp_ns}/bert" in requeued["note"]
        assert requeued["related"]["name"] == "bert"

        await kube.delete(GPUJOBS, "bert", nlp_ns)
        await pool.wait_phase(vision_ns, victim, "Running", timeout=30)
        (pod,) = await pool.job_pods(vision_ns, victim)
        env = env_of(pod)
        assert env["GPUPOOL_RESUME_FROM"] == checkpoint
        assert env["GPUPOOL_RESTART_COUNT"] == "1"
        assert (await pool.status(vision_ns, victim))["restarts"] == 1
        await wait_for("a Resumed event", lambda: pool.events(vision_ns, victim, "Resumed"))


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


async def test_the_signal_hook_reads_the_checkpoint_from_the_termination_message(
    pool: Pool, operator: OperatorProcess
) -> None:
    """signal mode: the worker gets SIGTERM (a graceful delete), writes its checkpoint to
    its termination message (kwok's stage plays the workload), and the job resumes from
    it."""
    await pool.add_nodes(1, 8)
    _, vision_ns = await pool.add_team("vision", 0)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    location = "s3://ckpt/vision/signal/step-42"
    await pool.submit(
        vision_ns, "graceful", hook="signal", pod_annotations={FAKE_CHECKPOINT: location}
    )
    await pool.wait_phase(vision_ns, "graceful", "Running")
    await pool.submit(nlp_ns, "bert")
    await pool.wait_phase(nlp_ns, "bert", "Running", timeout=45)
    status = await pool.wait_phase(vision_ns, "graceful", "Pending")
    assert status["preemptions"] == 1
    assert status["lastCheckpoint"] == {
        "location": location,
        "source": "terminationMessage",
        "time": status["lastCheckpoint"]["time"],
    }
    assert pool.checkpoints.calls == []


def rendezvous(pods: list[dict[str, Any]]) -> tuple[int, list[int]]:
    """(incarnation, ranks) of a job's pods, checked as its workers will use them: one
    incarnation, WORLD_SIZE = the number of pods, ranks 0..n-1, MASTER_ADDR = rank 0."""
    places = [worker(env_of(pod)) for pod in pods]
    assert len({(p.incarnation, p.world_size, p.master_addr) for p in places}) == 1, places
    assert {p.world_size for p in places} == {len(pods)}
    ranks = sorted(p.rank for p in places)
    assert ranks == list(range(len(pods)))
    (zero,) = [pod for pod, place in zip(pods, places, strict=True) if place.rank == 0]
    assert places[0].master_addr.split(".")[0] == zero["spec"]["hostname"]
    return places[0].incarnation, ranks


async def test_an_elastic_job_starts_again_at_its_new_size_when_it_grows_and_shrinks(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """2 nodes × 8 GPUs; nlp holds one node, vision's elastic 1–4 × 4-GPU job starts on
    the other (2 workers). nlp's job goes: the job grows to 4 — every worker
    checkpointed, then incarnation 1 with WORLD_SIZE 4 from that checkpoint. nlp claims
    8 GPUs again: it shrinks to 2 — incarnation 2, WORLD_SIZE 2. Every pod's rank, world
    size and rank 0 agree at every size; no GPU is double-booked; nothing is preempted."""
    await pool.add_nodes(2, 8)
    _, vision_ns = await pool.add_team("vision", 0)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    async with CapacityMonitor(pool, 8):
        await pool.submit(nlp_ns, "first")
        await pool.wait_phase(nlp_ns, "first", "Running")
        await pool.submit(vision_ns, "elastic", gpus=4, workers=None, minWorkers=1, maxWorkers=4)

        async def at(size: int, incarnation: int) -> list[dict[str, Any]] | None:
            pods = await pool.job_pods(vision_ns, "elastic")
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            current = [p for p in live if env_of(p)["GPUPOOL_INCARNATION"] == str(incarnation)]
            return current if len(current) == size == len(live) else None

        pods = await wait_for("the elastic job at 2 workers", lambda: at(2, 0), timeout=45)
        assert rendezvous(pods) == (0, [0, 1])
        await pool.wait_phase(vision_ns, "elastic", "Running")

        await kube.delete(GPUJOBS, "first", nlp_ns)
        pods = await wait_for("the elastic job grown to 4", lambda: at(4, 1), timeout=60)
        assert rendezvous(pods) == (1, [0, 1, 2, 3])
        saved = (await pool.status(vision_ns, "elastic"))["lastCheckpoint"]["location"]
        assert saved.startswith(f"s3://ckpt/{vision_ns}/elastic/step-")
        assert {env_of(p)["GPUPOOL_RESUME_FROM"] for p in pods} == {saved}
        await pool.wait_phase(vision_ns, "elastic", "Running")
        await pool.wait_events(vision_ns, "elastic", "Grown", containing="WORLD_SIZE 4")

        await pool.submit(nlp_ns, "bert")
        await pool.wait_phase(nlp_ns, "bert", "Running", timeout=60)
        pods = await wait_for("the elastic job shrunk to 2", lambda: at(2, 2), timeout=60)
        assert rendezvous(pods) == (2, [0, 1])
        status = await pool.wait_phase(vision_ns, "elastic", "Running")
        assert status["lastCheckpoint"]["location"] != saved
        assert {env_of(p)["GPUPOOL_RESUME_FROM"] for p in pods} == {
            status["lastCheckpoint"]["location"]
        }
        assert (status["preemptions"], status["restarts"]) == (0, 2)
        await pool.wait_events(vision_ns, "elastic", "Shrunk", containing="WORLD_SIZE 2")
