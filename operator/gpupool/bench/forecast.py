"""`gpupool bench forecast`: what forecasting every pending job costs at scale.

The planner benchmark's synthetic cluster (≈95 % allocated, thousands waiting), with
an expected duration for most jobs: 60 % declared, 30 % learned from history, 10 %
unknown; lengths log-normal around 4 h. Times one full `forecast()`, the work the
operator does at each forecast refresh.
"""

from __future__ import annotations

import json
import random
import statistics
import time

import typer

from gpupool.bench.planner import synthetic_snapshot
from gpupool.forecast import Duration, ForecastSettings, Source, forecast
from gpupool.planner import JobState, Snapshot

MEDIAN_HOURS = 4.0


def synthetic_durations(snapshot: Snapshot, seed: int) -> dict[str, Duration]:
    rng = random.Random(seed)
    durations = {}
    for job in snapshot.jobs:
        roll = rng.random()
        seconds = 3600.0 * MEDIAN_HOURS * rng.lognormvariate(0.0, 1.0)
        if roll < 0.6:
            durations[job.key] = Duration(seconds, Source.DECLARED)
        elif roll < 0.9:
            durations[job.key] = Duration(seconds, Source.LEARNED, 10, seconds / 2, seconds * 2)
    return durations


def forecast_bench(
    nodes: int = typer.Option(1000, help="GPU nodes (8 GPUs each)."),
    jobs: int = typer.Option(10_000, help="Jobs, running and pending."),
    teams: int = typer.Option(50, help="Teams (TeamQuotas)."),
    iterations: int = typer.Option(3, help="Timed forecasts."),
    plan_budget: int = typer.Option(
        ForecastSettings().plan_budget, help="Plans × jobs a forecast may spend."
    ),
    seed: int = typer.Option(0, help="Generator seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time a forecast of every pending job: seconds of CPU per refresh."""
    snapshot, now = synthetic_snapshot(nodes, jobs, teams, seed)
    durations = synthetic_durations(snapshot, seed)
    settings = ForecastSettings(plan_budget=plan_budget)
    wall, cpu = [], []
    result = None
    for _ in range(iterations):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = forecast(snapshot, now, durations, settings)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    assert result is not None
    pending = sum(1 for job in snapshot.jobs if job.state is JobState.PENDING)
    waits = sorted(
        estimate.start - now for estimate in result.estimates.values() if estimate.start is not None
    )
    figures = {
        "nodes": nodes,
        "jobs": jobs,
        "pending": pending,
        "estimated": len(waits),
        "plans": result.plans,
        "looked_ahead_hours": round((result.reached - now) / 3600.0, 1),
        "median_wait_hours": round(statistics.median(waits) / 3600.0, 2) if waits else None,
        "cpu_seconds": round(statistics.median(cpu), 3),
        "wall_seconds": round(statistics.median(wall), 3),
    }
    if as_json:
        typer.echo(json.dumps(figures))
        return
    typer.echo(
        f"{nodes} nodes, {jobs} jobs ({pending} pending): forecast in "
        f"{figures['cpu_seconds']} s CPU ({figures['wall_seconds']} s wall), {result.plans} "
        f"plans looking {figures['looked_ahead_hours']} h ahead; {len(waits)} pending jobs "
        f"got an estimate (median wait {figures['median_wait_hours']} h)"
    )
