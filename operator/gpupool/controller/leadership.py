"""Who leads: kopf's priority-based peering, read the way kopf reads it.

kopf pauses an instance (stops its watches, so its indexes stop changing) when a live
peer has a higher priority, and pauses *everyone* on a tie. The scheduling loop must
not act on a paused instance's frozen indexes, and kopf offers no public way to ask
whether it is paused, so the loop reads the same peering object before every cycle
and applies the same rule: it leads only when no other live peer has a priority at
least as high as its own. Each instance takes a unique priority
(`settings.instance_priority`), so exactly one leads.

An instance that led and then sees a higher peer stops scheduling and exits: its
indexes froze when kopf paused it and kopf does not purge entries of objects deleted
while paused, so it restarts (as a clean standby) rather than trust them later.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from gpupool.controller.records import parse_time


def is_leader(peers: Mapping[str, Any] | None, priority: int, now: datetime) -> bool:
    """Whether the instance with `priority` leads, given the peering object's status."""
    if peers is None:
        return False
    mine = False
    for info in peers.values():
        if not isinstance(info, Mapping):
            continue
        try:
            their_priority = int(info.get("priority", 0))
            lifetime = timedelta(seconds=int(info.get("lifetime", 60)))
        except (TypeError, ValueError):
            continue
        seen = parse_time(info.get("lastseen"))
        if seen is None or seen + lifetime <= now:
            continue
        if their_priority == priority and not mine:
            mine = True
            continue
        if their_priority >= priority:
            return False
    return mine
