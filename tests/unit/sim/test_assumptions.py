"""The assumptions every policy shares: idle stretches, idle detection, SIGTERM,
and finish-time fairness measured on a run of each team alone."""

from __future__ import annotations

import pytest

from gpupool.planner import JobState
from gpupool.sim import SimConfig, TraceJob
from gpupool.sim.fairness import apply_finish_time_fairness, jct_alone
from gpupool.sim.model import Utilization, sigterm_savers
from gpupool.sim.state import SimJob

from .synthetic import run, teams, trace


def _job(profile: Utilization) -> SimJob:
    return SimJob(TraceJob("a/job-0", "a", 0.0, 10_000.0, 8), 0, 8, 1, profile)


@pytest.mark.parametrize(("passes", "progress"), [(False, 600.0), (True, 1600.0)])
def test_an_idle_stretch_is_owed_or_passes_while_the_job_is_off_its_gpus(
    passes: bool, progress: float
) -> None:
    # Idle over [0, 3600) of its work; it lost its GPUs at 600 s of work (t=1000)
    # and restarts at t=2000.
    job = _job(Utilization(50.0, 0.0, 3600.0))
    job.progress, job.paused_at = 600.0, 1000.0
    job.resume(2000.0, idle_passes=passes)
    assert job.progress == progress


def test_idleness_is_seen_through_the_agents_window_and_publishing_period() -> None:
    # Busy for its first 1000 s of work, idle until 2000 s; running since t=0.
    job = _job(Utilization(50.0, 1000.0, 2000.0))
    job.state, job.run_start = JobState.RUNNING, 0.0
    seen_after, ends_after = 70.0, 10.0
    assert job.idle_since(1069.0, seen_after, ends_after) is None
    assert job.idle_since(1070.0, seen_after, ends_after) == 1070.0
    assert job.idle_since(2009.0, seen_after, ends_after) == 1070.0
    assert job.idle_since(2010.0, seen_after, ends_after) is None


def test_the_same_jobs_save_on_sigterm_under_every_fraction() -> None:
    jobs = trace(*[("a", float(i), 100.0, 1) for i in range(400)])
    half = sigterm_savers(jobs, 0, 0.5)
    assert 150 < sum(half) < 250
    assert sigterm_savers(jobs, 0, 0.5) == half
    more = sigterm_savers(jobs, 0, 0.8)
    assert all(m for h, m in zip(half, more, strict=True) if h)
    assert not any(sigterm_savers(jobs, 0, 0.0))
    assert all(sigterm_savers(jobs, 0, 1.0))


def test_finish_time_fairness_compares_each_team_with_itself_alone() -> None:
    # Alone on its 8 guaranteed GPUs, a runs its two 1-hour jobs one after the
    # other (avg JCT 5400 s); borrowing b's idle node both run at once (3600 s):
    # ρ(a) = 2/3. b comes later and never waits either way: ρ(b) = 1. static is
    # the run alone.
    jobs = trace(("a", 0, 3600, 8), ("a", 0, 3600, 8), ("b", 7200, 600, 8))
    settings = teams(a=8, b=8)
    config = SimConfig(gpus=16, cycle_seconds=30)
    alone = jct_alone(jobs, settings, config)
    assert alone == {"a": 5400.0, "b": 600.0}
    borrow, _ = run("borrow", jobs, settings, config)
    apply_finish_time_fairness(borrow, alone)
    assert borrow.rho == pytest.approx({"a": 3600 / 5400, "b": 1.0})
    assert borrow.max_rho == 1.0
    static, _ = run("static", jobs, settings, config)
    apply_finish_time_fairness(static, alone)
    assert static.rho == {"a": 1.0, "b": 1.0}
    assert static.jain_rho == 1.0
