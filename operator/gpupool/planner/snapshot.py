"""The planner's input: everything a scheduling decision depends on, and nothing else.

A `Snapshot` is plain data (frozen, slotted dataclasses) so the operator, the simulator
and the tests build it the same way, and `to_json`/`from_json` let any decision be
replayed offline. Times are float seconds on one clock; the planner never reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

JsonDict = dict[str, Any]


class JobState(StrEnum):
    """Where a job stands from the planner's point of view."""

    PENDING = "pending"
    RUNNING = "running"
    # Checkpoint hook in flight: the GPUs are still held but will be freed.
    PREEMPTING = "preempting"


class TopologyLevel(StrEnum):
    """A domain every worker of a job must (or should) share; spelled as in GPUJob."""

    NONE = "none"
    NODE = "node"
    RACK = "rack"
    NVLINK_DOMAIN = "nvlinkDomain"
    ZONE = "zone"


class IdleMode(StrEnum):
    ENFORCE = "enforce"
    REPORT = "report"


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """Policy knobs; the defaults are the production ones."""

    # Anti-thrash: a job is never preempted (nor shrunk) before it ran this long.
    min_runtime_seconds: float = 300.0
    # Aging: a waiting job's effective priority rises by this much per hour of waiting,
    # so a low-priority job cannot be starved forever by newer high-priority ones.
    aging_priority_per_hour: float = 10.0
    idle_reclaim_enabled: bool = True
    preemption_enabled: bool = True
    elastic_grow_enabled: bool = True
    # Bounds on one cycle's disruption and search effort: at most this many jobs may
    # trigger new preemptions per cycle; the rest wait for the next cycle.
    max_preemptors_per_cycle: int = 32

    def to_dict(self) -> JsonDict:
        return {
            "min_runtime_seconds": self.min_runtime_seconds,
            "aging_priority_per_hour": self.aging_priority_per_hour,
            "idle_reclaim_enabled": self.idle_reclaim_enabled,
            "preemption_enabled": self.preemption_enabled,
            "elastic_grow_enabled": self.elastic_grow_enabled,
            "max_preemptors_per_cycle": self.max_preemptors_per_cycle,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Node:
    """A GPU node. Only healthy GPUs on ready, schedulable nodes are capacity.

    `unmanaged_gpus` are held by pods gpupool does not govern (an inference Deployment
    placed by kube-scheduler, a notebook, a leftover pod of a finished job): never
    placed onto, never preempted, and out of the capacity until those pods end.
    """

    name: str
    gpus: int
    unhealthy_gpus: int = 0
    ready: bool = True
    schedulable: bool = True
    rack: str | None = None
    zone: str | None = None
    nvlink_domain: str | None = None
    unmanaged_gpus: int = 0

    @property
    def healthy_gpus(self) -> int:
        return max(0, self.gpus - self.unhealthy_gpus)

    @property
    def usable(self) -> bool:
        """Whether new workers may be placed here."""
        return self.ready and self.schedulable

    def domain(self, level: TopologyLevel) -> str | None:
        """This node's domain at `level` (None: the node carries no such label)."""
        if level is TopologyLevel.NODE:
            return self.name
        if level is TopologyLevel.RACK:
            return self.rack
        if level is TopologyLevel.NVLINK_DOMAIN:
            return self.nvlink_domain
        if level is TopologyLevel.ZONE:
            return self.zone
        return None

    def to_dict(self) -> JsonDict:
        return {
            "name": self.name,
            "gpus": self.gpus,
            "unhealthy_gpus": self.unhealthy_gpus,
            "unmanaged_gpus": self.unmanaged_gpus,
            "ready": self.ready,
            "schedulable": self.schedulable,
            "rack": self.rack,
            "zone": self.zone,
            "nvlink_domain": self.nvlink_domain,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class IdleReclaimPolicy:
    """A team's idleReclaim: when a job counts as idle, and whether that costs it GPUs."""

    utilization_below: float = 5.0
    for_seconds: float = 1800.0
    mode: IdleMode = IdleMode.REPORT

    def to_dict(self) -> JsonDict:
        return {
            "utilization_below": self.utilization_below,
            "for_seconds": self.for_seconds,
            "mode": self.mode.value,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(
            utilization_below=data["utilization_below"],
            for_seconds=data["for_seconds"],
            mode=IdleMode(data["mode"]),
        )


@dataclass(frozen=True, slots=True)
class Team:
    """A TeamQuota: guarantee, borrowing limit, weight, usage history, idle policy.

    `unmanaged_gpus` are held by GPU pods in the team's namespaces that gpupool does not
    govern: charged to the team (allocation, borrowing, fair share), never its victims.
    """

    name: str
    guaranteed_gpus: int = 0
    max_gpus: int | None = None
    weight: float = 1.0
    decayed_usage: float = 0.0
    idle_reclaim: IdleReclaimPolicy | None = None
    unmanaged_gpus: int = 0

    def to_dict(self) -> JsonDict:
        return {
            "name": self.name,
            "guaranteed_gpus": self.guaranteed_gpus,
            "max_gpus": self.max_gpus,
            "weight": self.weight,
            "decayed_usage": self.decayed_usage,
            "idle_reclaim": None if self.idle_reclaim is None else self.idle_reclaim.to_dict(),
            "unmanaged_gpus": self.unmanaged_gpus,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        idle = data.get("idle_reclaim")
        return cls(
            name=data["name"],
            guaranteed_gpus=data.get("guaranteed_gpus", 0),
            max_gpus=data.get("max_gpus"),
            weight=data.get("weight", 1.0),
            decayed_usage=data.get("decayed_usage", 0.0),
            idle_reclaim=None if idle is None else IdleReclaimPolicy.from_dict(idle),
            unmanaged_gpus=data.get("unmanaged_gpus", 0),
        )


@dataclass(frozen=True, slots=True)
class WorkerPlacement:
    """One worker's GPUs on one node (input: where it runs; output: where it goes)."""

    node: str
    gpus: int
    # Set by the operator when the agent attributes an unhealthy GPU to this worker.
    on_unhealthy_gpu: bool = False

    def to_dict(self) -> JsonDict:
        data: JsonDict = {"node": self.node, "gpus": self.gpus}
        if self.on_unhealthy_gpu:
            data["on_unhealthy_gpu"] = True
        return data

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class PlacementPolicy:
    """Where the workers should land (GPUJob spec.placement)."""

    topology: TopologyLevel = TopologyLevel.NONE
    required: bool = False
    preferred_nodes: tuple[str, ...] = ()

    def to_dict(self) -> JsonDict:
        return {
            "topology": self.topology.value,
            "required": self.required,
            "preferred_nodes": list(self.preferred_nodes),
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(
            topology=TopologyLevel(data.get("topology", "none")),
            required=data.get("required", False),
            preferred_nodes=tuple(data.get("preferred_nodes", ())),
        )


ANYWHERE = PlacementPolicy()


@dataclass(frozen=True, slots=True)
class Job:
    """A GPUJob as the planner sees it.

    `workers` lists every worker holding GPUs (running, or being torn down); `releasing`
    is the subset an elastic shrink already removes (checkpoint in flight). A job in
    state PREEMPTING is torn down as a whole. `preempted_for` names the pending job
    those GPUs were freed for, so that job waits for them instead of preempting more.
    """

    key: str
    team: str
    gpus_per_worker: int
    min_workers: int = 1
    max_workers: int = 1
    priority: int = 0
    preemptible: bool = True
    submitted_at: float = 0.0
    state: JobState = JobState.PENDING
    workers: tuple[WorkerPlacement, ...] = ()
    releasing: tuple[WorkerPlacement, ...] = ()
    preempted_for: str | None = None
    started_at: float | None = None
    last_checkpoint_at: float | None = None
    checkpoint_hook: bool = False
    checkpoint_timeout_seconds: float = 120.0
    placement: PlacementPolicy = field(default=ANYWHERE)
    idle_since: float | None = None
    utilization: float | None = None

    @property
    def elastic(self) -> bool:
        return self.max_workers > self.min_workers

    @property
    def min_gpus(self) -> int:
        return self.min_workers * self.gpus_per_worker

    @property
    def held_gpus(self) -> int:
        return sum(worker.gpus for worker in self.workers)

    def to_dict(self) -> JsonDict:
        return {
            "key": self.key,
            "team": self.team,
            "gpus_per_worker": self.gpus_per_worker,
            "min_workers": self.min_workers,
            "max_workers": self.max_workers,
            "priority": self.priority,
            "preemptible": self.preemptible,
            "submitted_at": self.submitted_at,
            "state": self.state.value,
            "workers": [worker.to_dict() for worker in self.workers],
            "releasing": [worker.to_dict() for worker in self.releasing],
            "preempted_for": self.preempted_for,
            "started_at": self.started_at,
            "last_checkpoint_at": self.last_checkpoint_at,
            "checkpoint_hook": self.checkpoint_hook,
            "checkpoint_timeout_seconds": self.checkpoint_timeout_seconds,
            "placement": self.placement.to_dict(),
            "idle_since": self.idle_since,
            "utilization": self.utilization,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        values = dict(data)
        values["state"] = JobState(values.get("state", "pending"))
        values["workers"] = tuple(WorkerPlacement.from_dict(w) for w in values.get("workers", ()))
        values["releasing"] = tuple(
            WorkerPlacement.from_dict(w) for w in values.get("releasing", ())
        )
        values["placement"] = PlacementPolicy.from_dict(values.get("placement") or {})
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole input of one planning cycle."""

    nodes: tuple[Node, ...] = ()
    teams: tuple[Team, ...] = ()
    jobs: tuple[Job, ...] = ()
    config: PlannerConfig = field(default_factory=PlannerConfig)

    def to_dict(self) -> JsonDict:
        return {
            "config": self.config.to_dict(),
            "nodes": [node.to_dict() for node in self.nodes],
            "teams": [team.to_dict() for team in self.teams],
            "jobs": [job.to_dict() for job in self.jobs],
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(
            config=PlannerConfig.from_dict(data.get("config") or {}),
            nodes=tuple(Node.from_dict(node) for node in data.get("nodes", ())),
            teams=tuple(Team.from_dict(team) for team in data.get("teams", ())),
            jobs=tuple(Job.from_dict(job) for job in data.get("jobs", ())),
        )

    def to_json(self, *, now: float | None = None, indent: int | None = None) -> str:
        """JSON text; with `now`, a complete record of one decision (see `replay`)."""
        data = self.to_dict()
        if now is not None:
            data["now"] = now
        return json.dumps(data, indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        data = json.loads(text)
        data.pop("now", None)
        return cls.from_dict(data)
