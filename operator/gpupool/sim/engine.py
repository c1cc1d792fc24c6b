"""The discrete-event loop, and the operator's apply step emulated on the cluster.

Events (arrivals, completions, checkpoint hooks finishing, wake-ups) are handled
in time order; the scheduling loop runs at most once per `cycle_seconds`, on the
cycle boundary after the first event, and only when something changed and some job
waits. Applying a plan does what the operator's executor (and Kueue's job
controller) does: an admitted job starts on the plan's workers; a preempted job
gets SIGTERM, whichever policy preempted it. One that saves on SIGTERM keeps its
GPUs in state PREEMPTING (`preempted_for` set) while it saves, then returns to the
queue with its work saved; one that does not dies at once and returns to the queue
with the work of its last periodic checkpoint.

Wake-ups cover changes no event announces: a young job passing the planner's
minimum runtime, a job idle long enough for its team's idleReclaim, a preemption
the planner deferred or a preemptor whose victims were just evicted.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from enum import IntEnum

from gpupool.planner import JobState, PendingReason, Plan, PreemptionReason, Team, WorkerPlacement
from gpupool.sim.metrics import PolicyResult, Recorder
from gpupool.sim.model import (
    IdleModel,
    SimConfig,
    build_nodes,
    sigterm_savers,
    slowdown,
    utilization_model,
    worker_shape,
)
from gpupool.sim.policy import Policy
from gpupool.sim.state import Cluster, SimJob
from gpupool.sim.trace import TraceJob

Progress = Callable[[int], None]


class Event(IntEnum):
    # At equal times: free GPUs before waking anyone up.
    COMPLETE = 0
    HOOK_DONE = 1
    WAKE = 2


class Engine:
    def __init__(
        self,
        trace: Sequence[TraceJob],
        teams: Sequence[Team],
        policy: Policy,
        config: SimConfig,
        *,
        progress: Progress | None = None,
    ) -> None:
        self.trace = trace
        self.policy = policy
        self.config = config
        self.progress = progress
        self.idle_after = {
            team.name: team.idle_reclaim.for_seconds
            for team in teams
            if team.idle_reclaim is not None
        }
        profiles = utilization_model(trace, config.seed)
        savers = sigterm_savers(trace, config.seed, config.sigterm_save)
        jobs = []
        for i, (entry, profile, saves) in enumerate(zip(trace, profiles, savers, strict=True)):
            per_worker, workers = worker_shape(entry.gpus, config.gpus_per_node)
            jobs.append(SimJob(entry, i, per_worker, workers, profile, saves))
        self.cluster = Cluster(config, build_nodes(config), tuple(teams), jobs)
        self.by_key = self.cluster.by_key
        self.recorder = Recorder(self.cluster)
        self.events: list[tuple[float, Event, int, int]] = []
        self.finished = 0
        self.plans = 0
        unknown = sorted({job.team for job in trace} - {team.name for team in teams})
        if unknown:
            raise ValueError(f"trace teams without settings: {', '.join(unknown)}")

    def run(self) -> PolicyResult:
        started = time.perf_counter()
        cluster, cycle = self.cluster, self.config.cycle_seconds
        arrivals = 0
        total = len(self.trace)
        while arrivals < total or self.events:
            upcoming = self.trace[arrivals].submitted if arrivals < total else math.inf
            first = min(upcoming, self.events[0][0] if self.events else math.inf)
            tick = math.ceil(first / cycle) * cycle
            changed = False
            while True:
                upcoming = self.trace[arrivals].submitted if arrivals < total else math.inf
                event_at = self.events[0][0] if self.events else math.inf
                if min(upcoming, event_at) > tick:
                    break
                if upcoming <= event_at:
                    self.recorder.advance(upcoming)
                    self._arrive(cluster.jobs[arrivals], upcoming)
                    arrivals += 1
                    changed = True
                else:
                    at, kind, index, run = heapq.heappop(self.events)
                    self.recorder.advance(at)
                    changed |= self._handle(kind, index, run, at)
            self.recorder.advance(tick)
            if changed and cluster.pending_count:
                self.plans += 1
                self._apply(self.policy.plan(cluster, tick), tick)
        return self.recorder.result(
            self.policy.name, cluster.jobs, self.plans, time.perf_counter() - started
        )

    # -- events ----------------------------------------------------------------

    def _push(self, at: float, kind: Event, job: SimJob | None = None) -> None:
        index, run = (-1, 0) if job is None else (job.index, job.run)
        heapq.heappush(self.events, (at, kind, index, run))

    def _arrive(self, job: SimJob, now: float) -> None:
        cluster = self.cluster
        team = job.team
        demand = cluster.held[team] + cluster.waiting_gpus[team] + job.gpus
        job.within_guarantee = demand <= cluster.guarantee(team)
        cluster.enqueue(job, now)

    def _handle(self, kind: Event, index: int, run: int, now: float) -> bool:
        """Handle one event; whether it may change the next plan."""
        if index < 0:
            return True
        job = self.cluster.jobs[index]
        if job.run != run:
            return False
        if kind is Event.COMPLETE:
            self._complete(job, now)
        elif kind is Event.HOOK_DONE:
            self._requeue_after_hook(job, now)
        return True

    def _complete(self, job: SimJob, now: float) -> None:
        self.recorder.ran(job, job.progress, job.trace.duration)
        self.cluster.release(job)
        job.progress = job.trace.duration
        job.finished_at = now
        job.run += 1
        self.finished += 1
        if self.progress is not None:
            self.progress(self.finished)

    def _requeue_after_hook(self, job: SimJob, now: float) -> None:
        self.cluster.release(job)
        job.run += 1
        job.run_start = None
        job.hook_checkpoint_at = now
        job.paused_at = now
        job.preempted_for = None
        self.cluster.enqueue(job, now)

    # -- the apply step --------------------------------------------------------

    def _apply(self, plan: Plan, now: float) -> None:
        if plan.resizes:
            raise RuntimeError("the simulated jobs are not elastic, yet the plan resizes")
        evicted = False
        for preemption in plan.preemptions:
            job = self.by_key[preemption.job]
            saves = job.saves_on_sigterm
            # The operator requeues a job reclaimed for idleness behind the jobs
            # submitted before it (docs/operator.md, "Idle reclaim").
            idle = preemption.reason is PreemptionReason.IDLE_RECLAIM
            requeued = now + (self.config.save_seconds if saves else 0.0)
            job.queued_at = requeued if idle else None
            if saves:
                self._save(job, now, preemption.for_job)
            else:
                self._evict(job, now)
                evicted = True
        for admission in plan.admissions:
            self._start(self.by_key[admission.job], admission.workers, now)
        reasons = {entry.reason for entry in plan.pending}
        if evicted or PendingReason.PREEMPTION_DEFERRED in reasons:
            self._push(now + self.config.cycle_seconds, Event.WAKE)
        if PendingReason.WAITING_FOR_MIN_RUNTIME in reasons:
            self._wake_when_old_enough(now)

    def _start(self, job: SimJob, workers: tuple[WorkerPlacement, ...], now: float) -> None:
        cluster = self.cluster
        cluster.dequeue(job, now)
        cluster.take(job, workers)
        job.resume(now, self.config.idle_model is IdleModel.PASSES)
        job.state = JobState.RUNNING
        job.run += 1
        job.run_start = now
        job.slowdown = slowdown(workers, cluster.racks, self.config.gpus_per_node, self.config)
        if job.first_start is None:
            job.first_start = now
        self.recorder.started(job)
        self._push(job.wall_time_at_work(job.trace.duration), Event.COMPLETE, job)
        self._wake_when_idle(job)

    def _wake_when_old_enough(self, now: float) -> None:
        """Plan again when the first young job passes the minimum runtime."""
        minimum = self.policy.min_runtime_seconds
        young = [
            job.run_start + minimum
            for job in self.cluster.running.values()
            if job.run_start is not None and job.run_start + minimum > now
        ]
        if young:
            self._push(min(young), Event.WAKE)

    def _wake_when_idle(self, job: SimJob) -> None:
        after = self.idle_after.get(job.team)
        profile = job.profile
        if not self.policy.idle_reclaim or after is None or job.progress >= profile.idle_end:
            return
        seen = job.wall_time_at_work(max(profile.idle_start, job.progress))
        seen += self.config.idle_seen_after
        until = job.wall_time_at_work(profile.idle_end) + self.config.publish_seconds
        if seen + after < until:
            self._push(seen + after, Event.WAKE, job)

    def _evict(self, job: SimJob, now: float) -> None:
        """SIGTERM kills the job now: it keeps the work of its last periodic checkpoint."""
        assert job.run_start is not None
        done = job.work_at(now)
        self.recorder.ran(job, job.progress, done)
        saved_at = job.periodic_checkpoint(now, self.config.checkpoint_interval) or job.run_start
        self.recorder.lost(job.gpus * (now - saved_at))
        job.progress += (saved_at - job.run_start) / job.slowdown
        job.preemptions += 1
        job.run += 1
        job.run_start = None
        job.paused_at = now
        self.cluster.release(job)
        self.cluster.enqueue(job, now)

    def _save(self, job: SimJob, now: float, for_job: str | None) -> None:
        """SIGTERM makes the job save: it keeps its GPUs until the save is written."""
        done = job.work_at(now)
        self.recorder.ran(job, job.progress, done)
        self.recorder.lost(job.gpus * self.config.save_seconds)
        job.progress = done
        job.state = JobState.PREEMPTING
        job.preempted_for = for_job
        job.preemptions += 1
        job.run += 1
        self._push(now + self.config.save_seconds, Event.HOOK_DONE, job)


def simulate(
    trace: Sequence[TraceJob],
    teams: Sequence[Team],
    policy: Policy,
    config: SimConfig,
    *,
    progress: Progress | None = None,
) -> PolicyResult:
    """Replay `trace` on `config.gpus` GPUs under `policy`."""
    return Engine(trace, teams, policy, config, progress=progress).run()
