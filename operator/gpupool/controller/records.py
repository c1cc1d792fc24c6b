"""What the indexes keep of each watched object: small immutable records, parsed once.

The index handlers turn raw bodies into these records (pure functions, unit-tested); the
scheduling loop reads only records. Keeping a few fields instead of whole bodies is what
keeps the operator small with 10,000 GPUJobs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gpupool.api import (
    GPUJobSpec,
    GPUJobStatus,
    GPUNodeStatus,
    TeamQuotaSpec,
    TeamQuotaStatus,
)
from gpupool.api.bounds import template_problem
from gpupool.controller.manifests import (
    GPU_RESOURCE,
    LABEL_INCARNATION,
    LABEL_JOB,
    LABEL_WORKER_INDEX,
)
from gpupool.controller.termination import checkpoint_from_pod
from gpupool.k8s.decoding import UNDECODABLE

LABEL_RACK = "gpupool.io/rack"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_NVLINK = "gpupool.io/nvlink-domain"

# Set on a failed worker pod once its failure counted against the job's backoffLimit: the
# pod is kept for its logs, and the mark keeps a restarted operator from counting it again.
LABEL_FAILURE_COUNTED = "gpupool.io/failure-counted"

TERMINAL_POD_PHASES = frozenset({"Succeeded", "Failed"})

# Why a kubelet refuses a pod it was given (phase Failed, nothing ran): another pod took
# the GPUs first (OutOfnvidia.com/gpu), or a device plugin refused the allocation. For
# gpupool that is a placement conflict to re-plan, never a failure of the workload.
ADMISSION_REFUSALS = frozenset({"UnexpectedAdmissionError", "NodeAffinity"})


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(value: object, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


JobKey = tuple[str, str]
"""(namespace, name) of a GPUJob."""


@dataclass(frozen=True, slots=True)
class PodRecord:
    """One worker pod gpupool created."""

    namespace: str
    name: str
    uid: str
    job: str
    job_uid: str
    index: int
    incarnation: int
    node: str
    gpus: int
    phase: str
    deleting: bool
    created: datetime | None
    started: datetime | None
    checkpoint: str | None = None
    message: str = ""
    # What the checkpoint protocol needs to reach the pod (see controller/checkpoint.py).
    ip: str = ""
    first_container: str = ""
    failure_counted: bool = False
    # The kubelet's reason when it refused to admit the pod (see ADMISSION_REFUSALS).
    refused: str = ""

    @property
    def job_key(self) -> JobKey:
        return (self.namespace, self.job)

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_POD_PHASES

    @property
    def occupies_gpus(self) -> bool:
        """A pod holds its GPUs until it ends: terminating pods still hold them."""
        return not self.terminal and bool(self.node)


def _container_gpus(container: Mapping[str, Any], resource: str) -> int:
    # Extended resources: requests, when given, equal limits; either one alone counts.
    resources = container.get("resources") or {}
    for kind in ("limits", "requests"):
        amount = (resources.get(kind) or {}).get(resource)
        if amount is not None:
            return _int(amount)
    return 0


def _pod_gpus(spec: Mapping[str, Any], resource: str) -> int:
    """The GPUs a pod holds, as kube-scheduler counts them: its containers and sidecars
    (init containers that keep running) together, or an init container that runs alone
    beside the sidecars started before it, whichever is more."""
    sidecars = 0
    peak_init = 0
    for container in spec.get("initContainers") or ():
        if container.get("restartPolicy") == "Always":
            sidecars += _container_gpus(container, resource)
        else:
            peak_init = max(peak_init, sidecars + _container_gpus(container, resource))
    running = sidecars + sum(_container_gpus(c, resource) for c in spec.get("containers") or ())
    return max(running, peak_init)


def refusal(status: Mapping[str, Any]) -> str:
    """The kubelet's reason for refusing a Failed pod at admission, or ""."""
    if status.get("phase") != "Failed":
        return ""
    reason = str(status.get("reason") or "")
    if reason.startswith("OutOf") or reason in ADMISSION_REFUSALS:
        return reason
    return ""


def _failure_message(status: Mapping[str, Any]) -> str:
    for container in status.get("containerStatuses") or ():
        terminated = (container.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            reason = terminated.get("reason") or "Error"
            return (
                f"container {container.get('name')} exited {terminated.get('exitCode')} ({reason})"
            )
    return str(status.get("message") or status.get("reason") or "")


def _worker_owner(metadata: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The GPUJob owning a pod that is one of its workers (None for any other pod)."""
    if LABEL_INCARNATION not in (metadata.get("labels") or {}):
        return None
    return next(
        (
            ref
            for ref in metadata.get("ownerReferences") or ()
            if ref.get("kind") == "GPUJob" and ref.get("controller")
        ),
        None,
    )


def pod_record(body: Mapping[str, Any], resource: str = GPU_RESOURCE) -> PodRecord | None:
    """The record of a gpupool worker pod; None for a pod not owned by a GPUJob.
    `resource`: the extended resource of GPUs (the operator's `gpu_resource`)."""
    metadata = body.get("metadata") or {}
    owner = _worker_owner(metadata)
    if owner is None:
        return None
    labels = metadata.get("labels") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    return PodRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        job=str(owner.get("name", "")),
        job_uid=str(owner.get("uid", "")),
        index=_int(labels.get(LABEL_WORKER_INDEX)),
        incarnation=_int(labels.get(LABEL_INCARNATION)),
        node=str(spec.get("nodeName") or ""),
        gpus=_pod_gpus(spec, resource),
        phase=phase,
        deleting=bool(metadata.get("deletionTimestamp")),
        created=parse_time(metadata.get("creationTimestamp")),
        started=parse_time(status.get("startTime")),
        checkpoint=checkpoint_from_pod(body) if phase in TERMINAL_POD_PHASES else None,
        message=_failure_message(status) if phase == "Failed" else "",
        ip=str(status.get("podIP") or ""),
        first_container=str(((spec.get("containers") or [{}])[0]).get("name", "")),
        failure_counted=labels.get(LABEL_FAILURE_COUNTED) == "true",
        refused=refusal(status),
    )


@dataclass(frozen=True, slots=True)
class GPUPodRecord:
    """A pod gpupool did not create that holds GPUs on a node: only what the planner needs.

    Kept small on purpose: a cluster may run thousands of such pods beside gpupool's.
    """

    namespace: str
    name: str
    node: str
    gpus: int
    priority: int


def gpu_pod_record(body: Mapping[str, Any], resource: str = GPU_RESOURCE) -> GPUPodRecord | None:
    """The record of a bound, not yet terminal pod requesting GPUs that is not a worker
    of a GPUJob; None for any other pod (gpupool's workers have `pod_record`)."""
    spec = body.get("spec") or {}
    node = spec.get("nodeName")
    if not node:
        return None
    gpus = _pod_gpus(spec, resource)
    if gpus <= 0:
        return None
    if str((body.get("status") or {}).get("phase") or "") in TERMINAL_POD_PHASES:
        return None
    metadata = body.get("metadata") or {}
    if _worker_owner(metadata) is not None:
        return None
    return GPUPodRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        node=str(node),
        gpus=gpus,
        priority=_int(spec.get("priority")),
    )


def pod_manifest(pod: PodRecord, job_label: str) -> dict[str, Any]:
    """The parts of a pod body the checkpoint protocol reads, rebuilt from its record."""
    metadata: dict[str, Any] = {
        "name": pod.name,
        "namespace": pod.namespace,
        "uid": pod.uid,
        "labels": {LABEL_JOB: job_label, LABEL_WORKER_INDEX: str(pod.index)},
    }
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": pod.first_container}]},
        "status": {"podIP": pod.ip} if pod.ip else {},
    }


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A GPUJob: its spec (parsed), and its status as last written (raw, for diffing)."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime | None
    deleting: bool
    spec: GPUJobSpec | None
    spec_error: str
    # As stored, as compact JSON: decoded only when needed (`raw_status`,
    # `parsed_status`). With 10,000 jobs the watched status dicts, held by the index,
    # took 40 MB more than their JSON (and parsed models would take more still).
    status_json: bytes
    resource_version: str

    @property
    def key(self) -> JobKey:
        return (self.namespace, self.name)

    @property
    def raw_status(self) -> dict[str, Any]:
        """The status as stored (a new dict on every call)."""
        status: dict[str, Any] = json.loads(self.status_json)
        return status

    def parsed_status(self) -> GPUJobStatus:
        try:
            return GPUJobStatus.model_validate(self.raw_status)
        except ValidationError:
            return GPUJobStatus()

    @property
    def owner(self) -> dict[str, Any]:
        """The minimal GPUJob object the manifest builders need (name, namespace, uid)."""
        return {"metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid}}


def _spec_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"spec.{where}: {first['msg']}" if where else str(first["msg"])


def _job_spec(body: Mapping[str, Any]) -> tuple[GPUJobSpec | None, str]:
    """The parsed spec, or why the job cannot be scheduled (naming the field)."""
    undecodable = body.get(UNDECODABLE)
    if undecodable:
        return None, str(undecodable)
    try:
        spec = GPUJobSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        return None, _spec_error(error)
    problem = template_problem(spec.template)
    if problem is not None:
        return None, problem
    return spec, ""


def job_record(body: Mapping[str, Any]) -> JobRecord:
    metadata = body.get("metadata") or {}
    spec, spec_error = _job_spec(body)
    status_json = json.dumps(body.get("status") or {}, separators=(",", ":")).encode()
    return JobRecord(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        generation=_int(metadata.get("generation"), 1),
        created=parse_time(metadata.get("creationTimestamp")),
        deleting=bool(metadata.get("deletionTimestamp")),
        spec=spec,
        spec_error=spec_error,
        status_json=status_json,
        resource_version=str(metadata.get("resourceVersion", "")),
    )


@dataclass(frozen=True, slots=True)
class TeamRecord:
    name: str
    uid: str
    generation: int
    spec: TeamQuotaSpec | None
    spec_error: str
    status: TeamQuotaStatus
    raw_status: Mapping[str, Any]
    resource_version: str = ""
    created: datetime | None = None


def team_record(body: Mapping[str, Any]) -> TeamRecord:
    metadata = body.get("metadata") or {}
    spec: TeamQuotaSpec | None = None
    spec_error = str(body.get(UNDECODABLE) or "")
    try:
        if not spec_error:
            spec = TeamQuotaSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        spec_error = _spec_error(error)
    raw_status: Mapping[str, Any] = body.get("status") or {}
    try:
        status = TeamQuotaStatus.model_validate(raw_status)
    except ValidationError:
        status = TeamQuotaStatus()
    return TeamRecord(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        generation=_int(metadata.get("generation"), 1),
        spec=spec,
        spec_error=spec_error,
        status=status,
        raw_status=raw_status,
        resource_version=str(metadata.get("resourceVersion", "")),
        created=parse_time(metadata.get("creationTimestamp")),
    )


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    # status.allocatable: what the kubelet hands out. The device plugin (NVIDIA's) leaves
    # the GPUs it finds unhealthy out of it, not out of status.capacity.
    gpus: int
    ready: bool
    schedulable: bool
    rack: str
    zone: str
    nvlink_domain: str
    not_ready_reason: str = ""
    capacity_gpus: int = 0

    @property
    def withheld_gpus(self) -> int:
        """GPUs the device plugin reports unhealthy: in the capacity, not allocatable."""
        return max(0, self.capacity_gpus - self.gpus)


def node_record(body: Mapping[str, Any], resource: str = GPU_RESOURCE) -> NodeRecord:
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    status = body.get("status") or {}
    allocatable = status.get("allocatable") or {}
    capacity = status.get("capacity") or {}
    ready_condition = next(
        (c for c in status.get("conditions") or () if c.get("type") == "Ready"), None
    )
    ready = ready_condition is not None and ready_condition.get("status") == "True"
    reason = ""
    if not ready:
        reason = (
            str(ready_condition.get("reason") or ready_condition.get("status"))
            if ready_condition
            else "NoReadyCondition"
        )
    return NodeRecord(
        name=str(metadata.get("name", "")),
        gpus=_int(allocatable.get(resource)),
        ready=ready,
        schedulable=not (body.get("spec") or {}).get("unschedulable", False),
        rack=str(labels.get(LABEL_RACK, "")),
        zone=str(labels.get(LABEL_ZONE, "")),
        nvlink_domain=str(labels.get(LABEL_NVLINK, "")),
        not_ready_reason=reason,
        capacity_gpus=_int(capacity.get(GPU_RESOURCE, allocatable.get(GPU_RESOURCE))),
    )


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One GPU as its node's agent reported it."""

    index: int
    healthy: bool
    health_reason: str
    utilization_1m: float
    utilization_5m: float
    utilization_15m: float
    pod: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class ReportedCheckpoint:
    """A checkpoint a running pod reported, as its node's agent published it."""

    namespace: str
    name: str
    uid: str
    location: str
    saved_at: datetime | None


@dataclass(frozen=True, slots=True)
class GPUNodeRecord:
    node: str
    reporting: bool
    devices: tuple[DeviceRecord, ...]
    last_update: datetime | None
    checkpoints: tuple[ReportedCheckpoint, ...] = ()

    @property
    def unhealthy(self) -> tuple[DeviceRecord, ...]:
        return tuple(device for device in self.devices if not device.healthy)


def gpunode_record(body: Mapping[str, Any]) -> GPUNodeRecord:
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    try:
        status = GPUNodeStatus.model_validate(body.get("status") or {})
    except ValidationError:
        status = GPUNodeStatus()
    devices = tuple(
        DeviceRecord(
            index=gpu.index,
            healthy=gpu.healthy,
            health_reason=gpu.health_reason,
            utilization_1m=gpu.utilization_1m,
            utilization_5m=gpu.utilization_5m,
            utilization_15m=gpu.utilization_15m,
            pod=(gpu.pod.namespace, gpu.pod.name) if gpu.pod else None,
        )
        for gpu in sorted(status.gpus, key=lambda gpu: gpu.index)
    )
    return GPUNodeRecord(
        node=str(spec.get("nodeName") or metadata.get("name", "")),
        reporting=status.reporting,
        devices=devices,
        last_update=status.last_update,
        checkpoints=tuple(
            ReportedCheckpoint(
                namespace=reported.namespace,
                name=reported.name,
                uid=reported.uid,
                location=reported.location,
                saved_at=reported.saved_at,
            )
            for reported in status.checkpoints
        ),
    )
