"""Why a job is still pending: a stable code for machines, a message with numbers for people.

The codes are GPUJob `status.pendingReason` and the reason of its `Admitted=False`
condition; the messages are shown to users verbatim, so they name the team, the
shape and the figures that block the job.
"""

from __future__ import annotations

from enum import StrEnum


class PendingReason(StrEnum):
    # No TeamQuota owns the job: it cannot be scheduled at all.
    NO_TEAM = "NoTeamQuota"
    # Even an empty cluster of the current healthy nodes could not hold the job.
    UNSCHEDULABLE = "Unschedulable"
    # Admitting the job would take its team past maxGPUs.
    TEAM_AT_LIMIT = "TeamAtBorrowingLimit"
    # Not enough free GPUs, and nothing may be reclaimed for it.
    INSUFFICIENT_GPUS = "InsufficientGPUs"
    # Enough GPUs in total, but not in one domain as the job requires.
    TOPOLOGY_UNAVAILABLE = "TopologyUnavailable"
    # Jobs were (or are being) preempted for it; it starts once they checkpointed.
    WAITING_FOR_PREEMPTION = "WaitingForPreemption"
    # It could fit only by preempting jobs that have not yet run their minimum runtime.
    WAITING_FOR_MIN_RUNTIME = "WaitingForMinRuntime"
    # Jobs ahead of it in its team are waiting too; it may not preempt past them.
    QUEUED_BEHIND = "QueuedBehind"
    # This cycle's preemption budget is spent; it is considered again next cycle.
    PREEMPTION_DEFERRED = "PreemptionDeferred"
