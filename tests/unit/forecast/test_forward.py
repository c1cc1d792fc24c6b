"""Forecasts on planner scenarios whose answer is known."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.forecast import Confidence, Duration, Forecast, ForecastSettings, Source, forecast

from ..planner.builders import HOUR, NOW, ClusterBuilder, cluster

DECLARED_2H = Duration(2 * HOUR, Source.DECLARED)


def declared(seconds: float) -> Duration:
    return Duration(seconds, Source.DECLARED)


def run(builder: ClusterBuilder, durations: dict[str, Duration], **knobs: float) -> Forecast:
    return forecast(builder.snapshot(), NOW, durations, ForecastSettings(**knobs))


def test_a_job_behind_one_two_hour_job_on_a_full_cluster_starts_at_its_end() -> None:
    """1 node × 8 GPUs, a/long (8 GPUs, expected 2 h) started just now; a/next waits."""
    world = cluster(1).team("a", guaranteed=8).running("a/long", on="node-1", ran=0.0)
    world.pending("a/next")
    result = run(world, {"a/long": DECLARED_2H})
    estimate = result.get("a/next")
    assert estimate is not None
    assert estimate.start == NOW + 2 * HOUR
    assert estimate.confidence is Confidence.HIGH
    assert estimate.basis == "after 1 job end (1 by expectedDuration)"


def test_a_running_job_ends_at_its_expected_duration_less_what_it_ran() -> None:
    world = cluster(1).team("a", guaranteed=8).running("a/half", on="node-1", ran=HOUR / 2)
    world.pending("a/next")
    estimate = run(world, {"a/half": declared(HOUR)}).get("a/next")
    assert estimate is not None and estimate.start == NOW + HOUR / 2


def test_a_queue_starts_one_job_after_the_other() -> None:
    """1 node: a/now ends in 1 h; a/first (1 h) then a/second, in queue order."""
    world = cluster(1).team("a", guaranteed=8).running("a/now", on="node-1", ran=0.0)
    world.pending("a/first", waited=600).pending("a/second", waited=60)
    result = run(world, {"a/now": declared(HOUR), "a/first": declared(HOUR)})
    first, second = result.get("a/first"), result.get("a/second")
    assert first is not None and first.start == NOW + HOUR
    assert second is not None and second.start == NOW + 2 * HOUR


def test_a_job_owed_its_guarantee_starts_once_the_borrower_checkpointed() -> None:
    """2 nodes; team a borrows both; team b (guaranteed 8) submits 8 GPUs: a's job is
    checkpointed (hook timeout 120 s) and b's starts when its GPUs are released."""
    world = (
        cluster(2)
        .team("a", guaranteed=8)
        .team("b", guaranteed=8)
        .running("a/one", on="node-1", ran=3 * HOUR, hook=True)
        .running("a/two", on="node-2", ran=2 * HOUR, hook=True)
        .pending("b/x")
    )
    result = run(world, {"a/one": declared(10 * HOUR), "a/two": declared(10 * HOUR)})
    estimate = result.get("b/x")
    assert estimate is not None and estimate.start == NOW + 120.0
    assert estimate.basis == "as soon as GPUs being released are free"


def test_learned_durations_lower_the_confidence() -> None:
    world = cluster(1).team("a", guaranteed=8).running("a/long", on="node-1", ran=0.0)
    world.pending("a/next")
    learned = Duration(HOUR, Source.LEARNED, runs=5, low=0.8 * HOUR, high=1.5 * HOUR)
    estimate = run(world, {"a/long": learned}).get("a/next")
    assert estimate is not None and estimate.confidence is Confidence.MEDIUM
    assert "by their team's history" in estimate.basis


def test_a_job_past_its_expected_end_is_a_guess() -> None:
    world = cluster(1).team("a", guaranteed=8).running("a/late", on="node-1", ran=3 * HOUR)
    world.pending("a/next")
    estimate = run(world, {"a/late": declared(HOUR)}, min_step_seconds=60.0).get("a/next")
    assert estimate is not None and estimate.start == NOW + 60.0
    assert estimate.confidence is Confidence.LOW


def test_behind_a_job_of_unknown_duration_there_is_no_estimate() -> None:
    world = cluster(1).team("a", guaranteed=8).running("a/forever", on="node-1")
    world.pending("a/next")
    estimate = run(world, {}).get("a/next")
    assert estimate is not None and estimate.start is None
    assert "1 running job with no expected duration" in estimate.basis


def test_a_job_that_cannot_fit_the_cluster_has_no_estimate() -> None:
    world = cluster(1).team("a", guaranteed=8).pending("a/huge", gpus=8, workers=2)
    estimate = run(world, {}).get("a/huge")
    assert estimate is not None and estimate.start is None
    assert estimate.basis.startswith("it cannot run on this cluster: needs 2 workers")


def test_beyond_the_horizon_there_is_no_estimate() -> None:
    world = cluster(1).team("a", guaranteed=8).running("a/long", on="node-1", ran=0.0)
    world.pending("a/next")
    result = run(world, {"a/long": declared(10 * HOUR)}, horizon_seconds=5 * HOUR)
    estimate = result.get("a/next")
    assert estimate is not None and estimate.start is None
    assert estimate.basis.startswith("not within the")


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.integers(1, 48), min_size=1, max_size=8))
def test_coalesced_steps_lose_nothing_on_a_chain_of_jobs(hours: list[int]) -> None:
    """A chain of jobs on one node: job k starts when the one before it ends. Steps
    span 20 % of the time looked ahead, yet every start is exact."""
    world = cluster(1).team("a", guaranteed=8).running("a/j0", on="node-1", ran=0.0)
    durations = {"a/j0": declared(hours[0] * HOUR)}
    for k, length in enumerate(hours[1:], start=1):
        world.pending(f"a/j{k}", waited=1000.0 - k)
        durations[f"a/j{k}"] = declared(length * HOUR)
    world.pending("a/last", waited=1.0)
    result = run(world, durations, step_fraction=0.2, max_plans=100, horizon_seconds=1e9)
    true_start = NOW
    for k, length in enumerate(hours):
        true_start += length * HOUR
        key = f"a/j{k + 1}" if k + 1 < len(hours) else "a/last"
        estimate = result.get(key)
        assert estimate is not None and estimate.start is not None
        assert estimate.start == true_start


def test_a_queue_of_jobs_shorter_than_a_step_drains_as_fast_as_it_would() -> None:
    """1 node: ten 1-minute jobs queued behind one of 1 minute (steps are 5 min)."""
    world = cluster(1).team("a", guaranteed=8).running("a/j0", on="node-1", ran=0.0)
    durations = {"a/j0": declared(60.0)}
    for k in range(1, 11):
        world.pending(f"a/j{k}", waited=1000.0 - k)
        durations[f"a/j{k}"] = declared(60.0)
    result = run(world, durations)
    starts = [result.estimates[f"a/j{k}"].start for k in range(1, 11)]
    assert starts == [NOW + 60.0 * k for k in range(1, 11)]


def test_a_job_reclaimed_for_idling_rejoins_the_queue_behind_older_jobs() -> None:
    """Team a's a/idle (8 GPUs, idle 2 h, enforce) is reclaimed for b/x; once requeued
    it waits behind a/next, submitted before the reclaim: a/next starts first."""
    world = (
        cluster(2)
        .team("a", guaranteed=8, idle="enforce")
        .team("b", guaranteed=8)
        .running("a/busy", on="node-1", ran=HOUR)
        .running("a/idle", on="node-2", ran=3 * HOUR, idle_for=2 * HOUR, hook=True)
        .pending("b/x", waited=60)
        .pending("a/next", waited=30)
    )
    durations = {"a/busy": declared(2 * HOUR), "b/x": declared(HOUR), "a/next": declared(HOUR)}
    durations["a/idle"] = declared(10 * HOUR)
    result = run(world, durations)
    x, following = result.estimates["b/x"], result.estimates["a/next"]
    assert x.start == NOW + 120.0
    assert following.start == NOW + HOUR


def test_a_learned_duration_with_a_wide_spread_is_a_guess() -> None:
    world = cluster(1).team("a", guaranteed=8).running("a/long", on="node-1", ran=0.0)
    world.pending("a/next")
    spread = Duration(HOUR, Source.LEARNED, runs=9, low=0.2 * HOUR, high=3 * HOUR)
    estimate = run(world, {"a/long": spread}).get("a/next")
    assert estimate is not None and estimate.start == NOW + HOUR
    assert estimate.confidence is Confidence.LOW
