"""Invalid GPUJobs are rejected by the API server (CRD schema + CEL), naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.k8s import GPUJOBS, ApiError, KubeClient

from .harness import Pool

pytestmark = pytest.mark.integration

CONTAINERS = [{"name": "train", "image": "train:latest"}]


def spec(**fields: Any) -> dict[str, Any]:
    return {"gpusPerWorker": 8, "workers": 1, "template": {"spec": {"containers": CONTAINERS}}} | (
        fields
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (spec(gpusPerWorker=0), "spec.gpusPerWorker"),
        (spec(minWorkers=1, maxWorkers=2), "set either spec.workers"),
        (
            {k: v for k, v in spec(minWorkers=4, maxWorkers=2).items() if k != "workers"},
            "spec.minWorkers must be less than or equal to spec.maxWorkers",
        ),
        (spec(checkpoint={"mode": "httpPost"}), "spec.checkpoint.httpPost"),
        (spec(template={"spec": {"containers": []}}), "spec.template.spec.containers"),
        (spec(priority=5000), "spec.priority"),
        (spec(expectedDuration="2 days"), "spec.expectedDuration"),
    ],
)
async def test_invalid_gpujobs_are_rejected_with_the_field_named(
    pool: Pool, kube: KubeClient, body: dict[str, Any], expected: str
) -> None:
    namespace = await pool.add_namespace("invalid")
    with pytest.raises(ApiError) as raised:
        await kube.create(
            GPUJOBS,
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "GPUJob",
                "metadata": {"name": "bad", "namespace": namespace},
                "spec": body,
            },
            namespace,
        )
    assert raised.value.invalid, raised.value
    assert expected in raised.value.message, raised.value.message


async def test_gpus_per_worker_is_immutable(pool: Pool, kube: KubeClient) -> None:
    namespace = await pool.add_namespace("immutable")
    await kube.create(
        GPUJOBS,
        {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "GPUJob",
            "metadata": {"name": "fixed", "namespace": namespace},
            "spec": spec(),
        },
        namespace,
    )
    with pytest.raises(ApiError) as raised:
        await kube.patch(GPUJOBS, "fixed", {"spec": {"gpusPerWorker": 4}}, namespace)
    assert "spec.gpusPerWorker is immutable" in raised.value.message
