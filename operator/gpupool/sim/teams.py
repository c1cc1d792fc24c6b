"""Team settings for a simulation: derived from the trace, or read from a file.

Derived guarantees are proportional to each team's share of the trace's GPU-time,
scaled to the cluster, but never below the team's largest job: a fixed allocation
smaller than a team's own job would leave that job waiting forever, and no admin
would configure one. Weights keep TeamQuota's default (1: idle GPUs are shared
equally among the teams that want them). Whole GPUs are handed out by largest remainder, so the
guarantees add up to exactly the cluster's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gpupool.planner import IdleMode, IdleReclaimPolicy, Team
from gpupool.sim.trace import TraceJob

# gpupool's idle reclaim in the simulation unless a teams file says otherwise: a job
# below 5% utilization for 30 minutes gives its GPUs back when someone needs them.
DEFAULT_IDLE_RECLAIM = IdleReclaimPolicy(
    utilization_below=5.0, for_seconds=1800.0, mode=IdleMode.ENFORCE
)


def _largest_remainder(total: int, targets: dict[str, float]) -> dict[str, int]:
    given = {name: int(share) for name, share in targets.items()}
    left = total - sum(given.values())
    order = sorted(targets, key=lambda name: (given[name] - targets[name], name))
    for name in order[: max(0, left)]:
        given[name] += 1
    return given


def derive_teams(trace: Sequence[TraceJob], gpus: int) -> list[Team]:
    """One team per trace `cluster`; guarantee ∝ GPU-time, at least its largest job."""
    usage: dict[str, float] = {}
    largest: dict[str, int] = {}
    for job in trace:
        usage[job.team] = usage.get(job.team, 0.0) + job.gpu_seconds
        largest[job.team] = max(largest.get(job.team, 0), job.gpus)
    floors = {name: min(largest[name], gpus) for name in usage}
    fixed: dict[str, int] = {}
    free = dict(usage)
    while True:
        budget = gpus - sum(fixed.values())
        weight = sum(free.values())
        below = [
            name
            for name, used in free.items()
            if weight <= 0 or budget * used / weight < floors[name]
        ]
        if not below or sum(fixed.values()) + sum(floors[n] for n in below) > gpus:
            break
        for name in below:
            fixed[name] = floors[name]
            del free[name]
    budget = max(0, gpus - sum(fixed.values()))
    weight = sum(free.values())
    targets = {name: budget * used / weight for name, used in free.items()} if weight else {}
    guaranteed = {**fixed, **_largest_remainder(budget, targets)}
    return [
        Team(
            name=name,
            guaranteed_gpus=guaranteed[name],
            idle_reclaim=DEFAULT_IDLE_RECLAIM,
        )
        for name in sorted(usage)
    ]


def _idle(data: dict[str, Any] | None) -> IdleReclaimPolicy | None:
    if data is None:
        return DEFAULT_IDLE_RECLAIM
    return IdleReclaimPolicy(
        utilization_below=float(data.get("utilizationBelow", 5.0)),
        for_seconds=float(data.get("forMinutes", 30.0)) * 60.0,
        mode=IdleMode(data.get("mode", IdleMode.ENFORCE.value)),
    )


def load_teams(path: str | Path) -> list[Team]:
    """TeamQuota-like settings from YAML or JSON: a list (or `{teams: [...]}`) of
    `{name, guaranteedGPUs, maxGPUs, weight, idleReclaim: {utilizationBelow,
    forMinutes, mode}}`; fields as in TeamQuota spec."""
    data = yaml.safe_load(Path(path).read_text())
    entries = data.get("teams", []) if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a list of teams")
    teams = []
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{path}: every team needs a name")
        guaranteed = int(entry.get("guaranteedGPUs", 0))
        limit = entry.get("maxGPUs")
        teams.append(
            Team(
                name=str(entry["name"]),
                guaranteed_gpus=guaranteed,
                max_gpus=None if limit is None else int(limit),
                weight=float(entry.get("weight", 1.0)),
                idle_reclaim=_idle(entry.get("idleReclaim")),
            )
        )
    return teams
