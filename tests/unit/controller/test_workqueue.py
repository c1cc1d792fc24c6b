"""The work queue: one entry per key, never two workers on one key, re-run when re-added."""

from __future__ import annotations

import asyncio

from gpupool.controller.workqueue import WorkQueue


async def test_a_key_added_many_times_while_waiting_is_processed_once() -> None:
    seen: list[str] = []

    async def handle(key: str) -> None:
        seen.append(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=2)
    for key in ("a", "b", "a", "a", "c"):
        queue.add(key)
    await queue.drain()
    await queue.close()
    assert sorted(seen) == ["a", "b", "c"]


async def test_a_key_added_while_processed_runs_again_afterwards_never_concurrently() -> None:
    active: set[str] = set()
    runs: list[str] = []
    gate = asyncio.Event()

    async def handle(key: str) -> None:
        assert key not in active
        active.add(key)
        runs.append(key)
        if len(runs) == 1:
            await gate.wait()
        active.discard(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=4)
    queue.add("job")
    await asyncio.sleep(0)
    queue.add("job")
    queue.add("job")
    gate.set()
    await queue.drain()
    await queue.close()
    assert runs == ["job", "job"]


async def test_a_failing_key_does_not_stop_the_workers() -> None:
    done: list[int] = []

    async def handle(key: int) -> None:
        if key == 1:
            raise RuntimeError("boom")
        done.append(key)

    queue: WorkQueue[int] = WorkQueue(handle, workers=1)
    for key in (1, 2, 3):
        queue.add(key)
    await queue.drain()
    await queue.close()
    assert done == [2, 3]
