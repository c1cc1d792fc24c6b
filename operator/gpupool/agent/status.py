"""The GPUNode status as the agent builds and sends it: plain dataclasses.

The CRD's single source of truth is the pydantic models in gpupool.api.gpunode.
The agent does not load them: pydantic and the models cost about 10 MB of the
agent's 60 MB budget on every node, for objects it only ever writes. These
dataclasses carry the same fields in the same order, and `to_k8s()` gives exactly
what the models' `to_k8s()` gives (camelCase keys, no unset optionals, floats as
floats, RFC 3339 times with "Z"); tests/unit/agent/test_wire.py checks that every
body the agent sends validates with `GPUNodeStatus` and is unchanged by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

JSON = dict[str, Any]
ConditionStatus = Literal["True", "False", "Unknown"]
_STATUSES = ("True", "False", "Unknown")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _timestamp(value: datetime) -> str:
    """As pydantic writes a datetime in JSON mode: ISO 8601, UTC spelled "Z"."""
    text = value.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


@dataclass(frozen=True)
class PodRef:
    """The pod (and container) using a GPU."""

    namespace: str
    name: str
    container: str = ""
    uid: str = ""

    def to_k8s(self) -> JSON:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "container": self.container,
            "uid": self.uid,
        }


@dataclass(frozen=True)
class GPUDevice:
    """One GPU as the agent last saw it."""

    index: int
    uuid: str = ""
    product: str = ""
    healthy: bool = True
    health_reason: str = ""
    utilization: float = 0.0
    utilization_1m: float = 0.0
    utilization_5m: float = 0.0
    utilization_15m: float = 0.0
    idle_seconds: float = 0.0
    memory_used_mib: int = 0
    memory_total_mib: int = 0
    temperature_c: float | None = None
    power_w: float | None = None
    ecc_errors: int = 0
    pod: PodRef | None = None

    def to_k8s(self) -> JSON:
        body: JSON = {
            "index": self.index,
            "uuid": self.uuid,
            "product": self.product,
            "healthy": self.healthy,
            "healthReason": self.health_reason,
            "utilization": float(self.utilization),
            "utilization1m": float(self.utilization_1m),
            "utilization5m": float(self.utilization_5m),
            "utilization15m": float(self.utilization_15m),
            "idleSeconds": float(self.idle_seconds),
            "memoryUsedMiB": self.memory_used_mib,
            "memoryTotalMiB": self.memory_total_mib,
        }
        if self.temperature_c is not None:
            body["temperatureC"] = float(self.temperature_c)
        if self.power_w is not None:
            body["powerW"] = float(self.power_w)
        body["eccErrors"] = self.ecc_errors
        if self.pod is not None:
            body["pod"] = self.pod.to_k8s()
        return body


@dataclass(frozen=True)
class PodCheckpoint:
    """The latest checkpoint a running pod on the node reported (its log)."""

    namespace: str
    name: str
    uid: str = ""
    location: str = ""
    saved_at: datetime | None = None

    def to_k8s(self) -> JSON:
        body: JSON = {
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "location": self.location,
        }
        if self.saved_at is not None:
            body["savedAt"] = _timestamp(self.saved_at)
        return body


@dataclass(frozen=True)
class NodeTopology:
    """Topology labels of the node (from its Node labels)."""

    rack: str = ""
    zone: str = ""
    nvlink_domain: str = ""

    def to_k8s(self) -> JSON:
        return {"rack": self.rack, "zone": self.zone, "nvlinkDomain": self.nvlink_domain}


@dataclass
class Condition:
    """One observation of the node's state (the metav1.Condition shape)."""

    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None

    @classmethod
    def from_k8s(cls, raw: Mapping[str, Any]) -> Condition:
        """A condition as stored (one another writer may have set); unknown keys ignored."""
        status = raw["status"]
        if status not in _STATUSES:
            raise ValueError(f"condition {raw['type']!r}: status {status!r} is not {_STATUSES}")
        stamp = raw.get("lastTransitionTime")
        return cls(
            type=str(raw["type"]),
            status=status,
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
            last_transition_time=None if stamp is None else datetime.fromisoformat(stamp),
            observed_generation=raw.get("observedGeneration"),
        )

    def to_k8s(self) -> JSON:
        body: JSON = {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }
        if self.last_transition_time is not None:
            body["lastTransitionTime"] = _timestamp(self.last_transition_time)
        if self.observed_generation is not None:
            body["observedGeneration"] = self.observed_generation
        return body


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
) -> None:
    """Set a condition in place; lastTransitionTime moves only when the status flips
    (as gpupool.api.conditions.set_condition and apimachinery do)."""
    current = next((c for c in conditions if c.type == type_), None)
    if current is None:
        conditions.append(Condition(type_, status, reason, message, last_transition_time=now))
        return
    if current.status != status:
        current.status = status
        current.last_transition_time = now
    current.reason = reason
    current.message = message


@dataclass(frozen=True)
class GPUNodeStatus:
    """Per-GPU utilization, memory and health, and node-level summaries."""

    gpu_count: int = 0
    healthy_gpus: int = 0
    allocated_gpus: int = 0
    mean_utilization: float = 0.0
    reporting: bool = False
    message: str = ""
    backend: str = ""
    driver_version: str = ""
    topology: NodeTopology | None = None
    gpus: list[GPUDevice] = field(default_factory=list)
    checkpoints: list[PodCheckpoint] = field(default_factory=list)
    last_update: datetime | None = None
    conditions: list[Condition] = field(default_factory=list)

    def to_k8s(self) -> JSON:
        """The status as the GPUNode stores it (what the publisher sends)."""
        body: JSON = {
            "gpuCount": self.gpu_count,
            "healthyGPUs": self.healthy_gpus,
            "allocatedGPUs": self.allocated_gpus,
            "meanUtilization": float(self.mean_utilization),
            "reporting": self.reporting,
            "message": self.message,
            "backend": self.backend,
            "driverVersion": self.driver_version,
        }
        if self.topology is not None:
            body["topology"] = self.topology.to_k8s()
        body["gpus"] = [gpu.to_k8s() for gpu in self.gpus]
        body["checkpoints"] = [checkpoint.to_k8s() for checkpoint in self.checkpoints]
        if self.last_update is not None:
            body["lastUpdate"] = _timestamp(self.last_update)
        body["conditions"] = [condition.to_k8s() for condition in self.conditions]
        return body
