"""Desired status, computed purely; and the merge patch from what is stored to what is desired.

GPUJob status is rendered from the job's view this cycle (pods, plan), its ledger
(durable facts) and the status currently stored (so conditions keep their
lastTransitionTime). TeamQuota status from the plan's team figures and the usage
ledger. The writer sends a patch only when the rendering differs from what is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gpupool.api import (
    Condition,
    GPUJobStatus,
    TeamQuotaSpec,
    TeamQuotaStatus,
    WorkerStatus,
    set_condition,
)
from gpupool.api.conditions import remove_condition
from gpupool.api.gpujob import EstimatedStart, Phase, Utilization
from gpupool.controller.clock import as_datetime
from gpupool.controller.preemption import CHECKPOINT_REQUESTED
from gpupool.controller.snapshot import JobView
from gpupool.controller.usage import TeamUsage
from gpupool.forecast import Estimate
from gpupool.planner import JobState, PendingJob, TeamFigures

ADMITTED = "Admitted"
RUNNING = "Running"
PREEMPTED = "Preempted"
IDLE = "Idle"
FINISHED = "Finished"

# Fields whose changes alone are not worth a write every cycle (a queue position that
# moves as others are admitted, a utilization figure): written at most every
# `minor_interval` seconds. Everything else is written at once.
MINOR_JOB_FIELDS = frozenset(
    {"queuePosition", "detail", "utilization", "conditions", "estimatedStart"}
)
MINOR_TEAM_FIELDS = frozenset(
    {"decayedUsage", "usageUpdatedAt", "gpuHoursAllocated", "gpuHoursUsed", "fairShareGPUs"}
)


@dataclass(frozen=True, slots=True)
class IdleState:
    """The job's idleness as its team's policy sees it."""

    idle: bool
    enforced: bool
    message: str


def shape(view: JobView) -> str:
    low, high = view.spec.worker_range
    gpus = view.spec.gpus_per_worker
    if low == high:
        return f"{low}×{gpus}"
    if view.workers:
        return f"{len(view.workers)}×{gpus} ({low}-{high})"
    return f"{low}-{high}×{gpus}"


def _nodes(view: JobView) -> str:
    nodes = sorted({placement.node for _, placement in view.workers})
    shown = ", ".join(nodes[:4])
    return shown + (f" and {len(nodes) - 4} more" if len(nodes) > 4 else "")


def job_phase(view: JobView) -> Phase:
    ledger = view.ledger
    if ledger.outcome is not None:
        return ledger.outcome
    if ledger.eviction is not None:
        # Preempted, or resized: an elastic job is checkpointed whole and starts again.
        return "Checkpointing"
    if view.state is JobState.RUNNING:
        workers = list(view.run.workers.values())
        up = all(pod.phase in ("Running", "Succeeded") and not pod.deleting for pod in workers)
        live = len(view.run.live)
        return "Running" if up and workers and live == len(view.workers) else "Admitted"
    return "Pending"


def render_job_status(
    view: JobView,
    stored: GPUJobStatus,
    *,
    pending: PendingJob | None,
    idle: IdleState | None,
    now: datetime,
    estimate: Estimate | None = None,
) -> GPUJobStatus:
    """The status the job should have now (pure)."""
    ledger = view.ledger
    phase = job_phase(view)
    conditions = [condition.model_copy() for condition in stored.conditions]
    generation = view.record.generation
    status = GPUJobStatus(
        phase=phase,
        team=view.team or "",
        shape=shape(view),
        admitted_at=ledger.admitted_at,
        started_at=ledger.started_at,
        finished_at=ledger.finished_at,
        last_checkpoint=ledger.last_checkpoint,
        preemptions=ledger.preemptions,
        restarts=ledger.restarts,
        failures=ledger.failures,
        observed_generation=generation,
    )

    def cond(type_: str, value: bool, reason: str, message: str) -> None:
        set_condition(
            conditions,
            type_,
            "True" if value else "False",
            reason,
            message,
            now=now,
            generation=generation,
        )

    if phase in ("Running", "Admitted", "Checkpointing"):
        status.workers = [
            WorkerStatus(
                index=pod.index, pod=pod.name, node=pod.node, gpus=pod.gpus, phase=pod.phase
            )
            for pod in view.run.live
        ]
    if phase in ("Running", "Admitted"):
        status.detail = f"on {_nodes(view)}" if view.workers else ""
        cond(ADMITTED, True, "Admitted", f"{len(view.workers)} worker(s) on {_nodes(view)}")
        if phase == "Running":
            cond(RUNNING, True, "AllWorkersRunning", f"incarnation {ledger.restarts}")
        else:
            cond(RUNNING, False, "Starting", "waiting for the workers to start")
        if ledger.requeued is not None:
            cond(PREEMPTED, False, "Resumed", f"resumed as incarnation {ledger.restarts}")
    elif phase == "Checkpointing":
        eviction = ledger.eviction
        assert eviction is not None
        target = f" for {eviction.for_job}" if eviction.for_job else ""
        status.detail = f"checkpointing{target} ({eviction.reason.value})"
        cond(RUNNING, False, "Checkpointing", status.detail)
    elif phase == "Pending":
        reason, message = _pending(view, pending)
        status.pending_reason = reason
        status.detail = message
        status.queue_position = pending.queue_position if pending is not None else None
        if estimate is not None:
            status.estimated_start = estimated_start(estimate)
        cond(ADMITTED, False, reason, message)
        if find(conditions, RUNNING) is not None:
            stopped = ledger.requeued or ("Pending", message)
            cond(RUNNING, False, stopped[0], stopped[1])
    else:
        status.detail = ledger.outcome_message
        cond(FINISHED, True, ledger.outcome_reason or phase, ledger.outcome_message)
        cond(RUNNING, False, phase, ledger.outcome_message)

    if ledger.eviction is not None:
        conditions = [c for c in conditions if c.type != CHECKPOINT_REQUESTED]
        conditions.append(ledger.eviction.to_condition())
    elif find(conditions, CHECKPOINT_REQUESTED) is not None:
        message = ledger.last_checkpoint.location if ledger.last_checkpoint else "none"
        cond(CHECKPOINT_REQUESTED, False, "Done", f"last checkpoint: {message}")
    if ledger.requeued is not None and phase == "Pending":
        cond(PREEMPTED, True, ledger.requeued[0], ledger.requeued[1])

    if idle is not None and phase == "Running":
        reason = "IdleReclaimable" if idle.enforced else "IdleReported"
        if idle.idle:
            cond(IDLE, True, reason, idle.message)
        elif find(conditions, IDLE) is not None:
            cond(IDLE, False, "Busy", idle.message)
    elif phase != "Running":
        remove_condition(conditions, IDLE)
    if view.utilization is not None and phase == "Running":
        status.utilization = Utilization(
            mean_1m=view.utilization.mean_1m,
            mean_5m=view.utilization.mean_5m,
            mean_15m=view.utilization.mean_15m,
            idle_since=ledger.idle_since,
        )
    status.conditions = sorted(conditions, key=lambda c: c.type)
    return status


def estimated_start(estimate: Estimate) -> EstimatedStart:
    """The forecast as status shows it: to the minute (finer would only churn writes)."""
    start = None if estimate.start is None else as_datetime(round(estimate.start / 60.0) * 60.0)
    return EstimatedStart(
        time=start,
        confidence=None if estimate.confidence is None else estimate.confidence.value,
        basis=estimate.basis,
    )


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def _pending(view: JobView, pending: PendingJob | None) -> tuple[str, str]:
    if view.blocker is not None:
        return view.blocker.reason, view.blocker.message
    if view.backing_off is not None:
        return view.backing_off.reason, view.backing_off.message
    if pending is not None:
        return pending.reason.value, pending.message
    return "Queued", "waiting for the next scheduling cycle"


NAMESPACE_CONFLICT = "NamespaceConflict"


def render_team_status(
    spec: TeamQuotaSpec,
    stored: TeamQuotaStatus,
    figures: TeamFigures | None,
    usage: TeamUsage,
    *,
    generation: int,
    now: datetime,
    conflict: str | None = None,
) -> TeamQuotaStatus:
    conditions = [condition.model_copy() for condition in stored.conditions]
    allocated = figures.allocated_gpus if figures else 0
    borrowed = figures.borrowed_gpus if figures else 0
    demand = figures.demand_gpus if figures else 0
    status = TeamQuotaStatus(
        allocated_gpus=allocated,
        borrowed_gpus=borrowed,
        pending_gpus=figures.pending_gpus if figures else 0,
        unmanaged_gpus=figures.unmanaged_gpus if figures else 0,
        fair_share_gpus=float(figures.entitlement_gpus) if figures else 0.0,
        running_jobs=figures.running_jobs if figures else 0,
        pending_jobs=figures.pending_jobs if figures else 0,
        decayed_usage=round(usage.decayed, 4),
        usage_updated_at=usage.updated_at,
        gpu_hours_allocated=round(usage.gpu_hours_allocated, 4),
        gpu_hours_used=round(usage.gpu_hours_used, 4),
        observed_generation=generation,
    )
    owed = min(spec.guaranteed_gpus, demand)
    set_condition(
        conditions,
        "GuaranteeMet",
        "True" if allocated >= owed else "False",
        "Met" if allocated >= owed else "Reclaiming",
        f"{allocated} of {owed} owed GPUs allocated (guarantee {spec.guaranteed_gpus}, "
        f"demand {demand})",
        now=now,
        generation=generation,
    )
    set_condition(
        conditions,
        "Borrowing",
        "True" if borrowed > 0 else "False",
        "AboveGuarantee" if borrowed > 0 else "WithinGuarantee",
        f"{borrowed} GPUs beyond the guarantee of {spec.guaranteed_gpus}",
        now=now,
        generation=generation,
    )
    if conflict is not None or any(c.type == NAMESPACE_CONFLICT for c in conditions):
        set_condition(
            conditions,
            NAMESPACE_CONFLICT,
            "True" if conflict else "False",
            "NamespaceClaimedTwice" if conflict else "NoConflict",
            conflict or "no namespace of this TeamQuota is claimed by another",
            now=now,
            generation=generation,
        )
    status.conditions = sorted(conditions, key=lambda c: c.type)
    return status


def merge_patch(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level merge patch turning `stored` into `desired` (None deletes a field)."""
    patch: dict[str, Any] = {}
    for key in set(stored) | set(desired):
        if key == "kopf":
            continue
        if stored.get(key) != desired.get(key):
            patch[key] = desired.get(key)
    return patch


def is_minor(patch: Mapping[str, Any], stored: Mapping[str, Any], minor: frozenset[str]) -> bool:
    """Whether a patch only moves figures (no phase, reason or condition status changes)."""
    if not set(patch) <= minor:
        return False
    if "conditions" in patch:
        return _condition_states(stored.get("conditions")) == _condition_states(patch["conditions"])
    return True


def _condition_states(conditions: Any) -> set[tuple[Any, Any, Any]]:
    return {(c.get("type"), c.get("status"), c.get("reason")) for c in conditions or ()}
