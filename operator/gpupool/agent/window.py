"""Windowed utilization statistics with constant work and memory per sample.

Each window is a ring of time buckets holding a (sum, count) pair and a running
total over the whole ring, so adding a sample and reading the mean are O(1)
amortized whatever the sample rate: a bucket is cleared (and subtracted from the
totals) only when time moves past it. The price is edge granularity: a window of
W seconds with B buckets covers between W - W/B and W seconds of samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOWS_SECONDS = (60.0, 300.0, 900.0)


class BucketedMean:
    """Mean of the samples seen during the last `seconds` (to `seconds / buckets`)."""

    __slots__ = ("_counts", "_current", "_resolution", "_sums", "buckets", "count", "total")

    def __init__(self, seconds: float, buckets: int = 60) -> None:
        if seconds <= 0 or buckets <= 0:
            raise ValueError("window and bucket count must be positive")
        self.buckets = buckets
        self._resolution = seconds / buckets
        self._sums = [0.0] * buckets
        self._counts = [0] * buckets
        self._current: int | None = None
        self.total = 0.0
        self.count = 0

    def _advance(self, now: float) -> int:
        """Move the ring to the bucket of `now`, clearing the buckets skipped over."""
        slot = math.floor(now / self._resolution)
        if self._current is None:
            self._current = slot
        elif slot > self._current:
            for stale in range(self._current + 1, min(slot, self._current + self.buckets) + 1):
                self._clear(stale % self.buckets)
            self._current = slot
        return self._current % self.buckets

    def _clear(self, index: int) -> None:
        self.total -= self._sums[index]
        self.count -= self._counts[index]
        self._sums[index] = 0.0
        self._counts[index] = 0

    def add(self, value: float, now: float) -> None:
        # A sample older than the current bucket (a clock step back) is counted in
        # the current bucket rather than rewriting history.
        index = self._advance(now)
        self._sums[index] += value
        self._counts[index] += 1
        self.total += value
        self.count += 1

    def mean(self, now: float) -> float | None:
        """None when the window holds no sample."""
        self._advance(now)
        if self.count <= 0:
            # Re-zero float drift once the window empties.
            self.total = 0.0
            self.count = 0
            return None
        return self.total / self.count


@dataclass(frozen=True)
class WindowStats:
    utilization: float
    mean_1m: float
    mean_5m: float
    mean_15m: float
    idle_seconds: float


class UtilizationWindow:
    """Latest sample, 1/5/15-minute means and seconds since last active, for one GPU."""

    __slots__ = ("_first_seen", "_last_active", "_latest", "_means", "active_threshold")

    def __init__(self, active_threshold: float = 1.0, buckets: int = 60) -> None:
        self.active_threshold = active_threshold
        self._means = tuple(BucketedMean(seconds, buckets) for seconds in WINDOWS_SECONDS)
        self._latest = 0.0
        self._first_seen: float | None = None
        self._last_active: float | None = None

    def add(self, utilization: float, now: float) -> None:
        if self._first_seen is None:
            self._first_seen = now
        self._latest = utilization
        if utilization > self.active_threshold:
            self._last_active = now
        for window in self._means:
            window.add(utilization, now)

    def idle_seconds(self, now: float) -> float:
        """Seconds since the GPU was last active; since first seen if never active."""
        since = self._last_active if self._last_active is not None else self._first_seen
        if since is None:
            return 0.0
        return max(0.0, now - since)

    def stats(self, now: float) -> WindowStats:
        means = [window.mean(now) for window in self._means]
        return WindowStats(
            utilization=self._latest,
            mean_1m=means[0] or 0.0,
            mean_5m=means[1] or 0.0,
            mean_15m=means[2] or 0.0,
            idle_seconds=self.idle_seconds(now),
        )
