"""The gpupool resources (API group gpupool.io, version v1alpha1) as pydantic models."""

from gpupool.api.base import API_GROUP, API_VERSION, GROUP_VERSION, CelRule, K8sModel
from gpupool.api.conditions import Condition, set_condition
from gpupool.api.gpujob import (
    CheckpointHook,
    CheckpointRecord,
    EstimatedStart,
    GPUJob,
    GPUJobSpec,
    GPUJobStatus,
    Placement,
    WorkerStatus,
)
from gpupool.api.gpunode import GPUDevice, GPUNode, GPUNodeSpec, GPUNodeStatus, PodRef
from gpupool.api.teamquota import IdleReclaim, TeamQuota, TeamQuotaSpec, TeamQuotaStatus

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "GROUP_VERSION",
    "CelRule",
    "CheckpointHook",
    "CheckpointRecord",
    "Condition",
    "EstimatedStart",
    "GPUDevice",
    "GPUJob",
    "GPUJobSpec",
    "GPUJobStatus",
    "GPUNode",
    "GPUNodeSpec",
    "GPUNodeStatus",
    "IdleReclaim",
    "K8sModel",
    "Placement",
    "PodRef",
    "TeamQuota",
    "TeamQuotaSpec",
    "TeamQuotaStatus",
    "WorkerStatus",
    "set_condition",
]
