"""Idle tracking: job utilization from GPUNode attribution, and the idle clock."""

from __future__ import annotations

from datetime import datetime

import pytest

from gpupool.controller.idle import JobUtilization, job_utilization, next_idle_since

from .builders import T0, later, make_gpunode, make_pod


def test_utilization_is_the_mean_over_the_jobs_gpus() -> None:
    pods = [
        make_pod("ml/a", index=0, node="node-1").gpus(2).running().obj(),
        make_pod("ml/a", index=1, node="node-2").running().obj(),
    ]
    gpunodes = {
        "node-1": make_gpunode("node-1", users={0: "ml/a-0-0", 1: "ml/a-0-0"}, utilization=10),
        "node-2": make_gpunode("node-2", users={0: "ml/a-0-1"}, utilization=70),
    }
    utilization = job_utilization(pods, gpunodes)
    assert utilization is not None
    assert (utilization.mean_1m, utilization.gpus) == (30.0, 3)


def test_no_attribution_means_no_utilization() -> None:
    pods = [make_pod("ml/a").running().obj()]
    assert job_utilization(pods, {"node-1": make_gpunode("node-1")}) is None


def busy(percent: float) -> JobUtilization:
    return JobUtilization(percent, percent, percent, 1)


@pytest.mark.parametrize(
    ("previous", "utilization", "threshold", "expected"),
    [
        (None, busy(2), 5.0, later(10)),  # goes idle now
        (later(1), busy(2), 5.0, later(1)),  # stays idle since then
        (later(1), busy(50), 5.0, None),  # busy again: the clock resets
        (later(1), None, 5.0, None),  # no measurements: no evidence of idleness
        (later(1), busy(2), None, None),  # the team tracks no idleness
        (T0, busy(2), 5.0, later(5)),  # never before the current run started
    ],
)
def test_idle_clock(
    previous: datetime | None,
    utilization: JobUtilization | None,
    threshold: float | None,
    expected: datetime | None,
) -> None:
    since = next_idle_since(
        previous,
        utilization,
        threshold,
        now=later(10),
        running_since=later(5) if previous == T0 else None,
    )
    assert since == expected
