"""Status writes: only when changed, minor ones rate-limited, our last write remembered."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from gpupool.controller.writer import StatusWriter, Stored
from gpupool.k8s import GPUJOBS

from .fakes import FakeClock, FakeKube


@pytest.fixture
def kube() -> FakeKube:
    kube = FakeKube()
    for i in range(3):
        kube.put(
            GPUJOBS,
            {
                "metadata": {"name": f"j{i}", "namespace": "ml"},
                "spec": {},
                "status": {"phase": "Pending"},
            },
        )
    return kube


def writer(kube: FakeKube, clock: FakeClock, rate: float = 20.0) -> StatusWriter:
    return StatusWriter(
        kube,  # type: ignore[arg-type]
        concurrency=asyncio.Semaphore(4),
        minor_interval=60.0,
        monotonic=clock.monotonic,
        minor_rate=rate,
    )


def current(kube: FakeKube, name: str) -> Stored:
    obj = kube.objects[("gpujobs", "ml", name)]
    return obj["metadata"]["resourceVersion"], obj["status"]


def render(changes: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    return lambda stored: {**stored, **changes}


async def test_nothing_is_written_when_nothing_changed(kube: FakeKube) -> None:
    w = writer(kube, FakeClock())
    assert await w.sync_job(("ml", "j0"), lambda: current(kube, "j0"), render({}))
    assert w.writes == 0
    assert await w.sync_job(
        ("ml", "j0"), lambda: current(kube, "j0"), render({"phase": "Admitted"})
    )
    assert w.writes == 1
    assert kube.objects[("gpujobs", "ml", "j0")]["status"]["phase"] == "Admitted"


async def test_our_last_write_is_the_base_until_the_index_catches_up(kube: FakeKube) -> None:
    w = writer(kube, FakeClock())
    stale = current(kube, "j0")
    await w.sync_job(("ml", "j0"), lambda: stale, render({"phase": "Admitted"}))
    # The index still shows the old status: the same rendering is not written again.
    await w.sync_job(("ml", "j0"), lambda: stale, render({"phase": "Admitted"}))
    assert w.writes == 1


async def test_minor_changes_wait_for_their_interval_and_share_a_budget(kube: FakeKube) -> None:
    clock = FakeClock()
    w = writer(kube, clock, rate=1.0)
    for name in ("j0", "j1", "j2"):
        await w.sync_job(
            ("ml", name), lambda n=name: current(kube, n), render({"queuePosition": 1})
        )
    # A budget of one write a second: the first goes, the others wait their turn.
    assert w.writes == 1
    clock.advance(1.0)
    for name in ("j1", "j2"):
        await w.sync_job(
            ("ml", name), lambda n=name: current(kube, n), render({"queuePosition": 1})
        )
    assert w.writes == 2
    # Within its minute, j0's next position change is held back; a phase change is not.
    clock.advance(5.0)
    await w.sync_job(("ml", "j0"), lambda: current(kube, "j0"), render({"queuePosition": 2}))
    assert w.writes == 2
    await w.sync_job(("ml", "j0"), lambda: current(kube, "j0"), render({"phase": "Admitted"}))
    assert w.writes == 3


async def test_a_forced_write_does_not_wait_behind_routine_ones(kube: FakeKube) -> None:
    routine = asyncio.Semaphore(1)
    w = StatusWriter(
        kube,  # type: ignore[arg-type]
        concurrency=routine,
        urgent_concurrency=asyncio.Semaphore(1),
        minor_interval=60.0,
        monotonic=FakeClock().monotonic,
    )
    async with routine:  # every routine slot is taken
        forced = w.sync_job(
            ("ml", "j0"), lambda: current(kube, "j0"), render({"phase": "Preempting"}), force=True
        )
        assert await asyncio.wait_for(forced, 1.0)
        waiting = asyncio.ensure_future(
            w.sync_job(("ml", "j1"), lambda: current(kube, "j1"), render({"phase": "Admitted"}))
        )
        await asyncio.sleep(0.05)
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, 1.0)
    assert kube.objects[("gpujobs", "ml", "j0")]["status"]["phase"] == "Preempting"
    assert w.writes == 2
