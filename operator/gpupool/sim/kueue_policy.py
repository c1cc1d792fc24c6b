"""The `static`, `borrow` and `kueue-fair` baselines: Kueue's admission semantics,
topology-unaware.

One ClusterQueue per team with `nominalQuota` = its guarantee, all in one cohort;
`queueingStrategy: BestEffortFIFO` (a head that cannot be admitted does not block
the jobs behind it); pods placed first-fit (see `placement`).

- `borrow`: `borrowingLimit` = maxGPUs − guarantee (unlimited without maxGPUs);
  `preemption: {reclaimWithinCohort: Any, withinClusterQueue: LowerPriority}`.
- `static`: `borrowingLimit: 0` — each team uses only its guaranteed GPUs.
- `kueue-fair`: `borrow` with fair sharing on (`fairSharing: {enable: true,
  preemptionStrategies: [LessThanOrEqualToFinalShare, LessThanInitialShare]}`,
  each ClusterQueue's `fairSharing.weight` = its team's weight); see `kueue_fair`.

Each cycle does what Kueue's back-to-back cycles do: heads are taken in Kueue's
order (jobs that fit without borrowing first, then priority, then creation time);
a head within quota is admitted if its pods fit the nodes; a head over quota may
preempt, following Kueue's `preemption.GetTargets`: candidates are the running
jobs of ClusterQueues that are borrowing (only when the job would stay within its
own nominal quota) and lower-priority jobs of its own queue, ordered other
queues first, then lower priority, then most recently admitted; they are removed
one by one (skipping a queue that stopped borrowing) until the job fits, then
every one not needed is put back. Workloads already evicted whose pods are still
terminating come first (Kueue's `CandidatesOrdering` puts evicted workloads
first): a head whose room is on its way waits for it instead of preempting
again. Victims get SIGTERM like any evicted job (the engine's, see `model`).
Kueue itself only
checks quota and lets kube-scheduler place the pods; here a job is admitted, or
preempts, only if its pods fit too, which spares the baseline admitted jobs
stuck on fragmented nodes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from gpupool.planner import (
    Admission,
    JobState,
    Plan,
    Preemption,
    PreemptionReason,
    Team,
    WorkerPlacement,
)
from gpupool.sim.placement import first_fit, fits
from gpupool.sim.state import Cluster, SimJob

Shape = tuple[int, int]


def _dominated(shape: Shape, failed: set[Shape]) -> bool:
    """A shape at least as big, per worker and in workers, as one that failed fails too."""
    return any(shape[0] >= g and shape[1] >= w for g, w in failed)


@dataclass(slots=True)
class _Cycle:
    cluster: Cluster
    nominal: dict[str, int]
    limit: dict[str, float]
    usage: dict[str, int]
    free: list[int]
    cohort_capacity: int
    cohort_usage: int
    admissions: list[Admission] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    victims: set[str] = field(default_factory=set)
    # Shapes that fit quota but not the nodes; per team, shapes over quota that
    # could not preempt either. Within a cycle nothing gets freed, so they stay so.
    unplaceable: set[Shape] = field(default_factory=set)
    stuck: dict[str, set[Shape]] = field(default_factory=dict)
    by_team: dict[str, list[SimJob]] | None = None
    terminating: list[SimJob] | None = None

    def quota_fits(self, team: str, gpus: int, usage: dict[str, int], cohort: int) -> bool:
        return usage[team] + gpus <= self.limit[team] and cohort + gpus <= self.cohort_capacity

    def running_by_team(self) -> dict[str, list[SimJob]]:
        """Running jobs per team (not those already evicted and terminating)."""
        if self.by_team is None:
            self.by_team = {}
            for job in self.cluster.running.values():
                if job.state is JobState.RUNNING:
                    self.by_team.setdefault(job.team, []).append(job)
        return self.by_team

    def evicted(self) -> list[SimJob]:
        """Jobs evicted in an earlier cycle whose pods still hold their GPUs."""
        if self.terminating is None:
            self.terminating = [
                job for job in self.cluster.running.values() if job.state is JobState.PREEMPTING
            ]
        return self.terminating


@dataclass(slots=True)
class Trial:
    """A preemption being tried: the cycle's usage and free GPUs with targets removed."""

    cycle: _Cycle
    job: SimJob
    shape: Shape
    usage: dict[str, int]
    cohort: int
    free: list[int]
    targets: list[SimJob] = field(default_factory=list)

    def _give(self, victim: SimJob, sign: int) -> None:
        index = self.cycle.cluster.node_index
        for worker in victim.workers:
            self.free[index[worker.node]] += sign * worker.gpus
        self.usage[victim.team] -= sign * victim.gpus
        self.cohort -= sign * victim.gpus

    def take(self, victim: SimJob) -> bool:
        """Remove the victim; whether the job fits now."""
        self._give(victim, +1)
        self.targets.append(victim)
        return self.room()

    def room(self) -> bool:
        job = self.job
        return self.cycle.quota_fits(job.team, job.gpus, self.usage, self.cohort) and fits(
            self.free, *self.shape
        )

    def fill_back(self) -> None:
        """Put back, newest target first, every one the job fits without."""
        for i in range(len(self.targets) - 2, -1, -1):
            victim = self.targets[i]
            self._give(victim, -1)
            if self.room():
                self.targets.pop(i)
            else:
                self._give(victim, +1)


class KueuePolicy:
    min_runtime_seconds = 0.0
    idle_reclaim = False
    # Classic preemption reclaims from other queues only for a workload that stays
    # within its queue's nominal quota (no `borrowWithinCohort`); fair sharing
    # lets its strategies decide instead.
    reclaim_needs_nominal = True

    def __init__(self, name: str, teams: Sequence[Team], *, borrowing: bool) -> None:
        self.name = name
        self.borrowing = borrowing
        self.nominal = {team.name: team.guaranteed_gpus for team in teams}
        self.weight = {team.name: team.weight for team in teams}
        self.limit: dict[str, float] = {
            team.name: (
                float(team.guaranteed_gpus)
                if not borrowing
                else float("inf")
                if team.max_gpus is None
                else float(max(team.max_gpus, team.guaranteed_gpus))
            )
            for team in teams
        }

    def plan(self, cluster: Cluster, now: float) -> Plan:
        usage = {team: cluster.held.get(team, 0) for team in self.nominal}
        cycle = _Cycle(
            cluster=cluster,
            nominal=self.nominal,
            limit=self.limit,
            usage=usage,
            free=list(cluster.free),
            cohort_capacity=sum(self.nominal.values()),
            cohort_usage=sum(usage.values()),
        )
        # Within a team and a shape jobs are served in order, so a cursor per shape
        # finds the team's next head without walking past jobs that cannot start.
        cursor: dict[tuple[str, Shape], int] = {}
        heads: list[tuple[bool, int, float, int, str]] = []

        def push(team: str) -> None:
            best: SimJob | None = None
            for shape, queue in cluster.by_shape.get(team, {}).items():
                at = cursor.get((team, shape), 0)
                if at >= len(queue) or self._blocked(cycle, team, shape, queue[at].gpus):
                    continue
                if best is None or queue[at].order < best.order:
                    best = queue[at]
            if best is not None:
                borrows = cycle.usage[team] + best.gpus > self.nominal[team]
                share = self._head_share(cycle, team, best.gpus)
                heapq.heappush(heads, (borrows, share, best.trace.submitted, best.index, team))

        for team in self.nominal:
            push(team)
        while heads:
            *_, index, team = heapq.heappop(heads)
            job = cluster.jobs[index]
            cursor[team, job.shape] = cursor.get((team, job.shape), 0) + 1
            # A queue whose head preempts waits for it (Kueue keeps it the head).
            if not self._serve(cycle, job):
                push(team)
        return Plan(admissions=tuple(cycle.admissions), preemptions=tuple(cycle.preemptions))

    def _head_share(self, cycle: _Cycle, team: str, gpus: int) -> int:
        """Heads' order after "borrows or not": classic Kueue has none (FIFO)."""
        return 0

    @staticmethod
    def _blocked(cycle: _Cycle, team: str, shape: Shape, gpus: int) -> bool:
        """Whether a job of this shape already failed this cycle (or a smaller one did)."""
        if cycle.quota_fits(team, gpus, cycle.usage, cycle.cohort_usage):
            return _dominated(shape, cycle.unplaceable)
        return _dominated(shape, cycle.stuck.get(team, set()))

    def _serve(self, cycle: _Cycle, job: SimJob) -> bool:
        """Admit the job, or preempt for it (True), or leave it waiting."""
        team = job.team
        shape = (job.gpus_per_worker, job.workers_wanted)
        if cycle.quota_fits(team, job.gpus, cycle.usage, cycle.cohort_usage):
            workers = first_fit(cycle.free, cycle.cluster.nodes, *shape)
            if workers is None:
                cycle.unplaceable.add(shape)
            else:
                self._admit(cycle, job, workers)
            return False
        if self._preempt(cycle, job, shape):
            return True
        cycle.stuck.setdefault(team, set()).add(shape)
        return False

    def _admit(self, cycle: _Cycle, job: SimJob, workers: tuple[WorkerPlacement, ...]) -> None:
        index = cycle.cluster.node_index
        for worker in workers:
            cycle.free[index[worker.node]] -= worker.gpus
        cycle.usage[job.team] += job.gpus
        cycle.cohort_usage += job.gpus
        nodes = ", ".join(dict.fromkeys(w.node for w in workers))
        cycle.admissions.append(Admission(job.key, job.team, workers, f"admitted on {nodes}"))

    def _candidates(self, cycle: _Cycle, job: SimJob, usage: dict[str, int]) -> Iterator[SimJob]:
        """Running jobs the job may preempt, in Kueue's `CandidatesOrdering`: other
        queues first, then lower priority, then the most recently admitted."""
        team = job.team
        within_nominal = (
            not self.reclaim_needs_nominal or usage[team] + job.gpus <= self.nominal[team]
        )
        candidates: list[SimJob] = []
        for owner, running in cycle.running_by_team().items():
            if owner == team:
                candidates.extend(
                    r for r in running if r.key not in cycle.victims and r.priority < job.priority
                )
            elif within_nominal and usage[owner] > self.nominal[owner]:
                candidates.extend(r for r in running if r.key not in cycle.victims)
        candidates.sort(key=_newest_first(team))
        return iter(candidates)

    def _select(self, trial: Trial) -> bool:
        """Classic preemption: candidates in order, skipping a queue no longer borrowing."""
        team = trial.job.team
        for victim in self._candidates(trial.cycle, trial.job, trial.usage):
            owner = victim.team
            if owner != team and trial.usage[owner] <= self.nominal[owner]:
                continue
            if trial.take(victim):
                return True
        return False

    def _preempt(self, cycle: _Cycle, job: SimJob, shape: Shape) -> bool:
        trial = Trial(cycle, job, shape, dict(cycle.usage), cycle.cohort_usage, list(cycle.free))
        done = False
        for victim in cycle.evicted():
            if victim.key not in cycle.victims and trial.take(victim):
                done = True
                break
        if not done and not self._select(trial):
            return False
        trial.fill_back()
        for victim in trial.targets:
            cycle.victims.add(victim.key)
            if victim.state is not JobState.RUNNING:
                continue
            other = victim.team != job.team
            cycle.preemptions.append(
                Preemption(
                    job=victim.key,
                    team=victim.team,
                    reason=PreemptionReason.RECLAIM_BORROWED
                    if other
                    else PreemptionReason.PRIORITY,
                    gpus=victim.gpus,
                    message=f"evicted for {job.key}",
                    for_job=job.key,
                    for_team=job.team,
                )
            )
        return True


def _newest_first(team: str) -> Callable[[SimJob], tuple[bool, int, float, int]]:
    def order(victim: SimJob) -> tuple[bool, int, float, int]:
        started = victim.run_start if victim.run_start is not None else 0.0
        return (victim.team == team, victim.priority, -started, -victim.index)

    return order
