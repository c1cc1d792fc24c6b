"""The baseline's pods: gpupool's worker pods, but nobody's and asking for no GPU."""

from __future__ import annotations

from gpupool.api import GPUJobSpec
from gpupool.bench.baseline import baseline_pod
from gpupool.controller.manifests import GPU_RESOURCE, LABEL_MANAGED_BY, MANAGED_BY

SPEC = GPUJobSpec.model_validate(
    {
        "gpusPerWorker": 1,
        "workers": 1,
        "template": {"spec": {"containers": [{"name": "train", "image": "train:latest"}]}},
    }
)


def test_a_baseline_pod_is_a_worker_pod_nobody_owns_on_its_node() -> None:
    pod = baseline_pod(SPEC, "b00007", "baseline-x", "node-3")
    assert pod["metadata"]["name"] == "b00007"
    assert pod["metadata"]["namespace"] == "baseline-x"
    assert "ownerReferences" not in pod["metadata"]
    assert pod["metadata"]["labels"][LABEL_MANAGED_BY] != MANAGED_BY
    assert pod["spec"]["nodeName"] == "node-3"
    container = pod["spec"]["containers"][0]
    assert GPU_RESOURCE not in str(container.get("resources"))
    # The rest is what an admission sends: the rendezvous env included.
    names = {variable["name"] for variable in container["env"]}
    assert {"WORLD_SIZE", "RANK", "MASTER_ADDR", "GPUPOOL_JOB"} <= names
