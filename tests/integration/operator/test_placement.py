"""Gang admission across nodes and topology packing, on the real API server."""

from __future__ import annotations

import pytest

from gpupool.k8s import GPUJOBS, KubeClient

from .harness import OperatorProcess, Pool, env_of, wait_for

pytestmark = pytest.mark.integration


async def test_a_gang_starts_all_workers_across_nodes_or_none(
    pool: Pool, operator: OperatorProcess, kube: KubeClient
) -> None:
    """3 nodes × 4 GPUs: a 3×4 job lands on all three at once; a second 2×4 job waits
    with no pod at all until the first one is deleted."""
    await pool.add_nodes(3, 4)
    _, ns = await pool.add_team("vision", 12)
    operator.start()
    await pool.submit(ns, "ddp", gpus=4, workers=3)
    await pool.wait_phase(ns, "ddp", "Running")
    pods = await pool.job_pods(ns, "ddp")
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(pool.nodes)
    ranks = sorted(env_of(p)["RANK"] for p in pods)
    assert ranks == ["0", "1", "2"]
    assert {env_of(p)["WORLD_SIZE"] for p in pods} == {"3"}
    assert {env_of(p)["MASTER_ADDR"].split(".")[0] for p in pods} == {"ddp-0-0"}

    await pool.submit(ns, "second", gpus=4, workers=2)

    async def waiting() -> dict[str, object] | None:
        status = await pool.status(ns, "second")
        return status if status.get("pendingReason") else None

    await wait_for("the second gang to be explained", waiting)
    assert await pool.job_pods(ns, "second") == []
    await kube.delete(GPUJOBS, "ddp", ns)
    await pool.wait_phase(ns, "second", "Running", timeout=30)
    assert len(await pool.job_pods(ns, "second")) == 2


async def test_workers_are_packed_on_the_fewest_nodes_and_one_rack(
    pool: Pool, operator: OperatorProcess
) -> None:
    """Two racks of two 8-GPU nodes; a 4×4 job asking for one rack lands on two nodes of
    the same rack, and 2×2 lands on a single node."""
    await pool.add_nodes(2, 8, rack="r1", prefix="r1n")
    await pool.add_nodes(2, 8, rack="r2", prefix="r2n")
    _, ns = await pool.add_team("vision", 32)
    operator.start()
    await pool.submit(
        ns, "racked", gpus=4, workers=4, placement={"topology": "rack", "required": True}
    )
    await pool.wait_phase(ns, "racked", "Running")
    nodes = {p["spec"]["nodeName"] for p in await pool.job_pods(ns, "racked")}
    assert len(nodes) == 2
    assert len({name[:2] for name in nodes}) == 1, nodes
    await pool.submit(ns, "small", gpus=2, workers=2)
    await pool.wait_phase(ns, "small", "Running")
    assert len({p["spec"]["nodeName"] for p in await pool.job_pods(ns, "small")}) == 1
