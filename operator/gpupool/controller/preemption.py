"""The record of a preemption in flight, persisted in GPUJob status before the hook runs.

It lives in the `CheckpointRequested` condition (status True while the preemption is in
flight): `reason` is the planner's PreemptionReason, `lastTransitionTime` when it was
requested, and the message says for whom, until when and which workers — in a fixed
format that `EvictionRecord.from_condition` reads back, so an operator that restarts
mid-preemption finishes it instead of forgetting it (DESIGN: "Preemption with
checkpoint"). It is written before the hook runs and cleared in the same status patch
that requeues the job and increments `preemptions`, which makes the count exact across
restarts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from gpupool.api import Condition
from gpupool.planner import PreemptionReason

CHECKPOINT_REQUESTED = "CheckpointRequested"

_TAIL = re.compile(
    r"Deadline (?P<deadline>\S+)\. Workers: (?P<workers>all|none|\d+(?:,\d+)*)\. "
    r"Incarnation (?P<incarnation>\d+)\.$"
)
_HEAD = re.compile(r"^For (?P<for_job>\S+) \(team (?P<for_team>[^)]*)\): ")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EvictionRecord:
    """A job (or some of its workers) being checkpointed and evicted."""

    reason: PreemptionReason
    requested_at: datetime
    deadline: datetime
    incarnation: int
    # Worker indices an elastic resize removes (none for a grow): every worker is
    # checkpointed and the job starts again at its new size. None: the whole job goes.
    workers: tuple[int, ...] | None = None
    for_job: str | None = None
    for_team: str | None = None
    message: str = ""

    @property
    def whole_job(self) -> bool:
        return self.workers is None

    @classmethod
    def start(
        cls,
        reason: PreemptionReason,
        *,
        now: datetime,
        timeout_seconds: float,
        incarnation: int,
        workers: tuple[int, ...] | None = None,
        for_job: str | None = None,
        for_team: str | None = None,
        message: str = "",
    ) -> EvictionRecord:
        now = now.replace(microsecond=0)
        return cls(
            reason=reason,
            requested_at=now,
            deadline=now + timedelta(seconds=timeout_seconds),
            incarnation=incarnation,
            workers=workers,
            for_job=for_job,
            for_team=for_team,
            message=message,
        )

    def restamped(self, now: datetime) -> EvictionRecord:
        """The same request starting `now`: the hook's time counts from when it can run,
        not from when the plan decided it."""
        now = now.replace(microsecond=0)
        return replace(self, requested_at=now, deadline=now + (self.deadline - self.requested_at))

    def condition_message(self) -> str:
        head = f"For {self.for_job} (team {self.for_team or '-'}): " if self.for_job else ""
        workers = (
            "all" if self.workers is None else ",".join(str(i) for i in self.workers) or "none"
        )
        summary = " ".join(self.message.split()) or f"{self.reason.value} preemption."
        if not summary.endswith("."):
            summary += "."
        return (
            f"{head}{summary} Deadline {_iso(self.deadline)}. Workers: {workers}. "
            f"Incarnation {self.incarnation}."
        )

    def to_condition(self) -> Condition:
        return Condition(
            type=CHECKPOINT_REQUESTED,
            status="True",
            reason=self.reason.value,
            message=self.condition_message(),
            last_transition_time=self.requested_at,
        )

    @classmethod
    def from_condition(cls, condition: Condition) -> EvictionRecord | None:
        """The record a previous operator persisted; None if there is none in flight."""
        if condition.type != CHECKPOINT_REQUESTED or condition.status != "True":
            return None
        tail = _TAIL.search(condition.message)
        try:
            reason = PreemptionReason(condition.reason)
        except ValueError:
            return None
        if tail is None or condition.last_transition_time is None:
            return None
        try:
            deadline = datetime.fromisoformat(tail["deadline"].replace("Z", "+00:00"))
        except ValueError:
            return None
        head = _HEAD.match(condition.message)
        body = condition.message[head.end() if head else 0 : tail.start()].strip()
        workers = tail["workers"]
        for_team = head["for_team"] if head else None
        return cls(
            reason=reason,
            requested_at=condition.last_transition_time,
            deadline=deadline,
            incarnation=int(tail["incarnation"]),
            workers=None
            if workers == "all"
            else ()
            if workers == "none"
            else tuple(int(i) for i in workers.split(",")),
            for_job=head["for_job"] if head else None,
            for_team=None if for_team in (None, "-") else for_team,
            message=body,
        )
