"""Windowed means and idle seconds: exact at constant rate, O(1) state at any rate."""

from __future__ import annotations

import pytest

from gpupool.agent.window import BucketedMean, UtilizationWindow


def test_mean_of_a_full_window_at_one_hertz() -> None:
    window = BucketedMean(60, buckets=60)
    for t in range(60):
        window.add(float(t % 2) * 100, t)
    assert window.mean(59.5) == pytest.approx(50.0)
    assert window.count == 60


def test_old_samples_leave_the_window() -> None:
    window = BucketedMean(60, buckets=60)
    for t in range(60):
        window.add(100.0, t)
    for t in range(60, 120):
        window.add(0.0, t)
    assert window.mean(119.5) == pytest.approx(0.0)
    assert window.count == 60


def test_edge_granularity_is_one_bucket() -> None:
    window = BucketedMean(60, buckets=6)  # 10-second buckets
    window.add(100.0, 0.0)
    window.add(0.0, 55.0)
    # t=60 is the start of bucket 6, which reuses (and clears) bucket 0's slot.
    assert window.mean(59.9) == pytest.approx(50.0)
    assert window.mean(60.0) == pytest.approx(0.0)


def test_a_long_gap_empties_the_window_and_resets_drift() -> None:
    window = BucketedMean(60, buckets=60)
    for t in range(30):
        window.add(33.3, t * 0.1)
    assert window.mean(1000.0) is None
    assert (window.total, window.count) == (0.0, 0)


def test_many_samples_per_bucket_keep_constant_memory() -> None:
    window = BucketedMean(60, buckets=60)
    for i in range(10_000):
        window.add(float(i % 100), i * 0.01)
    assert len(window._sums) == 60
    assert window.mean(99.99) == pytest.approx(49.5, abs=1.0)


def test_clock_step_back_counts_in_the_current_bucket() -> None:
    window = BucketedMean(60, buckets=60)
    window.add(10.0, 100.0)
    window.add(30.0, 50.0)
    assert window.mean(100.0) == pytest.approx(20.0)


def test_invalid_window() -> None:
    with pytest.raises(ValueError):
        BucketedMean(0)


def test_utilization_window_means_and_idle() -> None:
    window = UtilizationWindow(active_threshold=1.0)
    for t in range(600):  # 10 minutes busy at 80%
        window.add(80.0, float(t))
    for t in range(600, 900):  # then 5 minutes idle
        window.add(0.0, float(t))
    stats = window.stats(899.5)
    assert stats.utilization == 0.0
    assert stats.mean_1m == pytest.approx(0.0)
    assert stats.mean_5m == pytest.approx(0.0, abs=80 * 5 / 300)
    assert stats.mean_15m == pytest.approx(80 * 600 / 900, abs=1.0)
    assert stats.idle_seconds == pytest.approx(899.5 - 599)


def test_below_threshold_is_idle_and_never_active_counts_from_first_sample() -> None:
    window = UtilizationWindow(active_threshold=5.0)
    window.add(3.0, 10.0)
    window.add(4.0, 20.0)
    assert window.idle_seconds(25.0) == 15.0
    window.add(6.0, 30.0)
    assert window.idle_seconds(30.0) == 0.0
    assert window.idle_seconds(31.0) == 1.0


def test_empty_window_stats() -> None:
    stats = UtilizationWindow().stats(5.0)
    assert (stats.mean_1m, stats.mean_15m, stats.idle_seconds) == (0.0, 0.0, 0.0)
