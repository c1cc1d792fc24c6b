"""The queue's start-time forecast, refreshed at a bounded rate beside the loop.

After a cycle has planned, and at most every `forecast_interval_seconds`, the cycle's
snapshot (immutable) and every job's expected duration go to a worker thread, where
`gpupool.forecast` plans forward from them; the loop keeps cycling meanwhile, and the
statuses it renders carry the latest finished forecast. One forecast at a time: a
refresh due while one runs waits for the next cycle after it.

Expected durations: a GPUJob's `spec.expectedDuration`; else the median of its
team's last finished runs of the same shape (never preempted: a resumed run is only
the rest of a job), else of any shape. Those runs are the Succeeded GPUJobs that still
exist: what is deleted is forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from gpupool.controller.metrics import METRICS
from gpupool.controller.records import JobKey
from gpupool.controller.snapshot import JobView
from gpupool.forecast import (
    Duration,
    Estimate,
    Forecast,
    ForecastSettings,
    History,
    Run,
    Source,
    forecast,
)
from gpupool.planner import Snapshot

logger = logging.getLogger(__name__)


def finished_runs(views: Mapping[JobKey, JobView]) -> list[Run]:
    """Succeeded jobs that ran once, uninterrupted, oldest first."""
    runs = []
    for view in views.values():
        ledger = view.ledger
        if (
            ledger.outcome == "Succeeded"
            and ledger.preemptions == 0
            and view.team
            and ledger.started_at is not None
            and ledger.finished_at is not None
        ):
            seconds = (ledger.finished_at - ledger.started_at).total_seconds()
            runs.append(
                (
                    ledger.finished_at,
                    Run(view.team, view.spec.gpus_per_worker, view.spec.worker_range[0], seconds),
                )
            )
    runs.sort(key=lambda entry: entry[0])
    return [run for _, run in runs]


def expected_durations(views: Mapping[JobKey, JobView]) -> dict[str, Duration]:
    """By planner job key: how long each planned job runs, where that is known."""
    history = History(finished_runs(views))
    durations = {}
    for view in views.values():
        if view.state is None or not view.team:
            continue
        declared = view.spec.expected_seconds
        if declared is not None:
            durations[view.id] = Duration(declared, Source.DECLARED)
            continue
        learned = history.expected(view.team, view.spec.gpus_per_worker, view.spec.worker_range[0])
        if learned is not None:
            durations[view.id] = learned
    return durations


def timed_forecast(
    snapshot: Snapshot, now: float, durations: Mapping[str, Duration], settings: ForecastSettings
) -> tuple[Forecast, float]:
    """The forecast and the CPU seconds it took (of the thread it ran on)."""
    started = time.thread_time()
    result = forecast(snapshot, now, durations, settings)
    return result, time.thread_time() - started


class Forecaster:
    def __init__(
        self,
        interval_seconds: float,
        monotonic: Callable[[], float],
        settings: ForecastSettings | None = None,
    ) -> None:
        self.interval = interval_seconds
        self.settings = settings or ForecastSettings()
        self._monotonic = monotonic
        self._started: float | None = None
        self._task: asyncio.Task[tuple[Forecast, float]] | None = None
        self.latest: Forecast | None = None
        self.runs = 0

    def estimate(self, job: str) -> Estimate | None:
        return None if self.latest is None else self.latest.get(job)

    def refresh(self, snapshot: Snapshot, now: float, views: Mapping[JobKey, JobView]) -> bool:
        """Start a forecast if one is due and none runs; whether one started."""
        if self.interval <= 0 or self._task is not None:
            return False
        clock = self._monotonic()
        if self._started is not None and clock - self._started < self.interval:
            return False
        self._started = clock
        self.runs += 1
        durations = expected_durations(views)
        self._task = asyncio.create_task(
            asyncio.to_thread(timed_forecast, snapshot, now, durations, self.settings)
        )
        self._task.add_done_callback(self._finished)
        return True

    def _finished(self, task: asyncio.Task[tuple[Forecast, float]]) -> None:
        self._task = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("forecast failed: %s", error, exc_info=error)
            return
        self.latest, seconds = task.result()
        METRICS.forecast_seconds.observe(seconds)

    async def wait(self) -> None:
        """Until the forecast under way (if any) is done."""
        task = self._task
        if task is not None:
            await asyncio.wait([task])

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
