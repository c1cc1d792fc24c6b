"""Queue order: teams furthest below entitlement first; within a team, effective
priority (priority plus aging), then submission time, then name."""

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


def job_order_key(job: Job, now: float, config: PlannerConfig) -> tuple[float, float, str]:
    return (-effective_priority(job, now, config), job.submitted_at, job.key)


def sort_queue(jobs: Sequence[Job], now: float, config: PlannerConfig) -> list[Job]:
    return sorted(jobs, key=lambda job: job_order_key(job, now, config))


def serve_in_order(
    queues: Mapping[str, list[Job]], ledgers: Mapping[str, TeamLedger]
) -> Iterator[Job]:
    """Yield pending jobs one at a time, always from the team furthest below its
    entitlement *as the cycle's decisions move it* (read again after each job)."""
    heap = [(ledgers[team].service_key(), team) for team in queues if queues[team]]
    heapq.heapify(heap)
    cursor = dict.fromkeys(queues, 0)
    while heap:
        key, team = heapq.heappop(heap)
        queue = queues[team]
        index = cursor[team]
        while index < len(queue):
            yield queue[index]
            index += 1
            now_key = ledgers[team].service_key()
            if now_key != key:
                if index < len(queue):
                    heapq.heappush(heap, (now_key, team))
                break
            # Unchanged (the job was not admitted): the team is still first in line,
            # so keep serving it without a round trip through the heap.
        cursor[team] = index
