"""Objects deleted while the operator could not watch: a re-list (410 Gone) drops them."""

from __future__ import annotations

import asyncio

import pytest

from gpupool.devcluster import DevCluster
from gpupool.devcluster.etcd import Etcd, object_key

from .harness import OperatorProcess, Pool

pytestmark = pytest.mark.integration


async def test_a_job_deleted_during_a_relist_gap_frees_its_gpus(
    pool: Pool, operator: OperatorProcess, request: pytest.FixtureRequest
) -> None:
    """vision's job a holds the node's 8 GPUs, b waits for them. With the API server
    down, a and its pod are deleted from etcd and etcd is compacted: no watcher can ever
    see those deletions, and every watch resumed from before gets 410 Gone. After the
    API server is back, kopf re-lists; a's entries must go and b must run."""
    cluster = request.getfixturevalue("cluster")
    if not isinstance(cluster, DevCluster):
        pytest.skip("needs the local control plane: the test stops its API server")
    etcd = Etcd.of(cluster.components())
    await pool.add_nodes(1, 8)
    _, ns = await pool.add_team("vision", 8)
    operator.start()
    await pool.submit(ns, "a", gpus=8)
    await pool.wait_phase(ns, "a", "Running")
    await pool.submit(ns, "b", gpus=8)
    status = await pool.wait_phase(ns, "b", "Pending")
    assert status.get("pendingReason"), status
    (pod,) = await pool.job_pods(ns, "a")

    await asyncio.to_thread(cluster.stop_component, "kube-apiserver")
    try:
        deleted = [
            await asyncio.to_thread(etcd.delete, key)
            for key in (
                object_key("", "pods", ns, pod["metadata"]["name"]),
                object_key("gpupool.io", "gpujobs", ns, "a"),
            )
        ]
        assert deleted == [1, 1]
        await asyncio.to_thread(etcd.compact)
    finally:
        await asyncio.to_thread(cluster.start_component, "kube-apiserver")

    await pool.wait_phase(ns, "b", "Running", timeout=90)
    assert operator.alive()
    assert "deleted while not watched" in operator.tail(400)
