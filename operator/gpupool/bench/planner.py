"""`gpupool bench planner`: time one full `plan()` over a synthetic cluster.

The generator builds a realistic worst-ish cycle: a cluster ~95% allocated, a mix of
shapes (single GPUs to 8-node gangs, elastic jobs, rack/NVLink constraints, data
locality), teams above and below their entitlement, idle jobs, failed nodes and
checkpointing victims, so every step of the planner does real work.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import replace
from typing import Any

import typer

from gpupool.planner import (
    IdleMode,
    IdleReclaimPolicy,
    Job,
    JobState,
    Node,
    PlacementPolicy,
    Snapshot,
    Team,
    TopologyLevel,
    WorkerPlacement,
    plan,
)
from gpupool.progress import Step, Steps

GPUS_PER_NODE = 8
NODES_PER_RACK = 16
NODES_PER_NVLINK_DOMAIN = 4
NOW = 1_000_000.0

# (weight, gpus per worker, min workers, max workers)
SHAPES = (
    (30, 1, 1, 1),
    (14, 2, 1, 1),
    (14, 4, 1, 1),
    (14, 8, 1, 1),
    (8, 8, 2, 2),
    (4, 8, 4, 4),
    (2, 8, 8, 8),
    (6, 2, 1, 4),
    (4, 8, 1, 4),
    (4, 4, 2, 2),
)


def synthetic_nodes(count: int, rng: random.Random) -> list[Node]:
    zones = max(1, count // 250)
    nodes = []
    for i in range(count):
        roll = rng.random()
        nodes.append(
            Node(
                name=f"node-{i:05d}",
                gpus=GPUS_PER_NODE,
                unhealthy_gpus=1 if roll < 0.005 else 0,
                ready=not 0.005 <= roll < 0.007,
                schedulable=not 0.007 <= roll < 0.01,
                rack=f"rack-{i // NODES_PER_RACK:04d}",
                zone=f"zone-{i * zones // count}",
                nvlink_domain=f"nvl-{i // NODES_PER_NVLINK_DOMAIN:05d}",
            )
        )
    return nodes


def synthetic_teams(count: int, capacity: int, rng: random.Random) -> list[Team]:
    weights = [rng.choice((1.0, 1.0, 2.0, 4.0)) for _ in range(count)]
    total = sum(weights)
    teams = []
    for i, weight in enumerate(weights):
        guaranteed = int(0.6 * capacity * weight / total)
        mode = i % 3
        teams.append(
            Team(
                name=f"team-{i:03d}",
                guaranteed_gpus=guaranteed,
                max_gpus=None if i % 2 else guaranteed * 3,
                weight=weight,
                decayed_usage=round(rng.uniform(0, 5000), 1),
                idle_reclaim=None
                if mode == 2
                else IdleReclaimPolicy(
                    5.0, 1800.0, IdleMode.ENFORCE if mode == 0 else IdleMode.REPORT
                ),
            )
        )
    return teams


def _placement(rng: random.Random, workers: int, nodes: int) -> PlacementPolicy:
    roll = rng.random()
    preferred: tuple[str, ...] = ()
    if rng.random() < 0.1:
        preferred = tuple(f"node-{rng.randrange(nodes):05d}" for _ in range(2))
    if workers == 1:
        return PlacementPolicy(preferred_nodes=preferred)
    if roll < 0.3:
        return PlacementPolicy(TopologyLevel.RACK, True, preferred)
    if roll < 0.6:
        return PlacementPolicy(TopologyLevel.RACK, False, preferred)
    if roll < 0.7:
        return PlacementPolicy(TopologyLevel.NVLINK_DOMAIN, False, preferred)
    return PlacementPolicy(preferred_nodes=preferred)


def synthetic_snapshot(
    nodes: int, jobs: int, teams: int = 50, seed: int = 0
) -> tuple[Snapshot, float]:
    """A cluster of `nodes` × 8 GPUs, `jobs` jobs across `teams`, and the `now` to plan at."""
    rng = random.Random(seed)
    node_list = synthetic_nodes(nodes, rng)
    usable = [node for node in node_list if node.ready and node.schedulable]
    capacity = sum(node.healthy_gpus for node in usable)
    team_list = synthetic_teams(teams, capacity, rng)
    free = {node.name: node.healthy_gpus for node in usable}
    order = [node.name for node in usable]
    target = int(capacity * 0.95)
    used = 0
    job_list: list[Job] = []
    running_keys: list[int] = []
    weights = [shape[0] for shape in SHAPES]
    for i in range(jobs):
        _, gpus, low, high = rng.choices(SHAPES, weights)[0]
        team = team_list[rng.randrange(teams)]
        submitted = NOW - rng.uniform(0, 172_800)
        hook = rng.random() < 0.5
        placement = _placement(rng, high, nodes)
        common: dict[str, Any] = {
            "key": f"{team.name}/job-{i:06d}",
            "team": team.name,
            "gpus_per_worker": gpus,
            "min_workers": low,
            "max_workers": high,
            "priority": rng.choice((0, 0, 0, 10, 50, 100)),
            "preemptible": rng.random() < 0.9,
            "submitted_at": submitted,
            "checkpoint_hook": hook,
            "placement": placement,
        }
        workers = rng.randint(low, high)
        placed: list[WorkerPlacement] = []
        if used + workers * gpus <= target:
            start = rng.randrange(len(order))
            for step in range(len(order)):
                name = order[(start + step) % len(order)]
                while free[name] >= gpus and len(placed) < workers:
                    free[name] -= gpus
                    placed.append(WorkerPlacement(name, gpus))
                if len(placed) == workers:
                    break
        if len(placed) == workers:
            used += workers * gpus
            started = submitted + rng.uniform(0, NOW - submitted)
            idle = rng.random() < 0.1
            running_keys.append(len(job_list))
            job_list.append(
                Job(
                    **common,
                    state=JobState.RUNNING,
                    workers=tuple(placed),
                    started_at=started,
                    last_checkpoint_at=started + (NOW - started) * rng.random(),
                    idle_since=NOW - rng.uniform(0, 7200) if idle else None,
                    utilization=1.0 if idle else rng.uniform(20, 100),
                )
            )
        else:
            for worker in placed:
                free[worker.node] += worker.gpus
            job_list.append(Job(**common))
    pending = [job for job in job_list if job.state is JobState.PENDING]
    # A few victims still checkpointing for pending jobs of an earlier cycle.
    for index in running_keys[: len(running_keys) // 200]:
        if pending:
            job_list[index] = replace(
                job_list[index], state=JobState.PREEMPTING, preempted_for=rng.choice(pending).key
            )
    return Snapshot(tuple(node_list), tuple(team_list), tuple(job_list)), NOW


def time_plan(
    snapshot: Snapshot, now: float, iterations: int, step: Step | None = None
) -> tuple[list[float], list[float]]:
    """Milliseconds per full `plan()` call, one per iteration: wall clock, and the
    process's CPU time (what the planner costs on a machine other programs share)."""
    wall, cpu = [], []
    for _ in range(iterations):
        start, start_cpu = time.perf_counter(), time.process_time()
        plan(snapshot, now)
        cpu.append((time.process_time() - start_cpu) * 1000.0)
        wall.append((time.perf_counter() - start) * 1000.0)
        if step is not None:
            step.advance()
    return wall, cpu


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def planner(
    nodes: int = typer.Option(1000, help="GPU nodes (8 GPUs each)."),
    jobs: int = typer.Option(10_000, help="Jobs, running and pending."),
    teams: int = typer.Option(50, help="Teams (TeamQuotas)."),
    iterations: int = typer.Option(30, help="Timed plan() calls."),
    seed: int = typer.Option(0, help="Generator seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time the planner on a synthetic cluster: p50/p99 of a full plan()."""
    steps = Steps()
    with steps.step(f"building a synthetic cluster: {nodes} nodes, {jobs} jobs, {teams} teams"):
        snapshot, now = synthetic_snapshot(nodes, jobs, teams, seed)
    with steps.step("warming up (2 plans)"):
        time_plan(snapshot, now, 2)
    with steps.step(f"timing {iterations} plans", total=iterations) as step:
        timings, cpu = time_plan(snapshot, now, iterations, step)
    result = {
        "nodes": nodes,
        "jobs": jobs,
        "teams": teams,
        "iterations": iterations,
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(percentile(timings, 0.99), 2),
        "cpu_p50_ms": round(statistics.median(cpu), 2),
        "cpu_p99_ms": round(percentile(cpu, 0.99), 2),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    running = sum(1 for job in snapshot.jobs if job.state is JobState.RUNNING)
    typer.echo(
        f"{nodes} nodes × {GPUS_PER_NODE} GPUs, {jobs} jobs ({running} running), {teams} teams: "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {iterations} plans "
        f"(CPU time: p50 {result['cpu_p50_ms']} ms, p99 {result['cpu_p99_ms']} ms)"
    )
