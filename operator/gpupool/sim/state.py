"""The simulated cluster: every job's progress, and who holds which GPUs.

The engine mutates it as events happen and plans are applied; policies only read
it. A job's work is in seconds of its trace duration; running spread out, it gains
work at 1 / slowdown per second.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from gpupool.planner import Job, JobState, Node, Team, WorkerPlacement
from gpupool.sim.model import SimConfig, Utilization
from gpupool.sim.trace import TraceJob


@dataclass(slots=True, eq=False)
class SimJob:
    trace: TraceJob
    index: int
    gpus_per_worker: int
    workers_wanted: int
    profile: Utilization
    # Whether it handles SIGTERM by saving (see `model`): the same under every policy.
    saves_on_sigterm: bool = False
    priority: int = 0
    state: JobState = JobState.PENDING
    workers: tuple[WorkerPlacement, ...] = ()
    # Work saved so far (seconds of trace duration) as of `run_start`.
    progress: float = 0.0
    run_start: float | None = None
    slowdown: float = 1.0
    # Bumped whenever the job starts or stops, so stale events are recognised.
    run: int = 0
    first_start: float | None = None
    finished_at: float | None = None
    # Checkpoint written on SIGTERM when the job was last preempted.
    hook_checkpoint_at: float | None = None
    preempted_for: str | None = None
    preemptions: int = 0
    pending_since: float = 0.0
    # When it last lost its GPUs (under `IdleModel.PASSES` idle stretches go on).
    paused_at: float | None = None
    queued_seconds: float = 0.0
    # When it rejoined the queue after an idle reclaim (the operator's `queued_since`).
    queued_at: float | None = None
    within_guarantee: bool = False
    # The planner's view, rebuilt only when what it shows changes.
    view: Job | None = None
    view_key: tuple[object, ...] = ()

    @property
    def key(self) -> str:
        return self.trace.key

    @property
    def team(self) -> str:
        return self.trace.team

    @property
    def gpus(self) -> int:
        return self.trace.gpus

    @property
    def shape(self) -> tuple[int, int]:
        return (self.gpus_per_worker, self.workers_wanted)

    @property
    def order(self) -> tuple[float, int]:
        return (self.queued_at if self.queued_at is not None else self.trace.submitted, self.index)

    def work_at(self, now: float) -> float:
        """Work done by `now`, saved or not."""
        if self.run_start is None or self.state is not JobState.RUNNING:
            return self.progress
        return self.progress + (now - self.run_start) / self.slowdown

    def periodic_checkpoint(self, now: float, interval: float) -> float | None:
        """Wall time of the last periodic checkpoint of the current run, if any."""
        if self.run_start is None or interval <= 0:
            return None
        count = int((now - self.run_start) // interval)
        return self.run_start + count * interval if count else None

    def idle_since(self, now: float, seen_after: float, ends_after: float) -> float | None:
        """When the operator saw the current run go idle, if it still looks idle now.

        The agent's window reports a stretch `seen_after` seconds after it began
        (never before the run began) and `ends_after` seconds after it ended.
        """
        if self.run_start is None or self.state is not JobState.RUNNING:
            return None
        profile = self.profile
        if profile.idle_end <= self.progress:
            return None
        seen = self.wall_time_at_work(max(profile.idle_start, self.progress)) + seen_after
        until = self.wall_time_at_work(profile.idle_end) + ends_after
        return seen if seen <= now < until else None

    def resume(self, now: float, idle_passes: bool) -> None:
        """Before a restart: with `idle_passes`, an idle stretch it was paused in went
        on meanwhile; otherwise the rest of the stretch is still ahead of it."""
        profile = self.profile
        paused = self.paused_at
        self.paused_at = None
        if not idle_passes or paused is None:
            return
        if profile.idle_start <= self.progress < profile.idle_end:
            self.progress = min(profile.idle_end, self.progress + now - paused)

    def wall_time_at_work(self, work: float) -> float:
        """When the current run reaches `work` seconds of work."""
        assert self.run_start is not None
        return self.run_start + (work - self.progress) * self.slowdown


@dataclass(slots=True)
class Cluster:
    config: SimConfig
    nodes: tuple[Node, ...]
    teams: tuple[Team, ...]
    jobs: list[SimJob]
    free: list[int] = field(default_factory=list)
    node_index: dict[str, int] = field(default_factory=dict)
    by_key: dict[str, SimJob] = field(default_factory=dict)
    racks: dict[str, str | None] = field(default_factory=dict)
    # Pending jobs per team in submission order; running (incl. preempting) by key.
    pending: dict[str, list[SimJob]] = field(default_factory=dict)
    # The same, split by shape (GPUs per worker, workers): FIFO within a shape.
    by_shape: dict[str, dict[tuple[int, int], list[SimJob]]] = field(default_factory=dict)
    running: dict[str, SimJob] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    waiting_gpus: dict[str, int] = field(default_factory=dict)
    pending_count: int = 0
    # Bumped on every change of who holds or waits for GPUs (for the metrics).
    version: int = 0

    def __post_init__(self) -> None:
        self.free = [node.gpus for node in self.nodes]
        self.node_index = {node.name: i for i, node in enumerate(self.nodes)}
        self.racks = {node.name: node.rack for node in self.nodes}
        self.by_key = {job.key: job for job in self.jobs}
        for team in self.teams:
            self.pending.setdefault(team.name, [])
            self.held.setdefault(team.name, 0)
            self.waiting_gpus.setdefault(team.name, 0)

    @property
    def total_gpus(self) -> int:
        return sum(node.gpus for node in self.nodes)

    def guarantee(self, team: str) -> int:
        return next((t.guaranteed_gpus for t in self.teams if t.name == team), 0)

    def enqueue(self, job: SimJob, now: float) -> None:
        job.state = JobState.PENDING
        job.pending_since = now
        queue = self.pending.setdefault(job.team, [])
        bisect.insort(queue, job, key=lambda queued: queued.order)
        shapes = self.by_shape.setdefault(job.team, {})
        bisect.insort(shapes.setdefault(job.shape, []), job, key=lambda queued: queued.order)
        self.waiting_gpus[job.team] = self.waiting_gpus.get(job.team, 0) + job.gpus
        self.pending_count += 1
        self.version += 1

    def dequeue(self, job: SimJob, now: float) -> None:
        for queue in (self.pending[job.team], self.by_shape[job.team][job.shape]):
            queue.pop(bisect.bisect_left(queue, job.order, key=lambda queued: queued.order))
        job.queued_seconds += now - job.pending_since
        self.waiting_gpus[job.team] -= job.gpus
        self.pending_count -= 1
        self.version += 1

    def take(self, job: SimJob, workers: tuple[WorkerPlacement, ...]) -> None:
        for worker in workers:
            node = self.node_index[worker.node]
            if self.free[node] < worker.gpus:
                raise RuntimeError(f"{job.key}: node {worker.node} over-committed")
            self.free[node] -= worker.gpus
        job.workers = workers
        self.running[job.key] = job
        self.held[job.team] = self.held.get(job.team, 0) + job.gpus
        self.version += 1

    def release(self, job: SimJob) -> None:
        for worker in job.workers:
            self.free[self.node_index[worker.node]] += worker.gpus
        job.workers = ()
        del self.running[job.key]
        self.held[job.team] -= job.gpus
        self.version += 1

    def pending_jobs(self) -> Iterator[SimJob]:
        for queue in self.pending.values():
            yield from queue
