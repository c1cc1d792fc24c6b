"""Fake GPU nodes for kwok: manifests with GPU capacity and topology labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"

ZONE_LABEL = "topology.kubernetes.io/zone"
RACK_LABEL = "gpupool.io/rack"
NVLINK_DOMAIN_LABEL = "gpupool.io/nvlink-domain"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_NODE_LABEL = "gpupool.io/gpu-node"

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
"""kwok manages the nodes that carry this annotation with the value `fake`."""

NOT_READY_ANNOTATION = "gpupool.io/fake-not-ready"
"""`true` makes kwok report the node NotReady (see stages.yaml)."""

DEFAULT_PRODUCT = "NVIDIA-H100-80GB-HBM3"


@dataclass(frozen=True)
class Topology:
    """How fake nodes are laid out: nodes fill racks in order, racks go round the zones,
    and each run of `nodes_per_nvlink_domain` nodes in a rack shares an NVLink domain."""

    racks: int = 1
    zones: int = 1
    nodes_per_nvlink_domain: int = 1
    product: str = DEFAULT_PRODUCT
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.racks < 1 or self.zones < 1 or self.nodes_per_nvlink_domain < 1:
            raise ValueError(f"racks, zones and NVLink domain sizes must be positive: {self}")

    def labels_for(self, index: int, count: int) -> dict[str, str]:
        """The labels of node `index` of `count` nodes."""
        per_rack = -(-count // self.racks)
        rack = index // per_rack
        slot = index % per_rack
        return {
            GPU_NODE_LABEL: "true",
            GPU_PRODUCT_LABEL: self.product,
            ZONE_LABEL: f"zone-{rack % self.zones}",
            RACK_LABEL: f"rack-{rack}",
            NVLINK_DOMAIN_LABEL: f"rack-{rack}-nvl-{slot // self.nodes_per_nvlink_domain}",
            **self.labels,
        }


def gpu_node(
    name: str,
    gpus: int,
    labels: Mapping[str, str],
    *,
    cpu: str = "96",
    memory: str = "1Ti",
    pods: str = "110",
) -> dict[str, Any]:
    """A kwok-managed Node advertising `gpus` nvidia.com/gpu in capacity and allocatable."""
    capacity = {GPU_RESOURCE: str(gpus), "cpu": cpu, "memory": memory, "pods": pods}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, **labels},
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def gpu_nodes(
    count: int, gpus_per_node: int, topology: Topology, *, prefix: str = "gpu", start: int = 0
) -> list[dict[str, Any]]:
    """`count` node manifests named `<prefix>-<n>` from `start` on, laid out by `topology`."""
    if count < 0 or gpus_per_node < 0:
        raise ValueError("node and GPU counts cannot be negative")
    return [
        gpu_node(f"{prefix}-{start + i}", gpus_per_node, topology.labels_for(i, count))
        for i in range(count)
    ]
