"""TeamQuota: a team's guaranteed GPUs, borrowing limit, weight and idle policy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from gpupool.api.base import CelRule, K8sModel, K8sStatus
from gpupool.api.conditions import Condition

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NamespaceName = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]


class IdleReclaim(K8sModel):
    """When a job's GPUs count as idle, and what gpupool does about it."""

    utilization_below: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="A job is idle while its mean GPU utilization (percent) stays below this.",
    )
    for_minutes: int = Field(
        default=30,
        ge=1,
        le=10080,
        description="How long the utilization must stay below the threshold.",
    )
    mode: Literal["enforce", "report"] = Field(
        default="report",
        description=(
            "enforce: checkpoint and reclaim an idle job's GPUs when another job waits "
            "for them; report: only set the Idle condition, an Event and a metric."
        ),
    )


class PriorityClass(K8sModel):
    """A named priority a team's GPUJobs may use instead of a raw number."""

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)] = Field(
        description="Name used in GPUJob spec.priorityClassName."
    )
    value: int = Field(ge=-1000, le=1000, description="The priority it stands for.")


class TeamQuotaSpec(K8sModel):
    """What a team is owed and how far it may borrow."""

    namespaces: list[NamespaceName] = Field(
        min_length=1,
        max_length=256,
        description="Namespaces whose GPUJobs belong to this team.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    guaranteed_gpus: int = Field(
        ge=0,
        le=1_000_000,
        description="GPUs always given back to this team when it has demand.",
    )
    max_gpus: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Borrowing limit: the most GPUs the team may hold. Unset: no limit.",
    )
    weight: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="Share of idle capacity relative to other teams (weighted fair share).",
    )
    idle_reclaim: IdleReclaim | None = Field(
        default=None, description="Reclaim GPUs that are allocated but idle. Unset: never."
    )
    priority_classes: list[PriorityClass] | None = Field(
        default=None,
        max_length=32,
        description="Named priorities for this team's GPUJobs.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    cel_rules = (
        CelRule(
            rule="!has(self.maxGPUs) || self.guaranteedGPUs <= self.maxGPUs",
            message="spec.guaranteedGPUs must be less than or equal to spec.maxGPUs",
            check=lambda s: s.max_gpus is None or s.guaranteed_gpus <= s.max_gpus,
            field_path=".guaranteedGPUs",
        ),
    )


class TeamQuotaStatus(K8sStatus):
    """What the scheduler last decided for this team."""

    allocated_gpus: int = Field(
        default=0,
        description="GPUs held by the team's jobs, and by its namespaces' unmanaged GPU pods.",
    )
    borrowed_gpus: int = Field(
        default=0, description="GPUs held beyond the guarantee (reclaimable)."
    )
    pending_gpus: int = Field(default=0, description="GPUs asked for by pending jobs.")
    unmanaged_gpus: int = Field(
        default=0,
        description="GPUs held by pods in the team's namespaces that did not come through "
        "gpupool: charged to the team, never preempted by gpupool.",
    )
    fair_share_gpus: float = Field(
        default=0, description="Entitlement now: guarantee plus weighted share of idle GPUs."
    )
    running_jobs: int = Field(default=0)
    pending_jobs: int = Field(default=0)
    decayed_usage: float = Field(
        default=0, description="GPU-hours used, decayed with a half-life (fair-share tie-break)."
    )
    usage_updated_at: datetime | None = Field(
        default=None, description="When decayedUsage was last brought up to date."
    )
    gpu_hours_allocated: float = Field(default=0, description="Cumulative GPU-hours allocated.")
    gpu_hours_used: float = Field(
        default=0, description="Cumulative GPU-hours weighted by measured utilization."
    )
    observed_generation: int | None = Field(default=None)
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class TeamQuota(K8sModel):
    """A team's share of the GPU pool (cluster-scoped)."""

    api_version: Literal["gpupool.io/v1alpha1"] = "gpupool.io/v1alpha1"
    kind: Literal["TeamQuota"] = "TeamQuota"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: TeamQuotaSpec
    status: TeamQuotaStatus | None = None
