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


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def gpus(count: int) -> str:
    return f"{count} GPU{_s(count)}"


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 45 s, 300 s, 12 min, 3.5 h."""
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def team_at_limit(team: str, limit: int, holds: int, needs: int, checkpointing: int = 0) -> str:
    releasing = f" ({checkpointing} of them checkpointing before release)" if checkpointing else ""
    return (
        f"team {team} at its borrowing limit (maxGPUs {limit}): "
        f"holds {holds}{releasing}, this job needs {needs} more"
    )


def unschedulable(shape: str, why: str) -> str:
    return f"needs {shape}; {why}"


def no_room(
    shape: str, free: int, largest_block: int, where: str | None, most_in_domain: int
) -> str:
    text = f"needs {shape}; {gpus(free)} free, largest free block {gpus(largest_block)}"
    if where is not None:
        text += f", most free in one {where} {gpus(most_in_domain)}"
    return text


def not_reclaimable(team: str, holds: int, entitlement: int) -> str:
    if holds >= entitlement:
        return (
            f"team {team} holds {holds} GPUs, at or above its fair share {entitlement}, "
            "so it only uses idle GPUs and lower-priority jobs of its own"
        )
    return "no job it may preempt would make it fit"


def young_blockers(count: int, held: int, min_runtime: float, soonest: float) -> str:
    return (
        f"{count} job{_s(count)} holding {gpus(held)} it could preempt ran less than the "
        f"minimum runtime ({duration(min_runtime)}); the first may be preempted in "
        f"{duration(soonest)}"
    )


def waiting_for_victims(shape: str, jobs: int, freed: int) -> str:
    return (
        f"needs {shape}; waiting for {jobs} preempted job{_s(jobs)} to checkpoint "
        f"and release {gpus(freed)}"
    )


def queued_behind(team: str, ahead: int, first: str, shape: str, free: int) -> str:
    # Most of a long queue gets this message each cycle: the plurals are inlined.
    return (
        f"queued behind {ahead} waiting job{'' if ahead == 1 else 's'} of team {team} "
        f"(first: {first}); needs {shape}, {free} GPU{'' if free == 1 else 's'} free"
    )


def preemption_deferred(budget: int, shape: str, free: int) -> str:
    return (
        f"needs {shape}, {gpus(free)} free; this cycle already preempts for "
        f"{budget} jobs (the limit), so it is considered again next cycle"
    )


def loss(lost_gpu_seconds: float, hook: bool, timeout: float) -> str:
    if hook:
        return f"checkpoint hook saves its work (up to {duration(timeout)})"
    return f"loses ~{lost_gpu_seconds / 3600:.1f} GPU-hours since its last checkpoint"


def shrink(removed: int, taken: int, for_job: str, for_team: str, lost: str) -> str:
    return (
        f"shrink by {removed} worker{_s(removed)} ({gpus(taken)}) "
        f"to make room for {for_job} (team {for_team}); {lost}"
    )


def idle_reclaim(
    idle_seconds: float, below: float, taken: int, for_job: str, for_team: str, lost: str
) -> str:
    return (
        f"idle for {duration(idle_seconds)} (GPU utilization below {below:g}%, "
        f"idleReclaim enforce): {gpus(taken)} go to {for_job} (team {for_team}); {lost}"
    )


def reclaim_borrowed(
    team: str,
    holds: int,
    entitlement: int,
    taken: int,
    for_job: str,
    for_team: str,
    their_holds: int,
    their_entitlement: int,
    lost: str,
) -> str:
    return (
        f"team {team} holds {holds} GPUs, above its fair share {entitlement}: "
        f"{gpus(taken)} reclaimed for {for_job} of team {for_team} "
        f"(holds {their_holds}, fair share {their_entitlement}); {lost}"
    )


def outranked(for_job: str, priority: int, own: int, team: str, lost: str) -> str:
    return f"{for_job} (priority {priority}) outranks it (priority {own}) in team {team}; {lost}"


def node_failure(node: str, why: str) -> str:
    return f"worker on node {node}: {why}; requeued to run elsewhere"


def admitted(shape: str, nodes: list[str]) -> str:
    shown = ", ".join(nodes[:4]) + (f" and {len(nodes) - 4} more" if len(nodes) > 4 else "")
    return f"placed {shape} on {shown}"


def grown(added: int, nodes: list[str]) -> str:
    return f"grows by {added} worker{_s(added)} into free GPUs on {', '.join(nodes)}"
