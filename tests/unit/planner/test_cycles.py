"""Decisions across cycles, replay from JSON, and the figures the operator writes."""

from __future__ import annotations

import pytest

from gpupool.planner import JobState, Snapshot, plan, replay

from .builders import HOUR, NOW, ClusterBuilder, cluster
from .test_scenarios import ALL, Expect


def test_borrowed_gpus_come_back_after_the_checkpoint() -> None:
    """3 nodes × 8 GPUs, team a guaranteed 8 and borrowing 16; team b submits 8:
    a's youngest borrowed job is checkpointed, then b runs on node-2."""

    def world(victim_state: JobState | None) -> Snapshot:
        builder = (
            cluster(3)
            .team("a", guaranteed=8)
            .team("b", guaranteed=8)
            .running("a/old", on="node-1", ran=10 * HOUR)
            .running("a/older", on="node-3", ran=5 * HOUR)
            .pending("b/x")
        )
        if victim_state is JobState.RUNNING:
            builder.running("a/young", on="node-2", ran=HOUR)
        elif victim_state is JobState.PREEMPTING:
            builder.preempting("a/young", on="node-2", for_job="b/x")
        return builder.snapshot()

    first = plan(world(JobState.RUNNING), NOW)
    assert [(p.job, p.for_job) for p in first.preemptions] == [("a/young", "b/x")]

    # The hook is still running: b/x waits and nothing else is preempted.
    second = plan(world(JobState.PREEMPTING), NOW + 30)
    assert second.preemptions == () and second.admissions == ()
    waiting = second.pending_for("b/x")
    assert waiting is not None and waiting.reason.value == "WaitingForPreemption"

    # The victim is gone: b/x starts where it was.
    third = plan(world(None), NOW + 90)
    admission = third.admission_for("b/x")
    assert admission is not None and [w.node for w in admission.workers] == ["node-2"]
    assert third.preemptions == ()


def test_at_its_limit_a_team_makes_room_once_and_keeps_it_for_the_job() -> None:
    """4 nodes × 8 GPUs, team a limited to 16 and holding 16: a/high (4 GPUs, priority 10)
    checkpoints a/mid away; while a/mid checkpoints, nothing else of team a is admitted
    into the room and nothing more is preempted; then a/high runs where a/mid was."""

    def world(victim: JobState | None) -> Snapshot:
        builder = (
            cluster(4)
            .team("a", guaranteed=8, max=16)
            .running("a/keep", on="node-1", priority=5, ran=3 * HOUR)
            .pending("a/high", gpus=4, priority=10)
            .pending("a/low", gpus=2, priority=0, waited=600)
        )
        if victim is JobState.RUNNING:
            builder.running("a/mid", on="node-2", priority=5, ran=HOUR / 2)
        elif victim is JobState.PREEMPTING:
            builder.preempting("a/mid", on="node-2", for_job="a/high")
        return builder.snapshot()

    first = plan(world(JobState.RUNNING), NOW)
    assert [(p.job, p.for_job) for p in first.preemptions] == [("a/mid", "a/high")]
    assert first.admissions == ()
    low = first.pending_for("a/low")
    assert low is not None and low.reason.value == "TeamAtBorrowingLimit"

    second = plan(world(JobState.PREEMPTING), NOW + 30)
    assert second.preemptions == () and second.admissions == ()
    high, low = second.pending_for("a/high"), second.pending_for("a/low")
    assert high is not None and high.reason.value == "WaitingForPreemption"
    assert low is not None and "8 of them checkpointing" in low.message

    third = plan(world(None), NOW + 90)
    admission = third.admission_for("a/high")
    assert admission is not None and [w.node for w in admission.workers] == ["node-2"]


def test_a_shrink_in_flight_is_not_repeated() -> None:
    builder = (
        cluster(3)
        .team("a", guaranteed=8)
        .team("b", guaranteed=16)
        .running(
            "a/el",
            workers=3,
            min_workers=1,
            max_workers=3,
            on=["node-1", "node-2", "node-3"],
            releasing=["node-3"],
            preempted_for="b/x",
        )
        .pending("b/x")
    )
    result = builder.plan()
    assert result.resizes == () and result.preemptions == ()
    waiting = result.pending_for("b/x")
    assert waiting is not None and waiting.reason.value == "WaitingForPreemption"
    figures = result.team("a")
    assert figures is not None and figures.releasing_gpus == 8 and figures.allocated_gpus == 24


@pytest.mark.parametrize(("builder", "expect"), ALL)
def test_json_record_replays_the_same_plan(builder: ClusterBuilder, expect: Expect) -> None:
    snapshot = builder.snapshot()
    record = snapshot.to_json(now=NOW)
    assert replay(record).to_json() == plan(snapshot, NOW).to_json()


def test_idle_jobs_are_reported_in_both_modes() -> None:
    result = (
        cluster(3)
        .team("a", idle="report")
        .team("b", idle="enforce", idle_after=600)
        .running("a/idle", on="node-1", idle_for=HOUR)
        .running("b/idle", on="node-2", idle_for=900)
        .running("b/recent", on="node-3", idle_for=60)
        .plan()
    )
    assert [(i.job, i.enforced) for i in result.idle] == [("a/idle", False), ("b/idle", True)]


def test_team_figures_for_status() -> None:
    result = (
        cluster(4)
        .team("a", guaranteed=8, max=24)
        .team("b", guaranteed=8)
        .running("a/1", on="node-1")
        .running("a/2", on="node-2")
        .pending("a/3", workers=2)
        .pending("b/1")
        .plan()
    )
    a, b = result.team("a"), result.team("b")
    assert a is not None and b is not None
    assert (a.allocated_gpus, a.borrowed_gpus, a.pending_gpus, a.pending_jobs) == (16, 8, 16, 1)
    assert (a.entitlement_gpus, a.demand_gpus, a.running_jobs) == (24, 32, 2)
    assert (b.allocated_gpus, b.entitlement_gpus, b.running_jobs, b.pending_jobs) == (8, 8, 1, 0)
