"""Tiny hand-written traces: `trace(("a", 0, 3600, 8), ...)` = (team, submitted at,
duration, GPUs) per job, keyed `<team>/job-<i>` in order."""

from __future__ import annotations

from gpupool.planner import Team
from gpupool.sim import PolicyResult, SimConfig, TraceJob, make_policy
from gpupool.sim.engine import Engine
from gpupool.sim.state import SimJob

Row = tuple[str, float, float, int]


def trace(*rows: Row) -> list[TraceJob]:
    return [
        TraceJob(f"{team}/job-{i}", team, at, duration, gpus)
        for i, (team, at, duration, gpus) in enumerate(rows)
    ]


def teams(**guarantees: int) -> list[Team]:
    """Teams with these guarantees and no idleReclaim (nothing idles unplanned)."""
    return [Team(name, guaranteed_gpus=gpus) for name, gpus in guarantees.items()]


def run(
    policy: str, jobs: list[TraceJob], settings: list[Team], config: SimConfig
) -> tuple[PolicyResult, dict[str, SimJob]]:
    """Run one policy; also return each job's final state by key."""
    engine = Engine(jobs, settings, make_policy(policy, settings), config)
    result = engine.run()
    return result, engine.by_key
