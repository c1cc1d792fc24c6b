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


async def test_urgent_keys_are_taken_first_and_a_waiting_key_moves_up() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def handle(key: str) -> None:
        if key == "blocker":
            await gate.wait()
        order.append(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.add("blocker")
    await asyncio.sleep(0)  # the only worker is busy with it
    for key in ("a", "b", "c"):
        queue.add(key)
    queue.add("u", urgent=True)
    queue.add("c", urgent=True)  # waiting: moves up, still once
    queue.add("u")  # already urgent: stays urgent
    assert len(queue) == 5
    gate.set()
    await queue.drain()
    await queue.close()
    assert order == ["blocker", "u", "c", "a", "b"]


async def test_a_key_made_urgent_while_processed_runs_again_first() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def handle(key: str) -> None:
        if key == "a" and order.count("a") == 0:
            await gate.wait()
        order.append(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.add("a")
    await asyncio.sleep(0)
    queue.add("b")
    queue.add("a", urgent=True)  # being processed: again afterwards, ahead of b
    gate.set()
    await queue.drain()
    await queue.close()
    assert order == ["a", "a", "b"]


async def test_a_closed_queue_drops_what_waited_and_starts_afresh() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def handle(key: str) -> None:
        await gate.wait()
        seen.append(key)

    queue: WorkQueue[str] = WorkQueue(handle, workers=1)
    queue.add("a")
    queue.add("b", urgent=True)
    await asyncio.sleep(0)
    await queue.close()
    assert len(queue) == 0
    await asyncio.wait_for(queue.drain(), 1.0)
    gate.set()
    queue.add("b", urgent=True)  # workers start again, even for a key that waited urgent
    await asyncio.wait_for(queue.drain(), 1.0)
    await queue.close()
    assert seen == ["b"]
