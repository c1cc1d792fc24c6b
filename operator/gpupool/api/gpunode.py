"""GPUNode: one per GPU node, written by that node's agent — a GPU `top` for the cluster."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from gpupool.api.base import K8sModel, K8sStatus
from gpupool.api.conditions import Condition

# GPUs one node can hold, with room to spare (today's largest servers have 16).
MAX_GPUS = 256


class PodRef(K8sStatus):
    """The pod (and container) using a GPU."""

    namespace: str
    name: str
    container: str = ""
    uid: str = ""


class GPUDevice(K8sStatus):
    """One GPU as the agent last saw it."""

    index: int = Field(ge=0, le=MAX_GPUS - 1)
    uuid: str = ""
    product: str = ""
    healthy: bool = True
    health_reason: str = Field(default="", description="Why unhealthy: XID, ECC, lost, ...")
    utilization: float = Field(default=0, ge=0, le=100, description="Latest sample, percent.")
    utilization_1m: float = Field(
        default=0, ge=0, le=100, description="Mean over 1 minute, percent."
    )
    utilization_5m: float = Field(
        default=0, ge=0, le=100, description="Mean over 5 minutes, percent."
    )
    utilization_15m: float = Field(
        default=0, ge=0, le=100, description="Mean over 15 minutes, percent."
    )
    idle_seconds: float = Field(
        default=0, ge=0, description="Seconds since the GPU was last active."
    )
    memory_used_mib: int = Field(default=0, ge=0)
    memory_total_mib: int = Field(default=0, ge=0)
    temperature_c: float | None = Field(default=None, ge=-273, le=1000)
    power_w: float | None = Field(default=None, ge=0)
    ecc_errors: int = Field(default=0, ge=0)
    pod: PodRef | None = None


class PodCheckpoint(K8sStatus):
    """The latest checkpoint a running pod on the node reported (its log, read by the
    agent): what a preemption of it would resume from."""

    namespace: str
    name: str
    uid: str = ""
    location: str = Field(description="Where the workload saved.")
    saved_at: datetime | None = Field(
        default=None, description="When the workload reported it (the container log's time)."
    )


class NodeTopology(K8sStatus):
    """Topology labels of the node (from its Node labels)."""

    rack: str = ""
    zone: str = ""
    nvlink_domain: str = ""


class GPUNodeSpec(K8sModel):
    node_name: str = Field(description="The Node this GPUNode describes.")


class GPUNodeStatus(K8sStatus):
    """Per-GPU utilization, memory and health, and node-level summaries."""

    gpu_count: int = Field(default=0, ge=0, le=MAX_GPUS)
    healthy_gpus: int = Field(default=0, ge=0, le=MAX_GPUS)
    allocated_gpus: int = Field(default=0, ge=0, le=MAX_GPUS, description="GPUs in use by a pod.")
    mean_utilization: float = Field(
        default=0, ge=0, le=100, description="Mean 1-minute utilization, percent."
    )
    reporting: bool = Field(default=False, description="false: NVML not available on the node.")
    message: str = ""
    backend: str = Field(default="", description="nvml or fake.")
    driver_version: str = ""
    topology: NodeTopology | None = None
    gpus: list[GPUDevice] = Field(
        default_factory=list,
        max_length=MAX_GPUS,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["index"],
        },
    )
    checkpoints: list[PodCheckpoint] = Field(
        default_factory=list,
        description="Per running GPU pod, the latest checkpoint it reported.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["namespace", "name"],
        },
    )
    last_update: datetime | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class GPUNode(K8sModel):
    """The agent's view of one node's GPUs (cluster-scoped, named after the node)."""

    api_version: str = "gpupool.io/v1alpha1"
    kind: str = "GPUNode"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: GPUNodeSpec
    status: GPUNodeStatus | None = None
