"""Leader election (kopf peering): one instance schedules; when it dies, the standby does."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from gpupool.k8s import CRDS, ApiError, KubeClient
from gpupool.k8s.peering import CLUSTER_PEERINGS, PEERING_CRD

from .harness import OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration


async def _peering_crd(kube: KubeClient) -> None:
    try:
        await kube.create(CRDS, PEERING_CRD)
    except ApiError as error:
        if not error.conflict:
            raise

    async def served() -> bool:
        await kube.list(CLUSTER_PEERINGS)
        return True

    await wait_for("the ClusterKopfPeering resource", served)


async def test_only_the_leader_schedules_and_the_standby_takes_over_when_it_dies(
    pool: Pool, kube: KubeClient, kubeconfig_path: str, tmp_path: Path
) -> None:
    await _peering_crd(kube)
    await pool.add_nodes(1, 8)
    _, ns = await pool.add_team("vision", 8)
    name = pool.name("peering")
    leader = OperatorProcess(kubeconfig_path, pool.selector, tmp_path / "a.log", peering=name)
    standby = OperatorProcess(kubeconfig_path, pool.selector, tmp_path / "b.log", peering=name)
    try:
        leader.start()
        await asyncio.sleep(2.0)  # the older instance gets the higher priority
        standby.start()

        async def two_peers() -> bool:
            peers = (await kube.get(CLUSTER_PEERINGS, name)).get("status") or {}
            return len(peers) == 2

        await wait_for("both instances in the peering object", two_peers, timeout=30)
        await pool.submit(ns, "first", gpus=4)
        await pool.wait_phase(ns, "first", "Running")
        assert "leading" in leader.log.read_text()
        assert "leading" not in standby.log.read_text()

        leader.kill()
        await pool.submit(ns, "second", gpus=4)
        # The dead leader's record blocks the standby for the peer lifetime (15 s).
        await pool.wait_phase(ns, "second", "Running", timeout=90)
        assert "leading" in standby.log.read_text()
        assert await pool.phase(ns, "first") == "Running"
        held = await pool.gpus_by_node()
        assert all(gpus <= 8 for gpus in held.values()), held
    finally:
        leader.stop()
        standby.stop()
        with contextlib.suppress(ApiError):
            await kube.delete(CLUSTER_PEERINGS, name)
