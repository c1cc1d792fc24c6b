"""How long a job is expected to run: declared by its owner, learned from its team's
finished jobs of the same shape, learned from the team's finished jobs of any shape,
or unknown.

Learned figures are the median of the most recent runs, with the interquartile range
as their spread. Only runs that were never preempted are learned from: a resumed run
is the rest of a job, not a job.
"""

from __future__ import annotations

import re
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

# Recent runs kept per (team, shape) and per team.
KEPT_RUNS = 50
# Fewer finished runs than this teach nothing about a shape (or a team).
MIN_RUNS = 3
# A learned median whose interquartile range spans more than this factor is a guess.
WIDE_SPREAD = 3.0

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?h)?([0-9]+(\.[0-9]+)?m)?([0-9]+(\.[0-9]+)?s)?$"


def parse_duration(text: str) -> float:
    """Seconds of a duration written like `2h`, `90m`, `1h30m` or `45s`."""
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groups()):
        raise ValueError(f"not a duration (like 2h, 90m, 1h30m, 45s): {text!r}")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


class Source(IntEnum):
    """Where an expected duration comes from, most trusted first."""

    DECLARED = 0  # the GPUJob's spec.expectedDuration
    LEARNED = 1  # median of the team's finished runs of the same shape
    TEAM = 2  # median of the team's finished runs of any shape
    OVERDUE = 3  # the job already ran longer than expected: it ends "soon", a guess


@dataclass(frozen=True, slots=True)
class Duration:
    seconds: float
    source: Source
    # For learned figures: how many runs, and their interquartile range.
    runs: int = 0
    low: float | None = None
    high: float | None = None

    @property
    def trust(self) -> Source:
        """What an estimate resting on it may claim: a shape's median whose middle half
        spans more than a factor of `WIDE_SPREAD` says little about one run, no more
        than a team-wide one."""
        if (
            self.source is Source.LEARNED
            and self.low is not None
            and self.high is not None
            and self.high > WIDE_SPREAD * self.low
        ):
            return Source.TEAM
        return self.source


@dataclass(frozen=True, slots=True)
class Run:
    """One finished, never preempted run of a job."""

    team: str
    gpus_per_worker: int
    workers: int
    seconds: float


def _learned(values: Iterable[float], source: Source) -> Duration | None:
    runs = sorted(values)
    if len(runs) < MIN_RUNS:
        return None
    low, _, high = statistics.quantiles(runs, n=4, method="inclusive")
    return Duration(statistics.median(runs), source, len(runs), low, high)


class History:
    """Recent finished runs per team and shape, and what they teach."""

    def __init__(self, runs: Iterable[Run] = ()) -> None:
        self._by_shape: dict[tuple[str, int, int], deque[float]] = {}
        self._by_team: dict[str, deque[float]] = {}
        for run in runs:
            self.add(run)

    def add(self, run: Run) -> None:
        if run.seconds <= 0:
            return
        shape = (run.team, run.gpus_per_worker, run.workers)
        self._by_shape.setdefault(shape, deque(maxlen=KEPT_RUNS)).append(run.seconds)
        self._by_team.setdefault(run.team, deque(maxlen=KEPT_RUNS)).append(run.seconds)

    def expected(self, team: str, gpus_per_worker: int, workers: int) -> Duration | None:
        """The team's median for this shape, else for any shape, else None."""
        shape = self._by_shape.get((team, gpus_per_worker, workers))
        learned = _learned(shape, Source.LEARNED) if shape else None
        if learned is None and team in self._by_team:
            learned = _learned(self._by_team[team], Source.TEAM)
        return learned
