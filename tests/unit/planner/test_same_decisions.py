"""The planner decides exactly as it did when these plans were recorded.

Seeded synthetic clusters (the benchmark's generator, at small sizes and under several
configurations) are planned over a few cycles, each cycle's plan applied the way the
operator would; the digest of every plan's JSON must match the one recorded in
`same_decisions.json`. A speed-up of the planner must not change a single admission,
victim, reason or message. A deliberate change of policy re-records the file:

    GPUPOOL_RECORD_PLANS=1 .venv/bin/pytest tests/unit/planner/test_same_decisions.py
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from gpupool.bench.planner import synthetic_snapshot
from gpupool.planner import (
    Job,
    JobState,
    Plan,
    PlannerConfig,
    ResizeKind,
    Snapshot,
    plan,
)

RECORD = Path(__file__).with_name("same_decisions.json")
CYCLES = 4
CYCLE_SECONDS = 60.0

CONFIGS = {
    "default": PlannerConfig(),
    "no-preemption": PlannerConfig(preemption_enabled=False),
    "budget-2": PlannerConfig(max_preemptors_per_cycle=2, min_runtime_seconds=3600.0),
    "no-idle-no-grow": PlannerConfig(idle_reclaim_enabled=False, elastic_grow_enabled=False),
}
SIZES = ((6, 30, 2), (12, 90, 4), (30, 260, 7), (60, 700, 12))
SEEDS = range(6)
CASES = [
    f"{config}-{nodes}x{jobs}x{teams}-s{seed}"
    for config in CONFIGS
    for nodes, jobs, teams in SIZES
    for seed in SEEDS
]


def advance(snapshot: Snapshot, result: Plan, now: float) -> Snapshot:
    """The snapshot one cycle later, as the executor leaves it: victims that were
    checkpointing are back in the queue, this plan's victims checkpoint, admissions
    and grows run, shrunk workers are being released."""
    admitted = {entry.job: entry for entry in result.admissions}
    preempted = {entry.job: entry for entry in result.preemptions}
    grows = {r.job: r for r in result.resizes if r.kind is ResizeKind.GROW}
    shrinks = {r.job: r for r in result.resizes if r.kind is ResizeKind.SHRINK}
    jobs: list[Job] = []
    for job in snapshot.jobs:
        if job.state is JobState.PREEMPTING:
            job = replace(job, state=JobState.PENDING, workers=(), releasing=(), preempted_for=None)
        elif job.releasing:
            kept = list(job.workers)
            for worker in job.releasing:
                kept.remove(worker)
            job = replace(job, workers=tuple(kept), releasing=(), preempted_for=None)
        if job.key in admitted:
            job = replace(
                job, state=JobState.RUNNING, workers=admitted[job.key].workers, started_at=now
            )
        elif job.key in preempted:
            job = replace(job, state=JobState.PREEMPTING, preempted_for=preempted[job.key].for_job)
        elif job.key in shrinks:
            shrink = shrinks[job.key]
            job = replace(job, releasing=shrink.workers, preempted_for=shrink.for_job)
        if job.key in grows:
            job = replace(job, workers=job.workers + grows[job.key].workers)
        jobs.append(job)
    return replace(snapshot, jobs=tuple(jobs))


def disturb(snapshot: Snapshot, cycle: int) -> Snapshot:
    """What happens between cycles besides the plan: a third of the running jobs
    finish (room to admit and grow into), then some nodes fail."""
    if cycle == 1:
        running = [job.key for job in snapshot.jobs if job.state is JobState.RUNNING]
        done = set(running[::3])
        return replace(snapshot, jobs=tuple(j for j in snapshot.jobs if j.key not in done))
    if cycle == 2:
        nodes = tuple(
            replace(node, ready=False) if i % 9 == 4 else node
            for i, node in enumerate(snapshot.nodes)
        )
        return replace(snapshot, nodes=nodes)
    return snapshot


def digest(case: str) -> str:
    config, size, seed = case.rsplit("-", 2)
    nodes, jobs, teams = (int(part) for part in size.split("x"))
    snapshot, now = synthetic_snapshot(nodes, jobs, teams, int(seed[1:]))
    # The last team has no TeamQuota: its jobs are planned as orphans.
    snapshot = replace(snapshot, config=CONFIGS[config], teams=snapshot.teams[:-1])
    hashed = hashlib.sha256()
    for cycle in range(CYCLES):
        snapshot = disturb(snapshot, cycle)
        result = plan(snapshot, now)
        hashed.update(result.to_json().encode())
        snapshot = advance(snapshot, result, now)
        now += CYCLE_SECONDS
    return hashed.hexdigest()


def recorded() -> dict[str, str]:
    data: dict[str, str] = json.loads(RECORD.read_text())
    return data


def test_the_record_covers_every_case() -> None:
    if os.environ.get("GPUPOOL_RECORD_PLANS"):
        RECORD.write_text(json.dumps({case: digest(case) for case in CASES}, indent=1) + "\n")
    assert sorted(recorded()) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_plans_are_the_recorded_ones(case: str) -> None:
    assert digest(case) == recorded()[case]
