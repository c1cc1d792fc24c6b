"""GPUJob: a team's workload — workers × GPUs, priority, elasticity, checkpoint hook."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from pydantic.config import JsonDict

from gpupool.api.base import CelRule, K8sModel, K8sStatus
from gpupool.api.bounds import CHECKPOINT_MAX_LENGTH
from gpupool.api.conditions import Condition
from gpupool.api.podtemplate import template_schema
from gpupool.forecast.durations import DURATION_PATTERN, parse_duration

NodeName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
Topology = Literal["none", "node", "rack", "nvlinkDomain", "zone"]

PHASES = ("Pending", "Admitted", "Running", "Checkpointing", "Succeeded", "Failed")
Phase = Literal["Pending", "Admitted", "Running", "Checkpointing", "Succeeded", "Failed"]


def _template_schema(schema: JsonDict) -> None:
    schema.update(template_schema())


def _immutable(field: str) -> JsonDict:
    return {
        "rule": "self == oldSelf",
        "message": f"spec.{field} is immutable: delete the GPUJob and create it again",
    }


class HttpPostHook(K8sModel):
    """POST to each worker pod; the reply is JSON `{"checkpoint": "<location>"}`."""

    path: str = Field(default="/checkpoint", max_length=1024, pattern=r"^/")
    port: int = Field(ge=1, le=65535)


class CheckpointHook(K8sModel):
    """How gpupool asks the job to save its work before taking its GPUs."""

    mode: Literal["signal", "httpPost"] = Field(
        default="signal",
        description=(
            "signal: graceful delete (SIGTERM, grace = timeoutSeconds); the workload writes "
            "its checkpoint location to its termination message. httpPost: POST to the pod."
        ),
    )
    timeout_seconds: int = Field(
        default=120,
        ge=1,
        le=3600,
        description="How long the hook may take; then eviction proceeds regardless.",
    )
    http_post: HttpPostHook | None = Field(default=None, description="Required for httpPost.")

    cel_rules = (
        CelRule(
            rule="self.mode != 'httpPost' || has(self.httpPost)",
            message="spec.checkpoint.httpPost (port, path) is required when mode is httpPost",
            check=lambda s: s.mode != "httpPost" or s.http_post is not None,
            field_path=".httpPost",
        ),
    )


class Placement(K8sModel):
    """Where the workers should land."""

    topology: Topology = Field(
        default="none",
        description="Keep all workers inside one such domain (node, rack, NVLink domain, zone).",
    )
    required: bool = Field(
        default=False,
        description="true: wait until the topology can be met; false: prefer it only.",
    )
    preferred_nodes: list[NodeName] | None = Field(
        default=None,
        max_length=64,
        description="Data locality: nodes near the job's data, tried first.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class GPUJobSpec(K8sModel):
    """A GPU workload: fixed (`workers`) or elastic (`minWorkers`..`maxWorkers`)."""

    team: Annotated[str, StringConstraints(max_length=63)] | None = Field(
        default=None,
        description="TeamQuota name; unset: the team whose namespaces include this one.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("team")]},
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    priority_class_name: Annotated[str, StringConstraints(max_length=63)] | None = Field(
        default=None, description="A name from the team's priorityClasses (overrides priority)."
    )
    gpus_per_worker: int = Field(
        ge=1,
        le=64,
        description="GPUs for each worker pod.",
        json_schema_extra={"x-kubernetes-validations": [_immutable("gpusPerWorker")]},
    )
    workers: int | None = Field(default=None, ge=1, le=4096, description="Fixed worker count.")
    min_workers: int | None = Field(default=None, ge=1, le=4096, description="Elastic minimum.")
    max_workers: int | None = Field(default=None, ge=1, le=4096, description="Elastic maximum.")
    preemptible: bool = Field(
        default=True, description="false: never checkpointed or evicted for another job."
    )
    checkpoint: CheckpointHook | None = Field(
        default=None, description="Checkpoint hook run before any preemption."
    )
    placement: Placement | None = Field(default=None)
    backoff_limit: int = Field(
        default=3, ge=0, le=100, description="Worker failures tolerated before Failed."
    )
    expected_duration: str | None = Field(
        default=None,
        min_length=2,
        max_length=32,
        pattern=DURATION_PATTERN,
        description=(
            "How long one uninterrupted run takes, e.g. 2h, 90m, 1h30m: the queue's "
            "start-time forecasts use it (without it, the team's finished runs of the "
            "same shape)."
        ),
    )
    template: dict[str, Any] = Field(
        description="PodTemplateSpec for each worker; gpupool adds the GPU limits.",
        json_schema_extra=_template_schema,
    )

    cel_rules = (
        CelRule(
            rule=(
                "has(self.workers) ? !has(self.minWorkers) && !has(self.maxWorkers)"
                " : has(self.minWorkers) && has(self.maxWorkers)"
            ),
            message=(
                "set either spec.workers (fixed size) or both spec.minWorkers and "
                "spec.maxWorkers (elastic), not both"
            ),
            check=lambda s: (
                s.min_workers is None and s.max_workers is None
                if s.workers is not None
                else s.min_workers is not None and s.max_workers is not None
            ),
        ),
        CelRule(
            rule=(
                "!has(self.minWorkers) || !has(self.maxWorkers)"
                " || self.minWorkers <= self.maxWorkers"
            ),
            message="spec.minWorkers must be less than or equal to spec.maxWorkers",
            check=lambda s: (
                s.min_workers is None or s.max_workers is None or s.min_workers <= s.max_workers
            ),
            field_path=".minWorkers",
        ),
        CelRule(
            rule="size(self.template.spec.containers) > 0",
            message="spec.template.spec.containers must list at least one container",
            check=lambda s: bool((s.template.get("spec") or {}).get("containers")),
            field_path=".template.spec.containers",
        ),
    )

    @property
    def expected_seconds(self) -> float | None:
        return None if self.expected_duration is None else parse_duration(self.expected_duration)

    @property
    def worker_range(self) -> tuple[int, int]:
        """(min, max) workers; equal for a fixed-size job."""
        if self.workers is not None:
            return self.workers, self.workers
        assert self.min_workers is not None and self.max_workers is not None
        return self.min_workers, self.max_workers


class WorkerStatus(K8sStatus):
    """One running worker."""

    index: int = Field(ge=0, le=4095)
    pod: str = Field(default="", max_length=253)
    node: str = Field(default="", max_length=253)
    gpus: int = Field(default=0, ge=0, le=64)
    phase: str = ""


class CheckpointRecord(K8sStatus):
    """The latest checkpoint a job reported: where to resume from."""

    location: str = Field(
        max_length=CHECKPOINT_MAX_LENGTH,
        description="What the workload reported, e.g. a path or URL.",
    )
    time: datetime | None = None
    source: Literal["hook", "terminationMessage", "workload", "unknown"] = "unknown"


class Utilization(K8sStatus):
    """The job's measured GPU utilization (percent), from the node agents."""

    mean_1m: float | None = None
    mean_5m: float | None = None
    mean_15m: float | None = None
    idle_since: datetime | None = None


class EstimatedStart(K8sStatus):
    """When the job should start, forecast by planning forward from the live cluster."""

    time: datetime | None = Field(default=None, description="Unset: no estimate (see basis).")
    confidence: Literal["high", "medium", "low"] | None = Field(
        default=None,
        description=(
            "high: every job ending before it has a declared expectedDuration; medium: some "
            "durations are learned from their team's history; low: guessed."
        ),
    )
    basis: str = Field(default="", description="What the estimate rests on, or why none.")
    computed_at: datetime | None = None


class GPUJobStatus(K8sStatus):
    """Where the job stands and why."""

    phase: Phase = "Pending"
    team: str = ""
    shape: str = Field(default="", description="workers×GPUs, e.g. 2×8.")
    detail: str = Field(default="", description="Why pending, or where it runs.")
    pending_reason: str = Field(default="", description="The planner's reason code.")
    queue_position: int | None = None
    estimated_start: EstimatedStart | None = None
    workers: list[WorkerStatus] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["index"],
        },
    )
    admitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_checkpoint: CheckpointRecord | None = None
    preemptions: int = Field(default=0, ge=0)
    restarts: int = Field(
        default=0, ge=0, description="Times the job was (re)admitted after the first."
    )
    failures: int = Field(
        default=0, ge=0, description="Worker failures counted against backoffLimit."
    )
    utilization: Utilization | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class GPUJob(K8sModel):
    """A team's GPU workload (namespaced)."""

    api_version: Literal["gpupool.io/v1alpha1"] = "gpupool.io/v1alpha1"
    kind: Literal["GPUJob"] = "GPUJob"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: GPUJobSpec
    status: GPUJobStatus | None = None
