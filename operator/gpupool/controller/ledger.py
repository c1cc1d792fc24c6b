"""A job's durable facts: what must survive an operator restart, mirrored into its status.

The ledger is seeded from the GPUJob's status the first time the operator sees the job
(so a restart continues the counts, the last checkpoint, the idle clock, the outcome and
any preemption in flight) and from its pods (the latest incarnation they carry, in case
the operator died between creating pods and writing status). After that, this process
is the only writer: the executor updates the ledger, the status writer renders it.
Ledgers are keyed by the job's uid, so a job deleted and created again starts afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from gpupool.api import CheckpointRecord
from gpupool.api.conditions import find_condition
from gpupool.controller.preemption import CHECKPOINT_REQUESTED, EvictionRecord
from gpupool.controller.records import JobRecord, PodRecord
from gpupool.planner import PreemptionReason

Outcome = Literal["Succeeded", "Failed"]


@dataclass
class JobLedger:
    uid: str
    # Latest incarnation admitted (0 for the first run); None: never admitted.
    incarnation: int | None = None
    preemptions: int = 0
    failures: int = 0
    last_checkpoint: CheckpointRecord | None = None
    admitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: Outcome | None = None
    outcome_reason: str = ""
    outcome_message: str = ""
    eviction: EvictionRecord | None = None
    # Whether `eviction` is in the stored status (a restarted operator's always is).
    eviction_persisted: bool = False
    # Why the last incarnation ended, for the requeued job's status (reason, message).
    requeued: tuple[str, str] | None = None
    # When a job taken back for sitting idle rejoined the queue: it waits behind the jobs
    # submitted before then, so it cannot bounce straight back onto GPUs it leaves idle.
    queued_since: datetime | None = None
    idle_since: datetime | None = None
    # What the last checkpoint hook achieved, for the requeued job's status and Event.
    hook_result: str = ""
    # The incarnation whose end (a worker failure, counted, or a placement conflict) was
    # already handled (memory only: a failed pod stays in the index until its deletion
    # is observed).
    counted_failure: int | None = None
    # Events already posted for standing situations (blocked, idle), so each is posted
    # once per occurrence rather than every cycle (memory only).
    notified: set[str] = field(default_factory=set)

    @property
    def restarts(self) -> int:
        return self.incarnation or 0

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def next_incarnation(self) -> int:
        return 0 if self.incarnation is None else self.incarnation + 1

    def observe_pods(self, pods: Iterable[PodRecord]) -> None:
        """Pods carry their incarnation: never reuse one a pod already has."""
        for pod in pods:
            if self.incarnation is None or pod.incarnation > self.incarnation:
                self.incarnation = pod.incarnation


def seed(job: JobRecord) -> JobLedger:
    """The ledger a previous operator left behind, read back from the job's status."""
    status = job.parsed_status()
    ledger = JobLedger(uid=job.uid)
    if status.admitted_at is not None or status.restarts:
        ledger.incarnation = status.restarts
    ledger.preemptions = status.preemptions
    ledger.failures = status.failures
    ledger.last_checkpoint = status.last_checkpoint
    ledger.admitted_at = status.admitted_at
    ledger.started_at = status.started_at
    ledger.finished_at = status.finished_at
    if status.phase in ("Succeeded", "Failed"):
        ledger.outcome = status.phase
        finished = find_condition(status.conditions, "Finished")
        if finished is not None:
            ledger.outcome_reason = finished.reason
            ledger.outcome_message = finished.message
    requested = find_condition(status.conditions, CHECKPOINT_REQUESTED)
    if requested is not None:
        ledger.eviction = EvictionRecord.from_condition(requested)
        ledger.eviction_persisted = ledger.eviction is not None
    preempted = find_condition(status.conditions, "Preempted")
    if preempted is not None and preempted.status == "True":
        ledger.requeued = (preempted.reason, preempted.message)
        if preempted.reason == PreemptionReason.IDLE_RECLAIM.value:
            ledger.queued_since = preempted.last_transition_time
    if status.utilization is not None:
        ledger.idle_since = status.utilization.idle_since
    return ledger


class Ledgers:
    """Every job's ledger, by uid."""

    def __init__(self) -> None:
        self._by_uid: dict[str, JobLedger] = {}

    def get(self, job: JobRecord) -> JobLedger:
        ledger = self._by_uid.get(job.uid)
        if ledger is None:
            ledger = self._by_uid[job.uid] = seed(job)
        return ledger

    def peek(self, uid: str) -> JobLedger | None:
        return self._by_uid.get(uid)

    def retain(self, uids: set[str]) -> None:
        """Drop the ledgers of deleted jobs."""
        for uid in [uid for uid in self._by_uid if uid not in uids]:
            del self._by_uid[uid]

    def __len__(self) -> int:
        return len(self._by_uid)
