"""The `gpupool` policy: the operator's own planner, fed the simulated cluster.

Every job has the default checkpoint hook (`signal`: SIGTERM, grace = its
timeout), so whether a victim saves is the job's own trait, as under Kueue (see
`model`); multi-node jobs ask for one rack (preferred, not
required), as a topology-aware user would; teams reclaim idle GPUs per their
idleReclaim. The planner's production defaults apply (minimum runtime, aging).

A long queue is not all shown to the planner, only the jobs it could act on this
cycle; the plan is the same. Trace jobs share one priority, so within a team and a
shape they are served in submission order, and within a cycle free capacity only
shrinks: past the first `free ÷ size + max_preemptors_per_cycle + 1` jobs of a
shape, one before it must have waited, and so will the rest. Entitlements depend
on demand only up to the entitlement itself (max-min fairness), so each team keeps
a prefix of its queue worth at least its entitlement plus a node. Jobs whose
victims are checkpointing for them are always shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpupool.planner import (
    Job,
    JobState,
    PlacementPolicy,
    Plan,
    PlannerConfig,
    Snapshot,
    Team,
    TopologyLevel,
    plan,
)
from gpupool.planner.quota import entitlements
from gpupool.planner.snapshot import ANYWHERE
from gpupool.sim.state import Cluster, SimJob

SAME_RACK = PlacementPolicy(topology=TopologyLevel.RACK, required=False)


class GpupoolPolicy:
    name = "gpupool"
    idle_reclaim = True

    def __init__(self, teams: Sequence[Team], config: PlannerConfig | None = None) -> None:
        self.teams = tuple(teams)
        self.config = config or PlannerConfig()
        self.min_runtime_seconds = self.config.min_runtime_seconds

    def plan(self, cluster: Cluster, now: float) -> Plan:
        jobs = [self._view(job, cluster, now) for job in cluster.running.values()]
        jobs.extend(self._view(job, cluster, now) for job in self._actionable(cluster))
        return plan(Snapshot(cluster.nodes, self.teams, tuple(jobs), self.config), now)

    def _actionable(self, cluster: Cluster) -> list[SimJob]:
        """The pending jobs this cycle's plan can depend on (see the module doc)."""
        active = dict.fromkeys(cluster.pending, 0)
        nominated: set[str] = set()
        for job in cluster.running.values():
            if job.state is JobState.RUNNING:
                active[job.team] = active.get(job.team, 0) + job.gpus
            elif job.preempted_for is not None:
                nominated.add(job.preempted_for)
        demand = {team: active.get(team, 0) + cluster.waiting_gpus.get(team, 0) for team in active}
        shares = entitlements(cluster.total_gpus, self.teams, demand)
        free = sum(cluster.free)
        extra = self.config.max_preemptors_per_cycle + 1
        chosen: dict[int, SimJob] = {}
        for team, queue in cluster.pending.items():
            for (per_worker, workers), same in cluster.by_shape.get(team, {}).items():
                for job in same[: free // (per_worker * workers) + extra]:
                    chosen[job.index] = job
            need = shares.get(team, 0) + cluster.config.gpus_per_node - active.get(team, 0)
            for job in queue:
                if need <= 0:
                    break
                chosen[job.index] = job
                need -= job.gpus
        for key in nominated:
            job = cluster.by_key[key]
            if job.state is JobState.PENDING:
                chosen[job.index] = job
        return list(chosen.values())

    def _view(self, job: SimJob, cluster: Cluster, now: float) -> Job:
        """The GPUJob as the operator would show it to the planner (cached)."""
        if job.state is JobState.PENDING:
            key: tuple[object, ...] = (job.state, job.run)
            idle_since = checkpoint = None
        else:
            config = cluster.config
            idle_since = job.idle_since(now, config.idle_seen_after, config.publish_seconds)
            periodic = job.periodic_checkpoint(now, cluster.config.checkpoint_interval)
            checkpoint = max(
                (t for t in (periodic, job.hook_checkpoint_at) if t is not None), default=None
            )
            key = (job.state, job.run, idle_since, checkpoint)
        if job.view is not None and job.view_key == key:
            return job.view
        running = job.state is not JobState.PENDING
        job.view = Job(
            key=job.key,
            team=job.team,
            gpus_per_worker=job.gpus_per_worker,
            min_workers=job.workers_wanted,
            max_workers=job.workers_wanted,
            submitted_at=job.order[0],
            state=job.state,
            workers=job.workers if running else (),
            preempted_for=job.preempted_for if running else None,
            started_at=job.run_start if running else None,
            last_checkpoint_at=checkpoint if running else job.hook_checkpoint_at,
            checkpoint_hook=True,
            checkpoint_timeout_seconds=cluster.config.hook_timeout,
            placement=SAME_RACK if job.workers_wanted > 1 else ANYWHERE,
            idle_since=idle_since,
            utilization=(0.0 if idle_since is not None else job.profile.busy) if running else None,
        )
        job.view_key = key
        return job.view
