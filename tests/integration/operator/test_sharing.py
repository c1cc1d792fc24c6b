"""Sharing the nodes with every other GPU consumer, on the real API server with a real
kube-scheduler placing the pods gpupool does not govern."""

from __future__ import annotations

import pytest

from gpupool.devcluster import FAKE_ADMISSION_REFUSED
from gpupool.k8s import GPUJOBS, TEAMQUOTAS, KubeClient

from .harness import DEPLOYMENTS, CapacityMonitor, OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration


async def serving_running(pool: Pool, namespace: str, count: int) -> list[dict[str, object]]:
    async def probe() -> list[dict[str, object]] | None:
        pods = [
            pod
            for pod in await pool.running_pods_on_nodes()
            if pod["metadata"]["namespace"] == namespace
            and (pod.get("status") or {}).get("phase") == "Running"
        ]
        return pods if len(pods) == count else None

    return await wait_for(f"{count} serving pods Running", probe, timeout=60)


async def test_gpupool_lends_around_pods_kube_scheduler_placed(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """2 nodes × 8 GPUs. kube-scheduler places an inference Deployment outside every team
    (4 GPUs on node 0) and a notebook-like Deployment of team vision (2 GPUs on node 1).
    vision (guaranteed 4) borrows the rest with two 4-GPU jobs; nlp (guaranteed 6)
    submits two: a vision job is checkpointed away, nlp runs, and at no sample does any
    node hold more GPUs than it has. vision's TeamQuota charges it the notebook's GPUs.
    When the inference Deployment goes, its GPUs go to nlp's second job."""
    node0, node1 = await pool.add_nodes(2, 8)
    serving_ns = await pool.add_namespace("serving")
    vision, vision_ns = await pool.add_team("vision", 4)
    _, nlp_ns = await pool.add_team("nlp", 6)
    await pool.add_serving(serving_ns, "llm", gpus=4, node=node0)
    await pool.add_serving(vision_ns, "notebook", gpus=2, node=node1)
    await serving_running(pool, serving_ns, 1)
    await serving_running(pool, vision_ns, 1)
    operator.start()
    async with CapacityMonitor(pool, 8) as monitor:
        await pool.submit(vision_ns, "v1", gpus=4)
        await pool.submit(vision_ns, "v2", gpus=4)
        for name in ("v1", "v2"):
            await pool.wait_phase(vision_ns, name, "Running")

        async def charged() -> dict[str, object] | None:
            status = (await kube.get(TEAMQUOTAS, vision)).get("status") or {}
            wanted = (status.get("allocatedGPUs"), status.get("unmanagedGPUs"))
            return status if wanted == (10, 2) else None

        status = await wait_for("vision charged its notebook's 2 GPUs", charged)
        assert status["borrowedGPUs"] == 6

        # nlp asks for 8: of the 12 GPUs the teams share, its fair share is 7 and
        # vision's 5, so one vision job is reclaimed and one nlp job runs.
        await pool.submit(nlp_ns, "bert", gpus=4)
        await pool.submit(nlp_ns, "gpt", gpus=4)

        async def one_running() -> list[str] | None:
            phases = {n: await pool.phase(nlp_ns, n) for n in ("bert", "gpt")}
            running = [n for n, phase in phases.items() if phase == "Running"]
            return running or None

        await wait_for("an nlp job Running", one_running, timeout=60)
        victim = await pool.preempted(vision_ns, ["v1", "v2"])
        assert (await pool.status(vision_ns, victim))["phase"] == "Pending"

        # The inference Deployment goes: nlp, below its share, gets its GPUs first; then
        # nlp's jobs end and the reclaimed vision job resumes.
        await kube.delete(DEPLOYMENTS, "llm", serving_ns)
        for name in ("bert", "gpt"):
            await pool.wait_phase(nlp_ns, name, "Running", timeout=60)
        assert await pool.phase(vision_ns, victim) == "Pending"
        for name in ("bert", "gpt"):
            await kube.delete(GPUJOBS, name, nlp_ns)
        await pool.wait_phase(vision_ns, victim, "Running", timeout=60)
    assert monitor.samples > 10
    left = [p["metadata"]["name"] for p in await pool.running_pods_on_nodes()]
    assert any(name.startswith("notebook-") for name in left), left


async def test_a_worker_its_kubelet_refuses_is_replanned_without_a_failure(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """The kubelet refuses the first run's worker (OutOfnvidia.com/gpu, played by a kwok
    Stage): the job is re-planned, its Event and pending reason say PlacementConflict,
    no failure is counted (backoffLimit 0 would fail it otherwise), and once the
    refusal is gone the job runs."""
    await pool.add_nodes(1, 8)
    _, vision_ns = await pool.add_team("vision", 8)
    operator.extra_env["GPUPOOL_CONFLICT_RETRY_SECONDS"] = "8"
    operator.start()
    await pool.submit(
        vision_ns,
        "a",
        backoffLimit=0,
        pod_annotations={FAKE_ADMISSION_REFUSED: "OutOfnvidia.com/gpu"},
    )
    event, *_ = await pool.wait_events(vision_ns, "a", "PlacementConflict")
    assert "OutOfnvidia.com/gpu" in event["note"] and "no failure counted" in event["note"]

    async def conflicted() -> dict[str, object] | None:
        status = await pool.status(vision_ns, "a")
        return status if status.get("pendingReason") == "PlacementConflict" else None

    status = await wait_for("the pending reason PlacementConflict", conflicted)
    assert status.get("failures", 0) == 0
    # The pod that won the race is gone: the next run is admitted.
    await kube.patch(
        GPUJOBS,
        "a",
        {"spec": {"template": {"metadata": {"annotations": {FAKE_ADMISSION_REFUSED: None}}}}},
        vision_ns,
    )
    status = await pool.wait_phase(vision_ns, "a", "Running", timeout=45)
    assert status.get("failures", 0) == 0
