"""Pure renderer of a `Plan`: what the planner would do, as rich tables (`gpupool replay`)."""

from __future__ import annotations

from collections import Counter

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gpupool.planner import Plan, WorkerPlacement


def placements(workers: tuple[WorkerPlacement, ...]) -> str:
    """Workers per node: `node-1 2×8, node-2 1×8`."""
    counts = Counter((worker.node, worker.gpus) for worker in workers)
    return ", ".join(f"{node} {count}×{gpus}" for (node, gpus), count in sorted(counts.items()))


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def plan_tables(plan: Plan) -> Group:
    parts: list[RenderableType] = []
    if plan.admissions:
        table = _table("Admissions", "Job", "Team", "Workers", "Why")
        for admission in plan.admissions:
            table.add_row(
                admission.job, admission.team, placements(admission.workers), admission.message
            )
        parts.append(table)
    if plan.preemptions:
        table = _table("Preemptions", "Job", "Team", "Reason", "GPUs", "For", "Why")
        for preemption in plan.preemptions:
            table.add_row(
                preemption.job,
                preemption.team,
                preemption.reason.value,
                str(preemption.gpus),
                preemption.for_job or "-",
                preemption.message,
            )
        parts.append(table)
    if plan.resizes:
        table = _table("Resizes", "Job", "Team", "Kind", "Workers", "Reason", "Why")
        for resize in plan.resizes:
            table.add_row(
                resize.job,
                resize.team,
                resize.kind.value,
                placements(resize.workers),
                resize.reason.value if resize.reason else "-",
                resize.message,
            )
        parts.append(table)
    if plan.pending:
        table = _table("Pending", "#", "Job", "Team", "Reason", "Why")
        for entry in sorted(plan.pending, key=lambda entry: entry.queue_position):
            table.add_row(
                str(entry.queue_position),
                entry.job,
                entry.team,
                entry.reason.value,
                entry.message,
            )
        parts.append(table)
    if plan.teams:
        parts.append(_teams(plan))
    if not parts:
        parts.append(Text("The plan is empty: no jobs, no teams.", style="dim"))
    return Group(*parts)


def _teams(plan: Plan) -> Table:
    columns = ("Guaranteed", "Fair share", "Demand", "Allocated", "Borrowed", "Releasing")
    table = Table(title="Teams after the plan", title_justify="left")
    table.add_column("Team")
    for column in (*columns, "Pending", "Jobs run/wait"):
        table.add_column(column, justify="right")
    for team in plan.teams:
        table.add_row(
            team.team,
            str(team.guaranteed_gpus),
            str(team.entitlement_gpus),
            str(team.demand_gpus),
            str(team.allocated_gpus),
            str(team.borrowed_gpus),
            str(team.releasing_gpus),
            str(team.pending_gpus),
            f"{team.running_jobs}/{team.pending_jobs}",
        )
    return table
