"""Snapshots and plans survive a JSON round trip unchanged."""

from __future__ import annotations

from gpupool.planner import (
    Admission,
    IdleJob,
    IdleMode,
    IdleReclaimPolicy,
    Job,
    JobState,
    Node,
    PendingJob,
    PendingReason,
    PlacementPolicy,
    Plan,
    PlannerConfig,
    Preemption,
    PreemptionReason,
    Resize,
    ResizeKind,
    Snapshot,
    Team,
    TeamFigures,
    TopologyLevel,
    WorkerPlacement,
)


def sample_snapshot() -> Snapshot:
    return Snapshot(
        config=PlannerConfig(min_runtime_seconds=60.0),
        nodes=(
            Node("n1", 8, rack="r1", zone="z1", nvlink_domain="nv1"),
            Node("n2", 8, unhealthy_gpus=1, ready=False, schedulable=False),
        ),
        teams=(
            Team("a", guaranteed_gpus=8, max_gpus=16, weight=2.0, decayed_usage=3.5),
            Team("b", idle_reclaim=IdleReclaimPolicy(10.0, 600.0, IdleMode.ENFORCE)),
        ),
        jobs=(
            Job(
                "a/train",
                "a",
                4,
                min_workers=1,
                max_workers=2,
                state=JobState.RUNNING,
                workers=(WorkerPlacement("n1", 4), WorkerPlacement("n2", 4, True)),
                releasing=(WorkerPlacement("n2", 4, True),),
                preempted_for="b/x",
                started_at=10.0,
                last_checkpoint_at=20.0,
                checkpoint_hook=True,
                idle_since=30.0,
                utilization=2.5,
            ),
            Job(
                "b/x",
                "b",
                8,
                priority=5,
                submitted_at=3.0,
                placement=PlacementPolicy(TopologyLevel.NVLINK_DOMAIN, True, ("n1",)),
            ),
        ),
    )


def test_snapshot_round_trips_through_json() -> None:
    snapshot = sample_snapshot()
    text = snapshot.to_json(now=100.0)
    assert Snapshot.from_json(text) == snapshot
    assert '"nvlinkDomain"' in text


def test_plan_round_trips_through_json() -> None:
    plan = Plan(
        admissions=(Admission("a/x", "a", (WorkerPlacement("n1", 8),), "placed"),),
        preemptions=(Preemption("b/y", "b", PreemptionReason.PRIORITY, 8, "why", "b/z", "b"),),
        resizes=(
            Resize(
                "c/e",
                "c",
                ResizeKind.SHRINK,
                (WorkerPlacement("n2", 2),),
                "give back",
                PreemptionReason.ELASTIC_SHRINK,
                "a/x",
                "a",
            ),
        ),
        pending=(PendingJob("d/q", "d", PendingReason.INSUFFICIENT_GPUS, "full", 1, 1),),
        teams=(TeamFigures("a", 8, 12, 16, 8, 0, 0, 0, 1, 0),),
        idle=(IdleJob("c/e", "c", 900.0, True),),
    )
    assert Plan.from_json(plan.to_json()) == plan
