"""Pure renderers: ClusterState -> `Listing`s (table, wide, json, yaml, name). No I/O, so
they are tested directly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from gpupool.api import GPUDevice
from gpupool.views.estimate import estimated_start
from gpupool.views.output import Column, Listing, bar, dash, percent
from gpupool.views.state import ClusterState, Job, Node, Team


def _age_seconds(created: str, now: datetime) -> int | None:
    if not created:
        return None
    when = datetime.fromisoformat(created.replace("Z", "+00:00"))
    return max(int((now - when).total_seconds()), 0)


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _in(namespace: str | None) -> str:
    return f"in namespace {namespace}" if namespace else "in any namespace"


# --- status --------------------------------------------------------------------------------


def team_utilization(state: ClusterState) -> dict[str, float]:
    """Mean 5-minute utilization of the GPUs each team's pods hold."""
    team_of_namespace = {ns: team.name for team in state.teams for ns in team.spec.namespaces}
    samples: dict[str, list[float]] = defaultdict(list)
    for node in state.nodes:
        for gpu in node.status.gpus:
            if gpu.pod is not None and gpu.pod.namespace in team_of_namespace:
                samples[team_of_namespace[gpu.pod.namespace]].append(gpu.utilization_5m)
    return {team: sum(values) / len(values) for team, values in samples.items()}


def status_listing(state: ClusterState, namespace: str | None = None) -> Listing[Team]:
    """Per team (with `namespace`: the teams that own it) and the cluster's totals."""
    utilization = team_utilization(state)
    teams = [team for team in state.teams if namespace is None or namespace in team.spec.namespaces]

    def record(team: Team) -> dict[str, Any]:
        return {
            "name": team.name,
            "spec": team.spec.to_k8s(),
            "status": team.status.to_k8s(),
            "utilization5m": utilization.get(team.name),
        }

    columns: list[Column[Team]] = [
        Column("Team", lambda t: t.name),
        Column("Guaranteed", lambda t: str(t.spec.guaranteed_gpus), right=True),
        Column(
            "Max", lambda t: "∞" if t.spec.max_gpus is None else str(t.spec.max_gpus), right=True
        ),
        Column("Weight", lambda t: f"{t.spec.weight:g}", wide=True, right=True),
        Column("Allocated", lambda t: str(t.status.allocated_gpus), right=True),
        Column("Unmanaged", lambda t: dash(t.status.unmanaged_gpus), right=True),
        Column("Borrowed", lambda t: dash(t.status.borrowed_gpus), right=True),
        Column("Pending", lambda t: dash(t.status.pending_gpus), right=True),
        Column("Fair share", lambda t: f"{t.status.fair_share_gpus:.1f}", right=True),
        Column(
            "Jobs run/wait",
            lambda t: f"{t.status.running_jobs}/{t.status.pending_jobs}",
            right=True,
        ),
        Column("Util", lambda t: percent(utilization.get(t.name)), right=True),
        Column("Usage GPU-h", lambda t: f"{t.status.decayed_usage:.1f}", wide=True, right=True),
        Column("Idle reclaim", _idle_reclaim, wide=True),
        Column("Namespaces", lambda t: ", ".join(t.spec.namespaces), wide=True, fold=True),
    ]
    totals = cluster_totals(state)
    return Listing(
        title="Teams" + (f" owning namespace {namespace}" if namespace else ""),
        rows=teams,
        columns=columns,
        record=record,
        name=lambda team: f"teamquota.gpupool.io/{team.name}",
        empty=f"No TeamQuota owns namespace {namespace}." if namespace else "No TeamQuotas.",
        footer=_totals_grid(totals),
        summary={"cluster": totals},
    )


def _jobs(team: Team) -> str:
    return f"{team.status.running_jobs}/{team.status.pending_jobs}"


def _idle_reclaim(team: Team) -> str:
    idle = team.spec.idle_reclaim
    if idle is None:
        return "-"
    return f"<{idle.utilization_below:g}% for {idle.for_minutes:g}m, {idle.mode}"


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


def cluster_totals(state: ClusterState) -> dict[str, Any]:
    healthy = sum(node.status.healthy_gpus for node in state.nodes)
    allocated = sum(team.status.allocated_gpus for team in state.teams)
    outside = not_managed_gpus(state)
    gpus = [gpu.utilization_5m for node in state.nodes for gpu in node.status.gpus]
    return {
        "gpus": sum(node.status.gpu_count for node in state.nodes),
        "nodes": len(state.nodes),
        "healthyGPUs": healthy,
        "allocatedGPUs": allocated,
        "notManagedGPUs": outside,
        "idleGPUs": max(healthy - allocated - outside, 0),
        "meanUtilization5m": sum(gpus) / len(gpus) if gpus else None,
        "pendingJobs": sum(1 for job in state.jobs if job.status.phase == "Pending"),
    }


def _totals_grid(totals: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_row(
        f"[bold]Cluster[/] {totals['gpus']} GPUs on {totals['nodes']} nodes",
        f"healthy {totals['healthyGPUs']}",
        f"allocated {totals['allocatedGPUs']}",
        f"not managed {totals['notManagedGPUs']}",
        f"idle {totals['idleGPUs']}",
        f"mean utilization {percent(totals['meanUtilization5m'])}",
        f"pending jobs {totals['pendingJobs']}",
    )
    return grid


# --- queue ---------------------------------------------------------------------------------


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


def pending_jobs(state: ClusterState, team: str | None) -> list[Job]:
    """Pending jobs in scheduling order (of `team`, or every team)."""
    teams = job_teams(state)
    pending = [
        job
        for job in state.jobs
        if job.status.phase == "Pending" and (team is None or teams[job.key] == team)
    ]
    pending.sort(key=lambda job: (job.status.queue_position or 10**9, job.created, job.key))
    return pending


def queue_listing(
    state: ClusterState,
    team: str | None,
    namespace: str | None,
    now: datetime | None = None,
) -> Listing[Job]:
    """The pending jobs of `namespace` (None: every namespace, with a Namespace column)."""
    now = now or datetime.now(UTC)
    teams = job_teams(state)

    def record(job: Job) -> dict[str, Any]:
        return {
            "namespace": job.namespace,
            "name": job.name,
            "team": teams[job.key],
            "queuePosition": job.status.queue_position,
            "shape": job.status.shape or _shape(job),
            "priority": job.spec.priority,
            "waitingSeconds": _age_seconds(job.created, now),
            "reason": job.status.pending_reason,
            "detail": job.status.detail,
            "estimatedStart": None
            if job.status.estimated_start is None
            else job.status.estimated_start.to_k8s(),
        }

    columns: list[Column[Job]] = [Column("#", lambda j: dash(j.status.queue_position), right=True)]
    if namespace is None:
        columns.append(Column("Namespace", lambda j: j.namespace))
    columns += [
        Column("Job", lambda j: j.name),
        Column("Team", lambda j: teams[j.key] or "-"),
        Column("Shape", lambda j: j.status.shape or _shape(j)),
        Column("Priority", lambda j: str(j.spec.priority), right=True),
        Column("Priority class", lambda j: j.spec.priority_class_name or "-", wide=True),
        Column("Waiting", lambda j: _age(_age_seconds(j.created, now)), right=True),
        Column("Est. start", lambda j: estimated_start(j.status, now)),
        Column("Preempted", lambda j: dash(j.status.preemptions), wide=True, right=True),
        Column("Last checkpoint", _last_checkpoint, wide=True, fold=True),
        Column("Reason", lambda j: j.status.pending_reason or "-", wide=True),
        Column(
            "Why pending", lambda j: j.status.detail or "not yet seen by the scheduler", fold=True
        ),
    ]
    scope = f" of team {team}" if team else ""
    return Listing(
        title=f"Queue{scope} {_in(namespace)}",
        rows=[job for job in pending_jobs(state, team) if namespace in (None, job.namespace)],
        columns=columns,
        record=record,
        name=lambda job: f"gpujob.gpupool.io/{job.name}",
        empty=f"No pending GPUJobs{scope} {_in(namespace)}."
        + (" (-A: every namespace)" if namespace else ""),
    )


def _last_checkpoint(job: Job) -> str:
    checkpoint = job.status.last_checkpoint
    return checkpoint.location if checkpoint is not None else "-"


def _shape(job: Job) -> str:
    low, high = job.spec.worker_range
    workers = str(low) if low == high else f"{low}-{high}"
    return f"{workers}×{job.spec.gpus_per_worker}"


# --- top -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPURow:
    """One GPU of a node, or (gpu None) a node whose agent does not report; `managed`
    says whether the pod on it is in a team's namespace (None: not known)."""

    node: Node
    gpu: GPUDevice | None
    managed: bool | None = None

    @property
    def pod(self) -> str:
        pod = self.gpu.pod if self.gpu else None
        return f"{pod.namespace}/{pod.name}" if pod else ""

    def pod_cell(self) -> str | Text:
        if self.managed is False:
            return Text(f"{self.pod} (not managed)", style="yellow")
        return self.pod


def _gpu_percent(field: str) -> Callable[[GPURow], str]:
    """A GPU's utilization field as a cell ('' on the row of a node that does not report)."""

    def cell(row: GPURow) -> str:
        return percent(getattr(row.gpu, field)) if row.gpu is not None else ""

    return cell


def top_listing(
    nodes: list[Node], namespace: str | None = None, teams: set[str] | None = None
) -> Listing[GPURow]:
    """Every GPU (with `namespace`: those its pods hold). With `teams` (every team's
    namespaces), pods outside them are marked not managed."""

    def managed(gpu: GPUDevice | None) -> bool | None:
        if teams is None or gpu is None or gpu.pod is None:
            return None
        return gpu.pod.namespace in teams

    rows = [
        GPURow(node, gpu, managed(gpu))
        for node in nodes
        for gpu in (node.status.gpus if node.status.reporting else [None])
        if namespace is None or (gpu is not None and gpu.pod and gpu.pod.namespace == namespace)
    ]

    def record(row: GPURow) -> dict[str, Any]:
        found: dict[str, Any] = {"node": row.node.name, "reporting": row.node.status.reporting}
        if row.gpu is None:
            found["message"] = row.node.status.message
        else:
            found.update(row.gpu.to_k8s())
            if row.managed is not None:
                found["managed"] = row.managed
        return found

    def health(row: GPURow) -> str | Text:
        if row.gpu is None:
            return Text(f"not reporting: {row.node.status.message}", style="yellow")
        if row.gpu.healthy:
            return "ok"
        return Text(row.gpu.health_reason or "unhealthy", style="red")

    def memory(gpu: GPUDevice) -> str:
        return f"{gpu.memory_used_mib / 1024:.1f}/{gpu.memory_total_mib / 1024:.0f} GiB"

    def optional(value: float | None, unit: str) -> str:
        return "-" if value is None else f"{value:.0f}{unit}"

    columns: list[Column[GPURow]] = [
        Column("Node", lambda r: r.node.name),
        Column("GPU", lambda r: str(r.gpu.index) if r.gpu else "-", right=True),
        Column("Product", lambda r: r.gpu.product if r.gpu else "", wide=True),
        Column("Util", lambda r: bar(r.gpu.utilization) if r.gpu else ""),
        Column("Now", _gpu_percent("utilization"), right=True),
        Column("1m", _gpu_percent("utilization_1m"), right=True),
        Column("5m", _gpu_percent("utilization_5m"), right=True),
        Column("15m", _gpu_percent("utilization_15m"), wide=True, right=True),
        Column("Memory", lambda r: memory(r.gpu) if r.gpu else ""),
        Column(
            "Temp",
            lambda r: optional(r.gpu.temperature_c, "°C") if r.gpu else "",
            wide=True,
            right=True,
        ),
        Column(
            "Power",
            lambda r: optional(r.gpu.power_w, " W") if r.gpu else "",
            wide=True,
            right=True,
        ),
        Column("UUID", lambda r: r.gpu.uuid if r.gpu else "", wide=True),
        Column("Health", health),
        Column("Pod", GPURow.pod_cell, fold=True),
    ]
    return Listing(
        title="GPUs" + (f" held by pods of namespace {namespace}" if namespace else ""),
        rows=rows,
        columns=columns,
        record=record,
        name=lambda row: f"gpunode.gpupool.io/{row.node.name}",
        empty=f"No GPU is held by a pod of namespace {namespace}."
        if namespace
        else "No GPUNodes: is the gpupool agent running on the GPU nodes?",
    )
