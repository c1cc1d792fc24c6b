"""Team usage: decayed GPU-hours with a half-life, persisted across restarts."""

from __future__ import annotations

import math

import pytest

from gpupool.controller.usage import TeamUsage, advance

from .builders import T0, later


def test_usage_halves_every_half_life_without_allocation() -> None:
    usage = TeamUsage(decayed=100.0, updated_at=T0)
    after = advance(usage, allocated_gpus=0, used_gpus=0, now=later(24 * 60), half_life_hours=24)
    assert after.decayed == pytest.approx(50.0)


def test_many_small_steps_equal_one_big_step() -> None:
    start = TeamUsage(decayed=10.0, updated_at=T0)
    once = advance(start, allocated_gpus=8, used_gpus=4, now=later(600), half_life_hours=24)
    stepped = start
    for minute in range(10, 601, 10):
        stepped = advance(
            stepped, allocated_gpus=8, used_gpus=4, now=later(minute), half_life_hours=24
        )
    assert stepped.decayed == pytest.approx(once.decayed)
    assert stepped.gpu_hours_allocated == pytest.approx(80.0)
    assert stepped.gpu_hours_used == pytest.approx(40.0)


def test_constant_allocation_tends_to_allocation_times_mean_life() -> None:
    usage = TeamUsage(updated_at=T0)
    far = advance(usage, allocated_gpus=4, used_gpus=0, now=later(60 * 24 * 60), half_life_hours=24)
    assert far.decayed == pytest.approx(4 * 24 / math.log(2), rel=1e-6)


def test_first_sight_only_starts_the_clock() -> None:
    first = advance(TeamUsage(), allocated_gpus=8, used_gpus=8, now=T0, half_life_hours=24)
    assert first == TeamUsage(updated_at=T0)
