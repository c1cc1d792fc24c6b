"""`gpupool explain`: why a job waits or was preempted, and what would let it run (pure).

It puts side by side what the operator last wrote (status, conditions, Events) and what
the planner decides now on a fresh offline snapshot, so a stale status shows as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gpupool.api import GPUJobStatus
from gpupool.k8s.listing import event_time
from gpupool.planner import JobState, PendingReason, Plan
from gpupool.views.estimate import estimated_start
from gpupool.views.plan_tables import placements

if TYPE_CHECKING:
    # Types only: importing the operator's modules registers its kopf handlers, which
    # `gpupool status` and friends have no use for.
    from gpupool.controller.records import JobRecord
    from gpupool.controller.snapshot import JobView

EVENTS_SHOWN = 20

# What would let a job waiting for this reason run (blockers included).
HINTS: dict[str, str] = {
    "NoTeamQuota": "add the job's namespace to a TeamQuota's spec.namespaces, or set spec.team "
    "to a team that lists it",
    "NamespaceNotInTeam": "submit it from one of the team's namespaces, or add this namespace "
    "to the TeamQuota",
    "UnknownPriorityClass": "use a priorityClassName the team's TeamQuota defines, or a plain "
    "spec.priority",
    PendingReason.UNSCHEDULABLE: "no set of healthy, schedulable nodes can hold it: use fewer "
    "workers or GPUs per worker, relax spec.placement, or repair/add nodes",
    PendingReason.TEAM_AT_LIMIT: "wait for the team's running jobs to end or checkpoint, or "
    "raise the TeamQuota's maxGPUs",
    PendingReason.INSUFFICIENT_GPUS: "wait for running jobs to end; GPUs are reclaimed for it "
    "only from teams above their fair share, idle jobs or lower priorities of its own team: "
    "raise the team's guaranteedGPUs or the job's priority",
    PendingReason.TOPOLOGY_UNAVAILABLE: "enough GPUs exist but not in one domain: set "
    "spec.placement.required to false or a wider topology, or wait for a domain to free up",
    PendingReason.WAITING_FOR_PREEMPTION: "nothing: jobs are checkpointing to make room; it "
    "starts once they released their GPUs",
    PendingReason.WAITING_FOR_MIN_RUNTIME: "nothing: the jobs it may preempt become "
    "preemptible once they ran the minimum runtime",
    PendingReason.QUEUED_BEHIND: "jobs ahead of it in its team go first: wait, or raise its "
    "priority",
    PendingReason.PREEMPTION_DEFERRED: "nothing: the cycle's preemption budget was spent; it is "
    "considered again on the next cycle",
}


@dataclass(frozen=True)
class Explanation:
    record: JobRecord
    # None: the operator would not plan it (finished, invalid spec).
    view: JobView | None
    plan: Plan
    events: list[dict[str, Any]]
    now: datetime
    events_error: str = ""

    @property
    def status(self) -> GPUJobStatus:
        return self.record.parsed_status()


@dataclass(frozen=True)
class Verdict:
    """What the fresh plan says, and what would change it."""

    headline: str
    reason: str = ""
    hint: str = ""


def verdict(explanation: Explanation) -> Verdict:
    record, view, plan = explanation.record, explanation.view, explanation.plan
    job = f"{record.namespace}/{record.name}"
    status = explanation.status
    if record.spec is None:
        return Verdict(f"invalid spec: {record.spec_error}", "InvalidSpec", "fix the spec")
    if status.phase in ("Succeeded", "Failed"):
        return Verdict(f"finished: {status.phase} ({status.detail})", status.phase)
    if view is None:
        return Verdict("the operator does not plan it (being deleted)")
    if view.blocker is not None:
        blocker = view.blocker
        return Verdict(
            f"cannot be scheduled: {blocker.message}", blocker.reason, HINTS.get(blocker.reason, "")
        )
    if view.backing_off is not None:
        back_off = view.backing_off
        return Verdict(
            f"backing off: {back_off.message}",
            back_off.reason,
            "nothing: it is retried when the back-off ends",
        )
    admission = plan.admission_for(job)
    if admission is not None:
        return Verdict(
            f"would be admitted now on {placements(admission.workers)}: {admission.message}",
            "Admissible",
            "nothing: the operator admits it on its next cycle",
        )
    pending = plan.pending_for(job)
    if pending is not None:
        return Verdict(
            f"pending (queue position {pending.queue_position}, {pending.team_position} in "
            f"team {pending.team}): {pending.message}",
            pending.reason.value,
            HINTS.get(pending.reason, ""),
        )
    preemption = next((p for p in plan.preemptions if p.job == job), None)
    if preemption is not None:
        return Verdict(
            f"would be preempted ({preemption.reason.value}) for {preemption.for_job}: "
            f"{preemption.message}",
            preemption.reason.value,
        )
    if view.state is JobState.PREEMPTING:
        return Verdict("being preempted: its checkpoint hook runs, then it is requeued")
    workers = tuple(placement for _, placement in view.workers)
    return Verdict(f"running on {placements(workers)}", "Running")


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = max(int((now - when).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _summary(explanation: Explanation) -> Table:
    record, status = explanation.record, explanation.status
    spec = record.spec
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("Job", f"{record.namespace}/{record.name}")
    view = explanation.view
    grid.add_row("Team", status.team or (view.team if view and view.team else None) or "-")
    grid.add_row("Phase", status.phase)
    if spec is not None:
        low, high = spec.worker_range
        workers = str(low) if low == high else f"{low}-{high}"
        hook = spec.checkpoint
        grid.add_row("Shape", status.shape or f"{workers}×{spec.gpus_per_worker}")
        grid.add_row(
            "Priority", f"{spec.priority}" + ("" if spec.preemptible else " (not preemptible)")
        )
        grid.add_row(
            "Checkpoint hook",
            f"{hook.mode}, timeout {hook.timeout_seconds}s" if hook else "none",
        )
    grid.add_row("Submitted", _age(record.created, explanation.now))
    if status.detail:
        grid.add_row("Status says", status.detail)
    if status.queue_position is not None:
        grid.add_row("Queue position", str(status.queue_position))
    if status.phase == "Pending" and status.estimated_start is not None:
        grid.add_row("Estimated start", estimated_start(status, explanation.now, basis=True))
    return grid


def _verdict(explanation: Explanation) -> Table:
    found = verdict(explanation)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("Planner now", Text(found.headline, style="cyan"))
    if found.reason:
        grid.add_row("Reason", found.reason)
    if found.hint:
        grid.add_row("What would let it run", found.hint)
    return grid


def _history(explanation: Explanation) -> Table:
    status = explanation.status
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    checkpoint = status.last_checkpoint
    grid.add_row(
        "Last checkpoint",
        "none"
        if checkpoint is None
        else f"{checkpoint.location} ({checkpoint.source}, "
        f"{_age(checkpoint.time, explanation.now)})",
    )
    grid.add_row(
        "Preemptions",
        f"{status.preemptions} (restarts {status.restarts}, failures {status.failures})",
    )
    return grid


def _conditions(status: GPUJobStatus, now: datetime) -> Table:
    table = Table(title="Conditions", title_justify="left")
    for column in ("Type", "Status", "Reason", "Since", "Message"):
        table.add_column(column, overflow="fold")
    for condition in status.conditions:
        table.add_row(
            condition.type,
            condition.status,
            condition.reason,
            _age(condition.last_transition_time, now),
            condition.message,
        )
    return table


def _events(events: list[dict[str, Any]]) -> Table:
    shown = events[-EVENTS_SHOWN:]
    title = "Events" + (
        f" (last {len(shown)} of {len(events)})" if len(events) > len(shown) else ""
    )
    table = Table(title=title, title_justify="left")
    for column in ("Time", "Type", "Reason", "Note"):
        table.add_column(column, overflow="fold")
    for event in shown:
        table.add_row(
            event_time(event)[:19].replace("T", " "),
            str(event.get("type", "")),
            str(event.get("reason", "")),
            str(event.get("note", "")),
        )
    return table


def explain_job(explanation: Explanation) -> Group:
    parts: list[RenderableType] = [
        _summary(explanation),
        Text(""),
        _verdict(explanation),
        Text(""),
        _history(explanation),
    ]
    if explanation.status.conditions:
        parts.append(_conditions(explanation.status, explanation.now))
    if explanation.events:
        parts.append(_events(explanation.events))
    else:
        parts.append(Text(explanation.events_error or "No Events.", style="dim"))
    return Group(*parts)


def explanation_record(explanation: Explanation) -> dict[str, Any]:
    """`explain -o json|yaml`: the verdict, what the operator last wrote, the Events."""
    record, found = explanation.record, verdict(explanation)
    return {
        "namespace": record.namespace,
        "name": record.name,
        "planner": {"verdict": found.headline, "reason": found.reason, "hint": found.hint},
        "status": explanation.status.to_k8s(),
        "events": [
            {
                "time": event_time(event),
                "type": event.get("type", ""),
                "reason": event.get("reason", ""),
                "note": event.get("note", ""),
            }
            for event in explanation.events
        ],
        "eventsError": explanation.events_error or None,
    }
