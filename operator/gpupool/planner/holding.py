"""A running job's GPUs as the cycle's decisions change them (per worker, by node)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupool.planner.snapshot import Job, WorkerPlacement


def lost_seconds(job: Job, now: float) -> float:
    """Seconds of work a preemption would throw away.

    Work since the last checkpoint (or since the job resumed, if later) is lost,
    unless a checkpoint hook saves it: then only the hook's own run is lost.
    """
    since = job.started_at if job.started_at is not None else job.submitted_at
    if job.last_checkpoint_at is not None and job.last_checkpoint_at > since:
        since = job.last_checkpoint_at
    elapsed = max(0.0, now - since)
    return min(elapsed, job.checkpoint_timeout_seconds) if job.checkpoint_hook else elapsed


@dataclass(slots=True, eq=False)
class Holding:
    """A running job: which of its workers still count, and what this cycle did to it.

    `nodes[i]` is the node index of worker i (-1: a node the snapshot does not know);
    `active[i]` is False for a worker already being released or removed this cycle.
    """

    job: Job
    nodes: list[int]
    active: list[bool]
    failed: bool = False
    preempted: bool = False
    shrunk: list[int] = field(default_factory=list)
    grown: list[WorkerPlacement] = field(default_factory=list)

    @classmethod
    def of(cls, job: Job, index: dict[str, int]) -> Holding:
        active = [True] * len(job.workers)
        for released in job.releasing:
            for i, worker in enumerate(job.workers):
                if active[i] and worker.node == released.node and worker.gpus == released.gpus:
                    active[i] = False
                    break
        return cls(job, [index.get(worker.node, -1) for worker in job.workers], active)

    @property
    def team(self) -> str:
        return self.job.team

    @property
    def active_workers(self) -> int:
        return sum(self.active) + len(self.grown)

    @property
    def active_gpus(self) -> int:
        held = sum(w.gpus for w, on in zip(self.job.workers, self.active, strict=True) if on)
        return held + sum(w.gpus for w in self.grown)

    @property
    def releasing_in_flight(self) -> bool:
        return bool(self.job.releasing)

    @property
    def shrinkable_workers(self) -> int:
        return self.active_workers - self.job.min_workers
