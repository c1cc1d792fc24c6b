"""Pure renderers: ClusterState -> rich tables. No I/O, so they are tested directly."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gpupool.api import GPUDevice
from gpupool.views.state import ClusterState, Job, Node


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _bar(percent: float, width: int = 10) -> Text:
    filled = max(0, min(width, round(percent / 100 * width)))
    style = "green" if percent >= 50 else "yellow" if percent >= 10 else "red"
    return Text("█" * filled, style=style) + Text("·" * (width - filled), style="dim")


def _age(created: str, now: datetime) -> str:
    if not created:
        return "-"
    seconds = int((now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def team_utilization(state: ClusterState) -> dict[str, float]:
    """Mean 5-minute utilization of the GPUs each team's pods hold."""
    team_of_namespace = {ns: team.name for team in state.teams for ns in team.spec.namespaces}
    samples: dict[str, list[float]] = defaultdict(list)
    for node in state.nodes:
        for gpu in node.status.gpus:
            if gpu.pod is not None and gpu.pod.namespace in team_of_namespace:
                samples[team_of_namespace[gpu.pod.namespace]].append(gpu.utilization_5m)
    return {team: sum(values) / len(values) for team, values in samples.items()}


def status_table(state: ClusterState) -> Group:
    utilization = team_utilization(state)
    table = Table(title="Teams", title_justify="left")
    columns = ("Team", "Guaranteed", "Max", "Weight", "Allocated", "Unmanaged", "Borrowed")
    for column in (*columns, "Pending"):
        table.add_column(column, justify="left" if column == "Team" else "right")
    table.add_column("Fair share", justify="right")
    table.add_column("Jobs run/wait", justify="right")
    table.add_column("Util", justify="right")
    for team in state.teams:
        spec, status = team.spec, team.status
        table.add_row(
            team.name,
            str(spec.guaranteed_gpus),
            "∞" if spec.max_gpus is None else str(spec.max_gpus),
            f"{spec.weight:g}",
            str(status.allocated_gpus),
            str(status.unmanaged_gpus) if status.unmanaged_gpus else "-",
            str(status.borrowed_gpus) if status.borrowed_gpus else "-",
            str(status.pending_gpus) if status.pending_gpus else "-",
            f"{status.fair_share_gpus:.1f}",
            f"{status.running_jobs}/{status.pending_jobs}",
            _percent(utilization.get(team.name)),
        )
    totals = Table.grid(padding=(0, 2))
    total = sum(node.status.gpu_count for node in state.nodes)
    healthy = sum(node.status.healthy_gpus for node in state.nodes)
    allocated = sum(team.status.allocated_gpus for team in state.teams)
    gpus = [gpu.utilization_5m for node in state.nodes for gpu in node.status.gpus]
    pending = sum(1 for job in state.jobs if job.status.phase == "Pending")
    outside = not_managed_gpus(state)
    totals.add_row(
        f"[bold]Cluster[/] {total} GPUs on {len(state.nodes)} nodes",
        f"healthy {healthy}",
        f"allocated {allocated}",
        f"not managed {outside}",
        f"idle {max(healthy - allocated - outside, 0)}",
        f"mean utilization {_percent(sum(gpus) / len(gpus) if gpus else None)}",
        f"pending jobs {pending}",
    )
    return Group(table, totals)


def team_namespaces(state: ClusterState) -> set[str]:
    return {namespace for team in state.teams for namespace in team.spec.namespaces}


def not_managed_gpus(state: ClusterState) -> int:
    """GPUs the agents see used by pods in namespaces outside every team: gpupool counts
    them but charges and governs nobody for them."""
    namespaces = team_namespaces(state)
    return sum(
        1
        for node in state.nodes
        for gpu in node.status.gpus
        if gpu.pod is not None and gpu.pod.namespace not in namespaces
    )


def job_teams(state: ClusterState) -> dict[str, str]:
    """Job key -> team: as the operator wrote it, else as it will resolve it (spec.team, or
    the namespace's TeamQuota, the first by name when two claim it)."""
    owners: dict[str, str] = {}
    for quota in sorted(state.teams, key=lambda quota: quota.name):
        for namespace in quota.spec.namespaces:
            owners.setdefault(namespace, quota.name)
    return {
        job.key: job.status.team or job.spec.team or owners.get(job.namespace, "")
        for job in state.jobs
    }


def queue_table(state: ClusterState, team: str | None, now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    teams = job_teams(state)
    pending = [
        job
        for job in state.jobs
        if job.status.phase == "Pending" and (team is None or teams[job.key] == team)
    ]
    pending.sort(key=lambda job: (job.status.queue_position or 10**9, job.created, job.key))
    table = Table(title=f"Queue{f' of team {team}' if team else ''}", title_justify="left")
    for column in ("#", "Job", "Team", "Shape", "Priority", "Waiting", "Why pending"):
        table.add_column(column, overflow="fold")
    for job in pending:
        table.add_row(
            str(job.status.queue_position or "-"),
            job.key,
            teams[job.key] or "-",
            job.status.shape or _shape(job),
            str(job.spec.priority),
            _age(job.created, now),
            job.status.detail or "not yet seen by the scheduler",
        )
    return table


def _shape(job: Job) -> str:
    low, high = job.spec.worker_range
    workers = str(low) if low == high else f"{low}-{high}"
    return f"{workers}×{job.spec.gpus_per_worker}"


def _pod_cell(gpu: GPUDevice, namespaces: set[str] | None) -> str | Text:
    if gpu.pod is None:
        return ""
    name = f"{gpu.pod.namespace}/{gpu.pod.name}"
    if namespaces is not None and gpu.pod.namespace not in namespaces:
        return Text(f"{name} (not managed)", style="yellow")
    return name


def top_table(nodes: list[Node], namespaces: set[str] | None = None) -> Table:
    """Per GPU; with `namespaces` (every team's), pods outside them say "not managed"."""
    table = Table(title="GPUs", title_justify="left")
    for column in ("Node", "GPU", "Product", "Util", "", "1m", "5m", "Memory", "Temp", "Power"):
        table.add_column(column, justify="right" if column in ("1m", "5m", "Temp") else "left")
    table.add_column("Health")
    table.add_column("Pod", overflow="fold")
    for node in nodes:
        status = node.status
        if not status.reporting:
            table.add_row(
                node.name, "-", "", "", "", "", "", "", "", "", "not reporting", status.message
            )
            continue
        for gpu in status.gpus:
            memory = f"{gpu.memory_used_mib / 1024:.1f}/{gpu.memory_total_mib / 1024:.0f} GiB"
            table.add_row(
                node.name,
                str(gpu.index),
                gpu.product,
                _bar(gpu.utilization),
                _percent(gpu.utilization),
                _percent(gpu.utilization_1m),
                _percent(gpu.utilization_5m),
                memory,
                "-" if gpu.temperature_c is None else f"{gpu.temperature_c:.0f}°C",
                "-" if gpu.power_w is None else f"{gpu.power_w:.0f} W",
                "ok" if gpu.healthy else Text(gpu.health_reason or "unhealthy", style="red"),
                _pod_cell(gpu, namespaces),
            )
    return table
