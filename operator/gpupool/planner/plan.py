"""The planner's output: what to start, stop, resize, and why everything else waits.

The executor applies a `Plan` through the API; the operator writes `pending` and
`teams` into GPUJob and TeamQuota status verbatim. The types are slotted but not
frozen: a cycle builds one per pending job, and frozen ones cost three times as much.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from gpupool.planner.reasons import PendingReason
from gpupool.planner.snapshot import JsonDict, WorkerPlacement


class PreemptionReason(StrEnum):
    """Why a job gives GPUs back, cheapest reclaim stage first."""

    ELASTIC_SHRINK = "ElasticShrink"
    IDLE_RECLAIM = "IdleReclaim"
    RECLAIM_BORROWED = "ReclaimBorrowed"
    PRIORITY = "Priority"
    NODE_FAILURE = "NodeFailure"
    # Not a preemption the planner decides: the operator checkpoints every worker of an
    # elastic job it grows, and starts the job again at its new size.
    ELASTIC_GROW = "ElasticGrow"


class ResizeKind(StrEnum):
    GROW = "grow"
    SHRINK = "shrink"


def _workers(workers: tuple[WorkerPlacement, ...]) -> list[JsonDict]:
    return [worker.to_dict() for worker in workers]


def _placements(data: list[JsonDict]) -> tuple[WorkerPlacement, ...]:
    return tuple(WorkerPlacement.from_dict(worker) for worker in data)


@dataclass(slots=True)
class Admission:
    """Start a pending job: one entry per worker (an elastic job may start above min)."""

    job: str
    team: str
    workers: tuple[WorkerPlacement, ...]
    message: str

    def to_dict(self) -> JsonDict:
        return {
            "job": self.job,
            "team": self.team,
            "workers": _workers(self.workers),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(data["job"], data["team"], _placements(data["workers"]), data["message"])


@dataclass(slots=True)
class Preemption:
    """Checkpoint and evict a whole job; it returns to the queue."""

    job: str
    team: str
    reason: PreemptionReason
    gpus: int
    message: str
    for_job: str | None = None
    for_team: str | None = None

    def to_dict(self) -> JsonDict:
        return {
            "job": self.job,
            "team": self.team,
            "reason": self.reason.value,
            "gpus": self.gpus,
            "message": self.message,
            "for_job": self.for_job,
            "for_team": self.for_team,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(
            job=data["job"],
            team=data["team"],
            reason=PreemptionReason(data["reason"]),
            gpus=data["gpus"],
            message=data["message"],
            for_job=data.get("for_job"),
            for_team=data.get("for_team"),
        )


@dataclass(slots=True)
class Resize:
    """Grow an elastic job by the listed new workers, or shrink it by the listed ones.

    A shrink names the exact workers (node, GPUs) to checkpoint and remove; it carries
    `reason` ElasticShrink and the job it makes room for.
    """

    job: str
    team: str
    kind: ResizeKind
    workers: tuple[WorkerPlacement, ...]
    message: str
    reason: PreemptionReason | None = None
    for_job: str | None = None
    for_team: str | None = None

    @property
    def gpus(self) -> int:
        return sum(worker.gpus for worker in self.workers)

    def to_dict(self) -> JsonDict:
        return {
            "job": self.job,
            "team": self.team,
            "kind": self.kind.value,
            "workers": _workers(self.workers),
            "message": self.message,
            "reason": None if self.reason is None else self.reason.value,
            "for_job": self.for_job,
            "for_team": self.for_team,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        reason = data.get("reason")
        return cls(
            job=data["job"],
            team=data["team"],
            kind=ResizeKind(data["kind"]),
            workers=_placements(data["workers"]),
            message=data["message"],
            reason=None if reason is None else PreemptionReason(reason),
            for_job=data.get("for_job"),
            for_team=data.get("for_team"),
        )


@dataclass(slots=True)
class PendingJob:
    """A job left waiting: why (code and message, with the numbers) and where in line."""

    job: str
    team: str
    reason: PendingReason
    message: str
    queue_position: int
    team_position: int

    def to_dict(self) -> JsonDict:
        return {
            "job": self.job,
            "team": self.team,
            "reason": self.reason.value,
            "message": self.message,
            "queue_position": self.queue_position,
            "team_position": self.team_position,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        values = dict(data)
        values["reason"] = PendingReason(values["reason"])
        return cls(**values)


@dataclass(slots=True)
class IdleJob:
    """A running job idle per its team's idleReclaim (reported in both modes)."""

    job: str
    team: str
    idle_seconds: float
    enforced: bool

    def to_dict(self) -> JsonDict:
        return {
            "job": self.job,
            "team": self.team,
            "idle_seconds": self.idle_seconds,
            "enforced": self.enforced,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(**data)


@dataclass(slots=True)
class TeamFigures:
    """Per-team numbers for TeamQuota status, as they stand once the plan is applied.

    `allocated_gpus` counts GPUs held after this plan's admissions and grows, including
    those of jobs still checkpointing and of the team's unmanaged pods; `releasing_gpus`
    is the part being given back, `unmanaged_gpus` the part gpupool does not govern.
    """

    team: str
    guaranteed_gpus: int
    entitlement_gpus: int
    demand_gpus: int
    allocated_gpus: int
    borrowed_gpus: int
    releasing_gpus: int
    pending_gpus: int
    running_jobs: int
    pending_jobs: int
    unmanaged_gpus: int = 0

    def to_dict(self) -> JsonDict:
        return {
            "team": self.team,
            "guaranteed_gpus": self.guaranteed_gpus,
            "entitlement_gpus": self.entitlement_gpus,
            "demand_gpus": self.demand_gpus,
            "allocated_gpus": self.allocated_gpus,
            "borrowed_gpus": self.borrowed_gpus,
            "releasing_gpus": self.releasing_gpus,
            "pending_gpus": self.pending_gpus,
            "running_jobs": self.running_jobs,
            "pending_jobs": self.pending_jobs,
            "unmanaged_gpus": self.unmanaged_gpus,
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        return cls(**data)


@dataclass(slots=True)
class Plan:
    """One cycle's decisions. Every list is in a deterministic order."""

    admissions: tuple[Admission, ...] = ()
    preemptions: tuple[Preemption, ...] = ()
    resizes: tuple[Resize, ...] = ()
    pending: tuple[PendingJob, ...] = ()
    teams: tuple[TeamFigures, ...] = ()
    idle: tuple[IdleJob, ...] = ()

    def pending_for(self, job: str) -> PendingJob | None:
        return next((entry for entry in self.pending if entry.job == job), None)

    def admission_for(self, job: str) -> Admission | None:
        return next((entry for entry in self.admissions if entry.job == job), None)

    def team(self, name: str) -> TeamFigures | None:
        return next((entry for entry in self.teams if entry.team == name), None)

    def to_dict(self) -> JsonDict:
        return {
            "admissions": [entry.to_dict() for entry in self.admissions],
            "preemptions": [entry.to_dict() for entry in self.preemptions],
            "resizes": [entry.to_dict() for entry in self.resizes],
            "pending": [entry.to_dict() for entry in self.pending],
            "teams": [entry.to_dict() for entry in self.teams],
            "idle": [entry.to_dict() for entry in self.idle],
        }

    @classmethod
    def from_dict(cls, data: JsonDict) -> Self:
        def items(name: str) -> list[Any]:
            return list(data.get(name, ()))

        return cls(
            admissions=tuple(Admission.from_dict(d) for d in items("admissions")),
            preemptions=tuple(Preemption.from_dict(d) for d in items("preemptions")),
            resizes=tuple(Resize.from_dict(d) for d in items("resizes")),
            pending=tuple(PendingJob.from_dict(d) for d in items("pending")),
            teams=tuple(TeamFigures.from_dict(d) for d in items("teams")),
            idle=tuple(IdleJob.from_dict(d) for d in items("idle")),
        )

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        return cls.from_dict(json.loads(text))
