"""Entitlement math: guarantee first, weighted max-min fair share, whole GPUs."""

from __future__ import annotations

from gpupool.planner import Team
from gpupool.planner.quota import entitlements, water_fill


def test_guarantees_then_weighted_share_up_to_the_limit() -> None:
    teams = [
        Team("a", guaranteed_gpus=10, weight=1.0),
        Team("b", guaranteed_gpus=0, weight=2.0, max_gpus=20),
        Team("c", guaranteed_gpus=0, weight=1.0),
    ]
    shares = entitlements(100, teams, {"a": 100, "b": 100, "c": 5})
    # c is capped by its demand, b by maxGPUs; a takes the rest.
    assert shares == {"a": 75, "b": 20, "c": 5}
    assert sum(shares.values()) == 100


def test_a_guarantee_counts_only_with_demand() -> None:
    teams = [Team("a", guaranteed_gpus=64), Team("b")]
    assert entitlements(64, teams, {"a": 8, "b": 100}) == {"a": 8, "b": 56}


def test_oversubscribed_guarantees_are_shared_by_weight() -> None:
    teams = [Team("a", guaranteed_gpus=16), Team("b", guaranteed_gpus=16, weight=3.0)]
    assert entitlements(16, teams, {"a": 16, "b": 16}) == {"a": 4, "b": 12}


def test_leftover_gpus_go_to_lower_decayed_usage() -> None:
    teams = [
        Team("a", decayed_usage=30.0),
        Team("b", decayed_usage=10.0),
        Team("c", decayed_usage=20.0),
    ]
    caps = {"a": 100, "b": 100, "c": 100}
    assert water_fill(8, caps, teams) == {"a": 2, "b": 3, "c": 3}


def test_nothing_to_share() -> None:
    teams = [Team("a"), Team("b")]
    assert entitlements(0, teams, {"a": 8, "b": 8}) == {"a": 0, "b": 0}
    assert entitlements(16, teams, {}) == {"a": 0, "b": 0}
