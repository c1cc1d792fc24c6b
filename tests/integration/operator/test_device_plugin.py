"""Unhealthy GPUs as the node agent and the NVIDIA device plugin report them, on the
real API server: a bad GPU is out once, and no new pod goes where the kubelet could
still hand it out."""

from __future__ import annotations

import pytest

from gpupool.k8s import NODES, KubeClient

from .harness import OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration


async def withhold(kube: KubeClient, node: str, allocatable: int) -> None:
    """What the device plugin does with a GPU it finds unhealthy: out of allocatable,
    still in capacity."""
    await kube.patch_status(NODES, node, {"allocatable": {"nvidia.com/gpu": str(allocatable)}})

    async def lowered() -> bool:
        status = (await kube.get(NODES, node))["status"]
        return bool(
            status["allocatable"]["nvidia.com/gpu"] == str(allocatable)
            and status["capacity"]["nvidia.com/gpu"] == "8"
        )

    await wait_for(f"{node} allocatable {allocatable}", lowered)


async def test_a_gpu_both_report_bad_is_out_once(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """One 8-GPU node; GPU 7 hit XID 79: the agent marks it unhealthy, the device plugin
    lowers allocatable to 7. Seven 1-GPU jobs all run (not six); an eighth waits."""
    (node,) = await pool.add_nodes(1, 8)
    _, ns = await pool.add_team("vision", 8)
    await withhold(kube, node, 7)
    await pool.set_gpunode(node, 8, users={}, utilization=0, unhealthy={7: "XID 79"})
    operator.start()
    for i in range(7):
        await pool.submit(ns, f"j{i}", gpus=1)
    for i in range(7):
        await pool.wait_phase(ns, f"j{i}", "Running", timeout=60)
    await pool.submit(ns, "eighth", gpus=1)

    async def waits() -> str | None:
        reason = (await pool.status(ns, "eighth")).get("pendingReason")
        return str(reason) if reason else None

    await wait_for("the eighth to wait", waits)
    assert not await pool.job_pods(ns, "eighth")
    for i in range(7):
        assert (await pool.status(ns, f"j{i}")).get("preemptions", 0) == 0


async def test_no_new_pod_goes_where_the_kubelet_could_hand_out_the_bad_gpu(
    pool: Pool, operator: OperatorProcess
) -> None:
    """The agent marks GPU 7 of gpu0 unhealthy; the device plugin has not (allocatable
    still 8), so the kubelet may give GPU 7 to the next pod there. A resumed 4-GPU job
    goes to gpu1 — best fit alone would pick gpu0, the node with fewer free GPUs."""
    bad, good = await pool.add_nodes(2, 8)
    _, ns = await pool.add_team("vision", 8)
    await pool.set_gpunode(bad, 8, users={}, utilization=0, unhealthy={7: "XID 79"})
    await pool.set_gpunode(good, 8, users={}, utilization=0)
    operator.start()
    await pool.submit(ns, "resumed", gpus=4)
    await pool.wait_phase(ns, "resumed", "Running", timeout=60)
    (pod,) = await pool.job_pods(ns, "resumed")
    assert pod["spec"]["nodeName"] == good
