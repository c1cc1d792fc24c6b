"""`gpupool bench forecast-accuracy`: how right the start-time forecast is, on a trace.

The trace is replayed through the simulator under the gpupool policy. At each sampled
job's submission (the first plan after it arrived) the forecast the operator would
have shown is recorded: planned forward from the whole cluster as it stands, with the
durations the operator would know — `learned` (the median of the team's finished,
never preempted runs of that shape; else of any shape) or `declared` (every job
declares its trace duration, the best a user can do). Compared with when the job
really started in the replay. New submissions, idle stretches and rack slowdowns are
what the forecast cannot know; they are the error.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import typer

from gpupool.forecast import Duration, ForecastSettings, History, Run, Source, forecast
from gpupool.planner import Plan, Snapshot
from gpupool.sim.engine import Engine
from gpupool.sim.gpupool_policy import GpupoolPolicy
from gpupool.sim.model import SimConfig
from gpupool.sim.state import Cluster, SimJob
from gpupool.sim.teams import derive_teams
from gpupool.sim.trace import load_trace

# Only jobs that waited longer than this are scored (shorter waits are all "now").
MIN_WAIT_SECONDS = 600.0


class RecordingPolicy:
    """The gpupool policy; at sampled submissions, also the forecast for that job."""

    def __init__(
        self, inner: GpupoolPolicy, durations: str, every: int, settings: ForecastSettings
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.min_runtime_seconds = inner.min_runtime_seconds
        self.idle_reclaim = inner.idle_reclaim
        self.durations = durations
        self.every = every
        self.settings = settings
        self.seen: set[int] = set()
        # Job key -> (submitted, forecast start or None).
        self.forecasts: dict[str, tuple[float, float | None]] = {}

    def plan(self, cluster: Cluster, now: float) -> Plan:
        arrived = [
            job
            for job in cluster.pending_jobs()
            if job.index not in self.seen and job.first_start is None
        ]
        self.seen.update(job.index for job in arrived)
        sampled = [job for job in arrived if job.index % self.every == 0]
        if sampled:
            result = forecast(
                self._snapshot(cluster, now), now, self._durations(cluster), self.settings
            )
            for job in sampled:
                estimate = result.get(job.key)
                self.forecasts[job.key] = (
                    job.trace.submitted,
                    None if estimate is None else estimate.start,
                )
        return self.inner.plan(cluster, now)

    def _snapshot(self, cluster: Cluster, now: float) -> Snapshot:
        """Everything the operator's snapshot holds: every running and pending job."""
        jobs = [self.inner._view(job, cluster, now) for job in cluster.running.values()]
        jobs += [self.inner._view(job, cluster, now) for job in cluster.pending_jobs()]
        return Snapshot(cluster.nodes, self.inner.teams, tuple(jobs), self.inner.config)

    def _durations(self, cluster: Cluster) -> dict[str, Duration]:
        live = [*cluster.running.values(), *cluster.pending_jobs()]
        if self.durations == "declared":
            return {job.key: Duration(job.trace.duration, Source.DECLARED) for job in live}
        history = History(_runs(cluster.jobs))
        durations = {}
        for job in live:
            learned = history.expected(job.team, job.gpus_per_worker, job.workers_wanted)
            if learned is not None:
                durations[job.key] = learned
        return durations


def _runs(jobs: list[SimJob]) -> list[Run]:
    done = [
        job
        for job in jobs
        if job.finished_at is not None and job.first_start is not None and job.preemptions == 0
    ]
    done.sort(key=lambda job: job.finished_at or 0.0)
    return [
        Run(
            job.team,
            job.gpus_per_worker,
            job.workers_wanted,
            (job.finished_at or 0.0) - (job.first_start or 0.0),
        )
        for job in done
    ]


def score(
    forecasts: dict[str, tuple[float, float | None]], jobs: list[SimJob]
) -> dict[str, object]:
    """Median and p90 absolute error of the forecasts of jobs that waited over 10 min,
    and the median error as a share of the wait."""
    errors, shares, unknown, scored = [], [], 0, 0
    for job in jobs:
        if job.key not in forecasts or job.first_start is None:
            continue
        submitted, estimate = forecasts[job.key]
        wait = job.first_start - submitted
        if wait <= MIN_WAIT_SECONDS:
            continue
        scored += 1
        if estimate is None:
            unknown += 1
            continue
        error = abs(estimate - job.first_start)
        errors.append(error)
        shares.append(error / wait)
    errors.sort()
    return {
        "forecast": len(forecasts),
        "waited_over_10_min": scored,
        "without_estimate": unknown,
        "median_abs_error_min": round(statistics.median(errors) / 60, 1) if errors else None,
        "p90_abs_error_min": round(errors[int(0.9 * (len(errors) - 1))] / 60, 1)
        if errors
        else None,
        "median_error_share_of_wait": round(statistics.median(shares), 3) if shares else None,
    }


def forecast_accuracy(
    trace: Path = typer.Option(..., "--trace", exists=True, dir_okay=False, help="Trace CSV."),
    gpus: int = typer.Option(..., "--gpus", min=1, help="GPUs in the simulated cluster."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N jobs."),
    every: int = typer.Option(10, "--every", min=1, help="Forecast every N-th submission."),
    durations: str = typer.Option("learned", "--durations", help="learned or declared."),
) -> None:
    """Replay a trace; compare each sampled job's forecast start with its real start."""
    if durations not in ("learned", "declared"):
        raise typer.BadParameter("--durations: learned or declared")
    jobs = load_trace(trace, limit)
    teams = derive_teams(jobs, gpus)
    policy = RecordingPolicy(GpupoolPolicy(teams), durations, every, ForecastSettings())
    engine = Engine(jobs, teams, policy, SimConfig(gpus=gpus))
    engine.run()
    figures: dict[str, object] = {"trace": trace.name, "jobs": len(jobs), "gpus": gpus}
    figures |= {"durations": durations, **score(policy.forecasts, engine.cluster.jobs)}
    typer.echo(json.dumps(figures))
