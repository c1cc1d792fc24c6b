"""A real Kubernetes control plane for tests and the demo, without Docker.

kube-apiserver, kube-controller-manager, kubectl, etcd, kwok and kwokctl are built
from Go modules by tests/cluster/build.sh (cached by version); `DevCluster.start()`
runs them on 127.0.0.1 with kwokctl and adds fake GPU nodes whose pods run, finish
and terminate through kwok Stages.

    from gpupool.devcluster import DevCluster
    with DevCluster.start(nodes=4, gpus_per_node=8, racks=2) as cluster:
        cluster.kubectl("get", "nodes")
        cluster.set_node_ready("gpu-0", False)
"""

from gpupool.devcluster.cluster import Cluster, KubectlError, wait_until
from gpupool.devcluster.local import DevCluster, start_for_tests, workdir
from gpupool.devcluster.nodes import (
    GPU_NODE_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    NVLINK_DOMAIN_LABEL,
    RACK_LABEL,
    ZONE_LABEL,
    Topology,
)
from gpupool.devcluster.stages import (
    FAKE_ADMISSION_REFUSED,
    FAKE_CHECKPOINT,
    FAKE_CHECKPOINT_DELAY,
    FAKE_DURATION,
    FAKE_EXIT_CODE,
    FAKE_IGNORE_SIGTERM,
)

__all__ = [
    "FAKE_ADMISSION_REFUSED",
    "FAKE_CHECKPOINT",
    "FAKE_CHECKPOINT_DELAY",
    "FAKE_DURATION",
    "FAKE_EXIT_CODE",
    "FAKE_IGNORE_SIGTERM",
    "GPU_NODE_LABEL",
    "GPU_PRODUCT_LABEL",
    "GPU_RESOURCE",
    "NVLINK_DOMAIN_LABEL",
    "RACK_LABEL",
    "ZONE_LABEL",
    "Cluster",
    "DevCluster",
    "KubectlError",
    "Topology",
    "start_for_tests",
    "wait_until",
    "workdir",
]
