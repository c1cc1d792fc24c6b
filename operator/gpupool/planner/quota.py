"""Entitlement math: guarantees first, then idle capacity by weighted max-min fair share.

Everything is in whole GPUs, so the result is exact and deterministic: the last few
GPUs that do not divide evenly go to the teams with the smallest weighted share,
then the lowest decayed usage, then the name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gpupool.planner.snapshot import Team


def water_fill(capacity: int, caps: Mapping[str, int], teams: Sequence[Team]) -> dict[str, int]:
    """Split `capacity` GPUs across `teams` by weight, nobody above its cap.

    Weighted max-min fairness: repeatedly hand out the remaining GPUs in proportion
    to weight; a team whose proportional share reaches its cap gets exactly its cap
    and drops out, and the rest is shared again among the others.
    """
    given = {team.name: 0 for team in teams}
    active = [team for team in teams if caps.get(team.name, 0) > 0]
    remaining = capacity
    while remaining > 0 and active:
        total_weight = sum(team.weight for team in active)
        saturated = [
            team
            for team in active
            if remaining * team.weight / total_weight >= caps[team.name] - given[team.name]
        ]
        if saturated:
            for team in saturated:
                remaining -= caps[team.name] - given[team.name]
                given[team.name] = caps[team.name]
            active = [team for team in active if given[team.name] < caps[team.name]]
            continue
        handed = 0
        for team in active:
            share = int(remaining * team.weight / total_weight)
            given[team.name] += share
            handed += share
        remaining -= handed
        # Fewer GPUs left than teams: one each, smallest weighted share first, and on
        # equal shares the team that used less recently (decayed usage) first.
        for team in sorted(
            active, key=lambda t: (given[t.name] / t.weight, t.decayed_usage, t.name)
        ):
            if remaining == 0:
                break
            if given[team.name] < caps[team.name]:
                given[team.name] += 1
                remaining -= 1
        break
    return given


def entitlements(capacity: int, teams: Sequence[Team], demand: Mapping[str, int]) -> dict[str, int]:
    """Each team's entitlement now: its guarantee if it has demand, plus fair share.

    Guarantees are bounded by demand (an idle guarantee is lent out) and, should the
    healthy capacity not cover every guarantee, shared by weight. The rest of the
    capacity is divided by weighted max-min fair share up to each team's maxGPUs.
    """
    limit = {team.name: _limit(team, demand.get(team.name, 0)) for team in teams}
    guaranteed = {team.name: min(team.guaranteed_gpus, limit[team.name]) for team in teams}
    first = water_fill(capacity, guaranteed, teams)
    rest = capacity - sum(first.values())
    more = water_fill(rest, {name: limit[name] - first[name] for name in first}, teams)
    return {name: first[name] + more[name] for name in first}


def _limit(team: Team, demand: int) -> int:
    return demand if team.max_gpus is None else min(demand, team.max_gpus)


@dataclass(slots=True)
class TeamLedger:
    """One team's GPUs as the cycle's decisions change them.

    `allocated` counts GPUs the team keeps: running workers not being released, plus
    admissions, grows and `claimed` capacity of jobs waiting on preempted victims.
    `checkpointing` counts GPUs its preempted or shrinking jobs still hold while they
    checkpoint: they count against `maxGPUs` until they are really released.
    """

    team: Team
    entitlement: int = 0
    demand: int = 0
    allocated: int = 0
    releasing: int = 0
    checkpointing: int = 0
    claimed: int = 0

    @property
    def name(self) -> str:
        return self.team.name

    @property
    def over_entitlement(self) -> int:
        return self.allocated - self.entitlement

    def fits_limit(self, gpus: int) -> bool:
        limit = self.team.max_gpus
        return limit is None or self.allocated + self.checkpointing + gpus <= limit

    def service_key(self) -> tuple[int, float, str]:
        """Teams furthest below entitlement are served first; ties: lower usage."""
        return (self.over_entitlement, self.team.decayed_usage, self.team.name)

    def cross_team_floor(self, *, fair_share: bool) -> int:
        """GPUs another team may never take it below: the guarantee, and for a
        reclaim of borrowed GPUs also the entitlement (else it would reclaim back)."""
        floor = self.team.guaranteed_gpus
        return max(floor, self.entitlement) if fair_share else floor
