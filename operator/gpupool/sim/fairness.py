"""Finish-time fairness, measured independently of any policy's own formula.

Themis (Mahajan et al., NSDI '20) calls a shared cluster fair to an application
when its finish time shared is no worse than on its own 1/N of the cluster:
ρ = T_shared / T_alone. Here the application is a team and its share is its
guarantee: for every team, its jobs alone are replayed on the same nodes with
nothing but its own guaranteed GPUs (Kueue with `nominalQuota` = the guarantee and
no cohort: FIFO, BestEffort, first fit), and

    ρ(team) = the team's average JCT under the policy ÷ its average JCT alone.

ρ < 1: the team is better off sharing; ρ > 1: sharing cost it. Reported per team,
with the worst (max ρ) and Jain's index over the teams' ρ. The run alone has no
preemptions, so neither the idle model nor SIGTERM handling changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from gpupool.planner import Team
from gpupool.sim.engine import simulate
from gpupool.sim.kueue_policy import KueuePolicy
from gpupool.sim.metrics import PolicyResult, jain
from gpupool.sim.model import SimConfig
from gpupool.sim.trace import TraceJob


def jct_alone(
    trace: Sequence[TraceJob],
    teams: Sequence[Team],
    config: SimConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Each team's average JCT with the cluster's nodes to itself, within its guarantee."""
    alone: dict[str, float] = {}
    for team in teams:
        jobs = [job for job in trace if job.team == team.name]
        if not jobs or team.guaranteed_gpus <= 0:
            continue
        if progress is not None:
            progress(team.name)
        own = [replace(team, max_gpus=None)]
        result = simulate(jobs, own, KueuePolicy("alone", own, borrowing=False), config)
        if result.jobs == len(jobs):
            alone[team.name] = result.avg_jct_s
    return alone


def apply_finish_time_fairness(result: PolicyResult, alone: dict[str, float]) -> None:
    """Fill in the result's ρ per team, max ρ and Jain's index over ρ."""
    rho = {
        team: jct / alone[team]
        for team, jct in result.team_avg_jct_s.items()
        if alone.get(team, 0.0) > 0.0
    }
    result.rho = rho
    result.max_rho = max(rho.values(), default=0.0)
    result.jain_rho = jain(list(rho.values()))
