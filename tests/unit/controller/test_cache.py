"""The scheduling cache: assumed admissions until their pods are indexed."""

from __future__ import annotations

import pytest

from gpupool.controller.cache import AssumedWorker

from .builders import cache

JOB = ("vision", "resnet")
WORKERS = (AssumedWorker(0, "node-1", 8), AssumedWorker(1, "node-2", 8))


@pytest.mark.parametrize(
    ("seen", "unseen", "settled"),
    [
        (set(), [0, 1], False),
        ({(0, 0)}, [1], False),
        ({(0, 0), (0, 1)}, [], True),
        # A pod of another incarnation is not this admission's pod.
        ({(1, 0), (1, 1)}, [0, 1], False),
    ],
)
def test_assumed_workers_stay_until_their_pods_are_indexed(
    seen: set[tuple[int, int]], unseen: list[int], settled: bool
) -> None:
    c = cache()
    c.assume(JOB, 0, WORKERS)
    assert [w.index for w in c.unseen(JOB, seen)] == unseen
    assert c.settle(JOB, seen) is settled
    assert (c.assumption(JOB) is None) is settled


def test_an_assumption_never_expires_while_its_creation_is_in_flight() -> None:
    c = cache()
    c.assume(JOB, 0, WORKERS)
    assert c.expire(now=1e9) == []
    c.created(JOB, now=100.0)
    assert c.expire(now=150.0) == []
    assert c.expire(now=161.0) == [JOB]
    assert c.assumption(JOB) is None


def test_forget_undoes_an_admission_the_api_refused() -> None:
    c = cache()
    c.assume(JOB, 0, WORKERS)
    assert c.forget(JOB) is not None
    assert c.assumption(JOB) is None and c.forget(JOB) is None


def test_a_grow_adds_workers_to_the_same_incarnation() -> None:
    c = cache()
    c.assume(JOB, 2, WORKERS[:1])
    c.assume(JOB, 2, WORKERS[1:])
    assumption = c.assumption(JOB)
    assert assumption is not None and assumption.gpus == 16
    assert c.expected(JOB) == (2, frozenset({0, 1}))


def test_expected_workers_reset_per_incarnation() -> None:
    c = cache()
    c.expect(JOB, 0, {0, 1, 2, 3})
    c.expect(JOB, 0, {4})
    assert c.expected(JOB) == (0, frozenset({0, 1, 2, 3, 4}))
    c.expect(JOB, 1, {0})
    assert c.expected(JOB) == (1, frozenset({0}))


def test_back_off_lasts_until_its_time() -> None:
    c = cache()
    c.back_off(JOB, until=50.0, reason="BackoffAfterFailure", message="worker 0 failed")
    assert c.backing_off(JOB, now=49.0)
    assert not c.backing_off(JOB, now=50.0)
    assert c.retry_at(JOB) is None
