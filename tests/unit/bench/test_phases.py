"""The benchmark's phase follower: counts Running objects and when each first ran."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, cast

from gpupool.bench.phases import Phases
from gpupool.k8s import KubeClient, Resource

JSON = dict[str, Any]


def _job(name: str, phase: str) -> JSON:
    return {"metadata": {"name": name}, "status": {"phase": phase}}


class _Client:
    """A list, then a watch that delivers `events` and then waits forever."""

    def __init__(self, items: list[JSON], events: list[JSON]) -> None:
        self.items = items
        self.events = events

    async def list(self, resource: Resource, namespace: str | None = None) -> JSON:
        return {"metadata": {"resourceVersion": "1"}, "items": self.items}

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[JSON]:
        for event in self.events:
            await asyncio.sleep(0.01)
            yield event
        await asyncio.Event().wait()


async def test_counts_running_and_times_shares() -> None:
    events = [
        {"type": "MODIFIED", "object": _job("b", "Running")},
        {"type": "MODIFIED", "object": _job("c", "Running")},
        {"type": "MODIFIED", "object": _job("b", "Pending")},  # preempted: still ran once
        {"type": "MODIFIED", "object": _job("d", "Running")},
        {"type": "DELETED", "object": _job("a", "Running")},
    ]
    client = _Client([_job("a", "Running"), _job("b", "Pending")], events)
    phases = Phases(cast(KubeClient, client), "ns")
    started = time.monotonic()
    follower = asyncio.create_task(phases.follow())
    try:
        assert await phases.wait_running(3, 5.0, started) is not None
        await asyncio.sleep(0.1)
        assert phases.running() == 2  # c and d; a deleted, b back to Pending
        first = phases.seconds_until_share_ran(0.25, 4, started)
        half = phases.seconds_until_share_ran(0.5, 4, started)
        every = phases.seconds_until_share_ran(1.0, 4, started)
        assert first is not None and half is not None and every is not None
        assert 0 <= first <= half <= every < 5.0
        assert phases.seconds_until_share_ran(1.0, 5, started) is None  # only 4 ever ran
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def test_gives_up_after_the_timeout() -> None:
    phases = Phases(cast(KubeClient, _Client([_job("a", "Pending")], [])), "ns")
    follower = asyncio.create_task(phases.follow())
    try:
        assert await phases.wait_running(1, 0.2, time.monotonic()) is None
        assert phases.seconds_until_share_ran(0.5, 1, 0.0) is None
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
