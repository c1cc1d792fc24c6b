"""Leadership read from kopf's peering object, as kopf reads it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gpupool.controller.leadership import is_leader
from gpupool.controller.settings import instance_priority

from .builders import T0, iso


def peer(priority: int, seen_ago: float = 1.0, lifetime: int = 15) -> dict[str, Any]:
    return {
        "priority": priority,
        "lastseen": iso(T0 - timedelta(seconds=seen_ago)),
        "lifetime": lifetime,
    }


@pytest.mark.parametrize(
    ("peers", "leads"),
    [
        (None, False),
        ({}, False),  # our own keep-alive has not landed yet
        ({"me": peer(10)}, True),
        ({"me": peer(10), "old": peer(5)}, True),
        ({"me": peer(10), "newer": peer(20)}, False),
        ({"me": peer(10), "twin": peer(10)}, False),  # kopf pauses everyone on a tie
        ({"me": peer(10), "dead": peer(20, seen_ago=60)}, True),
    ],
)
def test_leader_is_the_only_live_peer_with_the_top_priority(
    peers: dict[str, Any] | None, leads: bool
) -> None:
    assert is_leader(peers, 10, T0) is leads


def test_an_older_instance_has_a_higher_priority() -> None:
    assert instance_priority(1000.0) > instance_priority(1000.5)
