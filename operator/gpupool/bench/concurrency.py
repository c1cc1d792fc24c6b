"""Many API calls at once, a bounded number in flight, overload retried (benchmarks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gpupool.k8s import ApiError


async def bounded(concurrency: int, calls: list[Callable[[], Awaitable[Any]]]) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            for attempt in range(5):
                try:
                    await call()
                    return
                except ApiError as error:
                    if error.conflict:
                        return
                    if not error.retryable or attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * 2**attempt)

    await asyncio.gather(*(one(call) for call in calls))
