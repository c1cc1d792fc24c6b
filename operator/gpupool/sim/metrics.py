"""What a run measures, and the per-policy summary it reports.

- JCT: completion − submission. Queueing delay: all the time a job spent pending,
  including after being preempted. Time-to-GPUs: first start − submission.
- Allocation ratio: GPU-seconds held (running or checkpointing) over capacity ×
  the run's span (first submission to last completion); effective utilization:
  GPU-seconds actually used (held × utilization) over the same.
- Lost GPU-hours: work thrown away by preemptions (GPUs × seconds since the last
  checkpoint, or × the hook's duration when the hook saved the rest).
- Entitlement index: Jain's index of each team's GPUs over its entitlement as the
  gpupool planner computes it (guarantee if it has demand plus weighted fair share
  of the rest), time-averaged over the moments some team has demand. It grades
  every policy on gpupool's own formula, so it is not a neutral fairness measure;
  finish-time fairness (`fairness`) is.
- p99 time-to-GPUs of the jobs submitted while their team's whole demand was
  within its guarantee: what a guarantee is worth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from gpupool.planner.quota import entitlements
from gpupool.sim.state import Cluster, SimJob

HOUR = 3600.0
JSON_KEYS = (
    "jobs",
    "avg_jct_s",
    "p95_jct_s",
    "avg_queue_s",
    "p95_queue_s",
    "allocation_ratio",
    "effective_utilization",
    "lost_gpu_hours",
    "preemptions",
    "entitlement_jain_index",
    "p99_guaranteed_wait_s",
    "mean_spread_slowdown",
    "spread_jobs",
    "max_rho",
    "jain_rho",
    "rho",
    "team_avg_jct_s",
    "plans",
    "runtime_s",
)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def jain(values: Sequence[float]) -> float:
    if not values:
        return 1.0
    squares = sum(v * v for v in values)
    return sum(values) ** 2 / (len(values) * squares) if squares else 1.0


@dataclass(slots=True)
class PolicyResult:
    policy: str
    jobs: int
    avg_jct_s: float
    p95_jct_s: float
    avg_queue_s: float
    p95_queue_s: float
    allocation_ratio: float
    effective_utilization: float
    lost_gpu_hours: float
    preemptions: int
    entitlement_jain_index: float
    p99_guaranteed_wait_s: float
    spread_jobs: int
    mean_spread_slowdown: float
    plans: int
    runtime_s: float
    # Hourly series for the report: GPUs held on average per hour, in total and per team.
    held_per_hour: list[float] = field(default_factory=list)
    team_held_per_hour: dict[str, list[float]] = field(default_factory=dict)
    jcts: list[float] = field(default_factory=list)
    queues: list[float] = field(default_factory=list)
    team_avg_jct_s: dict[str, float] = field(default_factory=dict)
    # Finish-time fairness (see `fairness`), filled in once the teams' runs alone are known.
    rho: dict[str, float] = field(default_factory=dict)
    max_rho: float = 0.0
    jain_rho: float = 1.0

    def to_json(self) -> dict[str, object]:
        values = asdict(self)
        return {key: values[key] for key in JSON_KEYS}


class Recorder:
    """Integrates the cluster's state over time; the engine calls it as time moves."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.capacity = cluster.total_gpus
        self.now = 0.0
        self.held_seconds = 0.0
        self.used_seconds = 0.0
        self.lost_seconds = 0.0
        self.preemptions = 0
        self.jain_seconds = 0.0
        self.jain_weighted = 0.0
        self.starts = 0
        self.spread_starts = 0
        self.multi_node_starts = 0
        self.multi_node_slowdown = 0.0
        self.held_hours: list[float] = []
        self.team_hours: dict[str, list[float]] = {team.name: [] for team in cluster.teams}
        self._version = -1
        self._jain: float | None = None

    def advance(self, now: float) -> None:
        dt = now - self.now
        if dt <= 0:
            return
        cluster = self.cluster
        held = sum(cluster.held.values())
        self.held_seconds += held * dt
        if cluster.version != self._version:
            self._version = cluster.version
            self._jain = self._fairness()
        if self._jain is not None:
            self.jain_seconds += dt
            self.jain_weighted += self._jain * dt
        self._hourly(self.now, now, cluster.held)
        self.now = now

    def _hourly(self, start: float, end: float, held: dict[str, int]) -> None:
        total = sum(held.values())
        while start < end:
            hour = int(start // HOUR)
            stop = min(end, (hour + 1) * HOUR)
            share = (stop - start) / HOUR
            while len(self.held_hours) <= hour:
                self.held_hours.append(0.0)
                for series in self.team_hours.values():
                    series.append(0.0)
            self.held_hours[hour] += total * share
            for team, series in self.team_hours.items():
                series[hour] += held.get(team, 0) * share
            start = stop

    def _fairness(self) -> float | None:
        cluster = self.cluster
        demand = {
            team.name: cluster.held.get(team.name, 0) + cluster.waiting_gpus.get(team.name, 0)
            for team in cluster.teams
        }
        if not any(demand.values()):
            return None
        shares = entitlements(self.capacity, cluster.teams, demand)
        ratios = [cluster.held.get(name, 0) / share for name, share in shares.items() if share > 0]
        return jain(ratios)

    def started(self, job: SimJob) -> None:
        self.starts += 1
        if job.workers_wanted > 1:
            self.multi_node_starts += 1
            self.multi_node_slowdown += job.slowdown
        if job.slowdown > 1.0:
            self.spread_starts += 1

    def ran(self, job: SimJob, start_work: float, end_work: float) -> None:
        """The job ran from `start_work` to `end_work` seconds of work (kept or not)."""
        busy = job.profile.busy_seconds(start_work, end_work)
        self.used_seconds += job.gpus * busy * job.profile.busy / 100.0

    def lost(self, gpu_seconds: float) -> None:
        self.preemptions += 1
        self.lost_seconds += gpu_seconds

    def result(
        self, policy: str, jobs: Sequence[SimJob], plans: int, runtime: float
    ) -> PolicyResult:
        done = [job for job in jobs if job.finished_at is not None]
        jcts = [(job.finished_at or 0.0) - job.trace.submitted for job in done]
        queues = [job.queued_seconds for job in done]
        guaranteed = [
            job.first_start - job.trace.submitted
            for job in done
            if job.within_guarantee and job.first_start is not None
        ]
        span = self.now * self.capacity
        count = len(done)
        per_team: dict[str, list[float]] = {}
        for job, value in zip(done, jcts, strict=True):
            per_team.setdefault(job.team, []).append(value)
        return PolicyResult(
            policy=policy,
            jobs=count,
            avg_jct_s=sum(jcts) / count if count else 0.0,
            p95_jct_s=percentile(jcts, 95),
            avg_queue_s=sum(queues) / count if count else 0.0,
            p95_queue_s=percentile(queues, 95),
            allocation_ratio=self.held_seconds / span if span else 0.0,
            effective_utilization=self.used_seconds / span if span else 0.0,
            lost_gpu_hours=self.lost_seconds / HOUR,
            preemptions=self.preemptions,
            entitlement_jain_index=(
                self.jain_weighted / self.jain_seconds if self.jain_seconds else 1.0
            ),
            p99_guaranteed_wait_s=percentile(guaranteed, 99),
            spread_jobs=self.spread_starts,
            mean_spread_slowdown=(
                self.multi_node_slowdown / self.multi_node_starts if self.multi_node_starts else 1.0
            ),
            plans=plans,
            runtime_s=runtime,
            held_per_hour=self.held_hours,
            team_held_per_hour=self.team_hours,
            jcts=jcts,
            queues=queues,
            team_avg_jct_s={team: sum(v) / len(v) for team, v in sorted(per_team.items())},
        )
