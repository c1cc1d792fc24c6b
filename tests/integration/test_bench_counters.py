"""What the benchmarks read from the real API server: its /metrics, and write counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.bench.apiserver import phase_writes, write_counts
from gpupool.k8s import NAMESPACES, KubeClient

pytestmark = pytest.mark.integration


async def test_a_phase_counts_the_writes_the_api_server_served(kubeconfig: Path) -> None:
    async with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        metrics = await client.get_text("/metrics")
        assert "# TYPE apiserver_request_total counter" in metrics
        before = await write_counts(client)
        name = "gpupool-bench-counters"
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        await client.delete(NAMESPACES, name)
        after = await write_counts(client)
    writes = phase_writes(before, after, 1.0)
    assert writes["namespaces"] >= 2  # the create and the delete
    assert writes["total"] >= writes["namespaces"]
    assert writes["per_second"] == writes["total"]
