"""The operator's Prometheus metrics (every one is documented in docs/metrics-operator.md).

A registry of its own, so importing the module twice (tests, the in-process bench)
never collides with another component's metrics in the default registry. Counters are
declared without their `_total` suffix: prometheus_client appends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gpupool.k8s import ApiError
from gpupool.planner import PendingJob, TeamFigures

REGISTRY = CollectorRegistry(auto_describe=True)

# From a quick step to a long queue: seconds to days.
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
HOOK_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

TEAM_GPU_KINDS = ("guaranteed", "entitlement", "allocated", "borrowed", "pending", "unmanaged")


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(name, doc, labels, registry=REGISTRY)


def api_resource(path: str) -> str:
    """The resource an API path names: /api/v1/namespaces/a/pods/b/status -> pods."""
    parts = [part for part in path.split("?")[0].split("/") if part]
    # /api/<version>/... or /apis/<group>/<version>/...
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] if rest else "unknown"


@dataclass(frozen=True)
class Metrics:
    # --- the loop -------------------------------------------------------------------------
    cycles: Counter = field(
        default_factory=lambda: _counter("gpupool_scheduling_cycles", "Scheduling cycles run.")
    )
    cycle_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_scheduling_cycle_seconds",
            "Duration of one scheduling cycle (observe, plan, record, dispatch).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=REGISTRY,
        )
    )
    step_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_scheduling_step_seconds",
            "Duration of one step of a scheduling cycle, by step.",
            ("step",),
            buckets=STEP_BUCKETS,
            registry=REGISTRY,
        )
    )
    forecast_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_forecast_seconds",
            "CPU seconds of one forecast of the pending jobs' start (off the loop, bounded rate).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
            registry=REGISTRY,
        )
    )
    # --- teams ----------------------------------------------------------------------------
    team_gpus: Gauge = field(
        default_factory=lambda: _gauge(
            "gpupool_team_gpus",
            "GPUs per team as the last plan left them, by kind: guaranteed, entitlement "
            "(fair share), allocated, borrowed (allocated above the guarantee), pending "
            "(requested by waiting jobs), unmanaged (held by GPU pods in the team's namespaces "
            "that did not come through gpupool; part of allocated).",
            ("team", "kind"),
        )
    )
    team_allocated_gpu_seconds: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_team_allocated_gpu_seconds",
            "GPU-seconds held by each team's jobs (chargeback: divide by 3600 for GPU-hours).",
            ("team",),
        )
    )
    team_used_gpu_seconds: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_team_used_gpu_seconds",
            "GPU-seconds each team's jobs kept busy: allocation weighted by measured utilization.",
            ("team",),
        )
    )
    unmanaged_node_gpus: Gauge = field(
        default_factory=lambda: _gauge(
            "gpupool_unmanaged_gpus",
            "GPUs on a node of the pool held by pods gpupool did not create, by node and "
            'team (team="" for pods in a namespace outside every TeamQuota: not managed).',
            ("node", "team"),
        )
    )
    # --- the queue ------------------------------------------------------------------------
    pending_jobs: Gauge = field(
        default_factory=lambda: _gauge("gpupool_pending_jobs", "Jobs waiting, by team.", ("team",))
    )
    queue_wait_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_queue_wait_seconds",
            "Time a job waited in the queue before it was admitted (from submission, or "
            "from its requeue after a preemption), by team.",
            ("team",),
            buckets=WAIT_BUCKETS,
            registry=REGISTRY,
        )
    )
    # --- decisions ------------------------------------------------------------------------
    admissions: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_admissions", "Jobs admitted (or resumed), by team.", ("team",)
        )
    )
    admission_failures: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_admission_failures", "Admissions the API server refused."
        )
    )
    placement_conflicts: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_placement_conflicts",
            "Runs whose workers a kubelet refused at admission (another pod took the GPUs "
            "first): re-planned, not counted as failures.",
        )
    )
    invalid_objects: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_invalid_objects",
            "Objects skipped because they cannot be scheduled as written (undecodable, past "
            "the bounds, invalid spec, a namespace another TeamQuota holds), by kind; "
            "counted once per object generation.",
            ("kind",),
        )
    )
    status_rewrites: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_status_rewrites",
            "GPUJob statuses someone else changed against the operator's records, rewritten.",
        )
    )
    admission_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_admission_seconds",
            "Time to create one admission's Service and pods.",
            registry=REGISTRY,
        )
    )
    preemptions: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_preemptions", "Preemptions and shrinks completed, by reason.", ("reason",)
        )
    )
    hook_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_checkpoint_hook_seconds",
            "Checkpoint hook duration, by outcome.",
            ("outcome",),
            buckets=HOOK_BUCKETS,
            registry=REGISTRY,
        )
    )
    hooks: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_checkpoint_hooks",
            "Checkpoint hooks run, by outcome: succeeded, failed, timeout, skipped.",
            ("outcome",),
        )
    )
    finished: Counter = field(
        default_factory=lambda: _counter("gpupool_jobs_finished", "Jobs finished.", ("outcome",))
    )
    # --- idleness -------------------------------------------------------------------------
    idle_jobs: Gauge = field(
        default_factory=lambda: _gauge(
            "gpupool_idle_jobs",
            "Running jobs idle per their team's idleReclaim, by team and mode.",
            ("team", "mode"),
        )
    )
    idle_reclaimed_gpus: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_idle_reclaimed_gpus",
            "GPUs taken back from idle jobs (idleReclaim enforce), by team of the idle job.",
            ("team",),
        )
    )
    idle_reclaimed_gpu_seconds: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_idle_reclaimed_gpu_seconds",
            "Idle GPU-seconds ended by reclaim: each reclaimed GPU times how long it had "
            "been idle, by team of the idle job.",
            ("team",),
        )
    )
    # --- the API server -------------------------------------------------------------------
    status_writes: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_status_writes",
            "Status patches written, by object (job, team) and class: forced (a record an "
            "operation depends on), change (phase, reason or a condition changed), minor "
            "(figures only, e.g. queue position; rate-limited).",
            ("kind", "class"),
        )
    )
    status_writes_queued: Gauge = field(
        default_factory=lambda: _gauge(
            "gpupool_status_writes_queued",
            "Status writes waiting for the API server (at the end of the last cycle). While "
            "it is long, interim writes (Admitted) and Events wait: the API server is behind.",
        )
    )
    api_errors: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_api_errors",
            "API calls that failed after retries, by verb, resource and HTTP status code "
            "(0: the API server did not answer).",
            ("verb", "resource", "code"),
        )
    )

    def set_teams(self, teams: Iterable[TeamFigures]) -> None:
        """The per-team GPU gauges, from the last plan (teams gone lose their series)."""
        self.team_gpus.clear()
        for figures in teams:
            values = (
                figures.guaranteed_gpus,
                figures.entitlement_gpus,
                figures.allocated_gpus,
                figures.borrowed_gpus,
                figures.pending_gpus,
                figures.unmanaged_gpus,
            )
            for kind, value in zip(TEAM_GPU_KINDS, values, strict=True):
                self.team_gpus.labels(figures.team, kind).set(value)

    def set_unmanaged(self, usage: Mapping[tuple[str, str | None], int]) -> None:
        """GPUs of pods outside gpupool per node and team (nodes freed lose their series)."""
        self.unmanaged_node_gpus.clear()
        for (node, team), gpus in usage.items():
            self.unmanaged_node_gpus.labels(node, team or "").set(gpus)

    def set_queue(self, pending: Iterable[PendingJob], teams: Iterable[str]) -> None:
        """Waiting jobs per team; 0 for a team with none (a gap would read as unknown)."""
        counts = dict.fromkeys(teams, 0)
        for entry in pending:
            counts[entry.team] = counts.get(entry.team, 0) + 1
        self.pending_jobs.clear()
        for team, count in counts.items():
            self.pending_jobs.labels(team).set(count)

    def count_api_error(self, verb: str, path: str, error: ApiError) -> None:
        self.api_errors.labels(verb, api_resource(path), str(error.status)).inc()


METRICS = Metrics()
