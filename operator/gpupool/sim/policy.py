"""What the engine needs from a scheduling policy, and the policies by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gpupool.planner import Plan, Team
from gpupool.sim.gpupool_policy import GpupoolPolicy
from gpupool.sim.kueue_fair import KueueFairPolicy
from gpupool.sim.kueue_policy import KueuePolicy
from gpupool.sim.state import Cluster

POLICY_NAMES = ("static", "borrow", "kueue-fair", "gpupool")


class Policy(Protocol):
    """Decides one scheduling cycle as a `Plan` (admissions and preemptions).

    `min_runtime_seconds` and `idle_reclaim` tell the engine when a plan may change
    without any event. How a preempted job stops (SIGTERM, saved or not) is the
    engine's, the same for every policy.
    """

    name: str
    min_runtime_seconds: float
    idle_reclaim: bool

    def plan(self, cluster: Cluster, now: float) -> Plan: ...


def make_policy(name: str, teams: Sequence[Team]) -> Policy:
    if name == "static":
        return KueuePolicy("static", teams, borrowing=False)
    if name == "borrow":
        return KueuePolicy("borrow", teams, borrowing=True)
    if name == "kueue-fair":
        return KueueFairPolicy(teams)
    if name == "gpupool":
        return GpupoolPolicy(teams)
    raise ValueError(f"unknown policy {name!r}: choose from {', '.join(POLICY_NAMES)}")
