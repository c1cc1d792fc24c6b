"""A work queue in the manner of client-go's: keys, not tasks.

Each key is processed by one of a fixed pool of workers, at most once at a time; a key
added again while it is being processed is processed once more afterwards; adding a key
already waiting does nothing. So 10,000 status writes cost 10,000 dictionary entries and
a few dozen coroutines, not 10,000 tasks — and a burst of changes to one object costs at
most two writes.

Keys added `urgent` are taken before the others (a key waiting in the normal tier moves
up when it is added urgent); within a tier, first added, first taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, handle: Callable[[K], Awaitable[object]], *, workers: int) -> None:
        self._handle = handle
        self._size = workers
        self._waiting: dict[K, None] = {}
        self._urgent: dict[K, None] = {}
        self._active: set[K] = set()
        # Keys added while being processed: run again afterwards (True: urgent).
        self._again: dict[K, bool] = {}
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._urgent) + len(self._waiting) + len(self._active)

    def add(self, key: K, *, urgent: bool = False) -> None:
        if key in self._active:
            self._again[key] = self._again.get(key, False) or urgent
            return
        if key in self._urgent:
            return
        if urgent:
            self._waiting.pop(key, None)
            self._urgent[key] = None
        else:
            self._waiting[key] = None
        self._idle.clear()
        self._ready.set()
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"workqueue-{i}") for i in range(self._size)
            ]

    async def drain(self) -> None:
        """Wait until nothing is waiting or being processed."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop the workers; what was still waiting is dropped."""
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        self._urgent.clear()
        self._waiting.clear()
        self._active.clear()
        self._again.clear()
        self._idle.set()

    async def _work(self) -> None:
        while True:
            await self._ready.wait()
            tier = self._urgent or self._waiting
            if not tier:
                self._ready.clear()
                continue
            key = next(iter(tier))
            del tier[key]
            self._active.add(key)
            try:
                await self._handle(key)
            except Exception:
                logger.exception("work on %s failed", key)
            finally:
                self._active.discard(key)
                if key in self._again:
                    self.add(key, urgent=self._again.pop(key))
                if not self._urgent and not self._waiting and not self._active:
                    self._idle.set()
