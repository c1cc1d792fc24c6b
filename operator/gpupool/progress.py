"""Progress of long work (benchmarks, the demo's set-up, the control plane's first build).

Each step shows a spinner, its elapsed time and, when it counts something, a bar with
done/total; it ends as one line: `✓ what (12.3 s)` or `✗ what (failed after 12.3 s)`.
Everything goes to stderr, so stdout keeps only results (`--json`). Without a terminal
(CI logs) a step prints one line when it starts and one when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class Step:
    """A running step: say how far it got (counted steps) or what it does now."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    def update(self, completed: int | None = None, *, total: int | None = None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=completed, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)

    def describe(self, what: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=what)


class Steps:
    """Steps of one long command, shown one after the other on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)

    @contextmanager
    def step(self, what: str, total: int | None = None) -> Iterator[Step]:
        started = time.monotonic()
        try:
            if self.console.is_terminal:
                with self._live(what, total) as step:
                    yield step
            else:
                self.console.print(f"… {what}")
                yield Step(None, None)
        except BaseException:
            self._done("✗", "red", f"{what} (failed after {time.monotonic() - started:.1f} s)")
            raise
        self._done("✓", "green", f"{what} ({time.monotonic() - started:.1f} s)")

    @contextmanager
    def _live(self, what: str, total: int | None) -> Iterator[Step]:
        columns = [SpinnerColumn(), TextColumn("{task.description}")]
        if total is not None:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            yield Step(progress, progress.add_task(what, total=total))

    def _done(self, mark: str, style: str, text: str) -> None:
        self.console.print(Text.assemble((mark, style), " ", text))


@asynccontextmanager
async def following(
    step: Step, count: Callable[[], int], every: float = 0.5
) -> AsyncIterator[None]:
    """While the block runs, move `step`'s bar to `count()` every `every` seconds."""

    async def follow() -> None:
        while True:
            step.update(count())
            await asyncio.sleep(every)

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        step.update(count())
