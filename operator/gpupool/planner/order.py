"""Queue order: a job its team's guarantee covers before any job that would go
beyond its team's guarantee (as Kueue serves requests under nominal quota before
borrowing ones); then teams furthest below entitlement first; within a team,
effective priority (priority plus aging), then submission time, then name."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence

from gpupool.planner.quota import TeamLedger
from gpupool.planner.snapshot import Job, PlannerConfig

SECONDS_PER_HOUR = 3600.0


def effective_priority(job: Job, now: float, config: PlannerConfig) -> float:
    """Declared priority raised by time waited, so no job starves behind newer ones.

    Aging only orders the queue; preemption compares declared priorities, so a job
    that merely waited long never evicts a job its user ranked higher.
    """
    waited = max(0.0, now - job.submitted_at)
    return job.priority + config.aging_priority_per_hour * waited / SECONDS_PER_HOUR


def sort_queue(jobs: Sequence[Job], now: float, config: PlannerConfig) -> list[Job]:
    """Highest effective priority first, then earliest submission, then name.

    Decorated once (thousands of jobs a cycle); the index keeps the sort stable and
    never lets it compare two jobs.
    """
    keyed = [
        (-effective_priority(job, now, config), job.submitted_at, job.key, i, job)
        for i, job in enumerate(jobs)
    ]
    keyed.sort()
    return [entry[4] for entry in keyed]


ServiceKey = tuple[bool, tuple[int, float, str]]


def _service_key(ledger: TeamLedger, head: Job) -> ServiceKey:
    """Within guarantee first (the guarantee is the promise), then the team's key."""
    beyond = ledger.allocated + head.min_gpus > ledger.team.guaranteed_gpus
    return (beyond, ledger.service_key())


def serve_in_order(
    queues: Mapping[str, list[Job]], ledgers: Mapping[str, TeamLedger]
) -> Iterator[Job]:
    """Yield pending jobs one at a time, always from the team whose head its
    guarantee covers, else furthest below its entitlement, *as the cycle's decisions
    move it* (read again after each job)."""
    heap = [(_service_key(ledgers[team], queues[team][0]), team) for team in queues if queues[team]]
    heapq.heapify(heap)
    cursor = dict.fromkeys(queues, 0)
    while heap:
        key, team = heapq.heappop(heap)
        queue = queues[team]
        index = cursor[team]
        ledger = ledgers[team]
        while index < len(queue):
            yield queue[index]
            index += 1
            if index >= len(queue):
                break
            now_key = _service_key(ledger, queue[index])
            if now_key != key:
                heapq.heappush(heap, (now_key, team))
                break
            # Unchanged (the job was not admitted): the team is still first in line,
            # so keep serving it without a round trip through the heap.
        cursor[team] = index
