"""GPUs held by pods gpupool does not govern: counted, charged, never placed onto or taken."""

from __future__ import annotations

from .builders import HOUR, cluster
from .invariants import check_invariants


def test_an_inference_deployment_outside_gpupool_keeps_its_gpus() -> None:
    """3 nodes × 8 GPUs; a Deployment placed by kube-scheduler holds 6 GPUs on node-1:
    a 4-GPU job goes elsewhere, a 2-GPU job fits beside the Deployment, and an 8-GPU job
    waits once the other nodes are taken."""
    builder = (
        cluster(3)
        .team("a", guaranteed=24)
        .unmanaged("node-1", 6)
        .running("a/big", on="node-2", ran=HOUR)
        .pending("a/four", gpus=4, waited=300)
        .pending("a/two", gpus=2, waited=200)
        .pending("a/eight", gpus=8, waited=100)
    )
    result = builder.plan()
    placed = {a.job: [w.node for w in a.workers] for a in result.admissions}
    assert placed == {"a/four": ["node-3"], "a/two": ["node-1"]}
    waiting = result.pending_for("a/eight")
    assert waiting is not None and waiting.reason.value == "InsufficientGPUs"
    check_invariants(builder.snapshot(), result, 1_000_000.0)


def test_a_teams_unmanaged_pods_count_as_its_allocation() -> None:
    """2 nodes × 8 GPUs. Team a, guaranteed 8, serves 4 GPUs of inference outside gpupool
    on node-1 beside its 4-GPU job t1, and runs t2 and t3 on node-2: 16 allocated, 8
    borrowed. Team b (guaranteed 8) submits an 8-GPU job: t2 and t3 are reclaimed, which
    leaves a exactly its guarantee; the inference is never touched."""
    builder = (
        cluster(2)
        .team("a", guaranteed=8)
        .team("b", guaranteed=8)
        .unmanaged("node-1", 4, team="a")
        .running("a/t1", gpus=4, on="node-1", ran=3 * HOUR)
        .running("a/t2", gpus=4, on="node-2", ran=2 * HOUR)
        .running("a/t3", gpus=4, on="node-2", ran=HOUR)
        .pending("b/x", gpus=8, waited=60)
    )
    before = builder.plan()
    figures = before.team("a")
    assert figures is not None
    # Once the plan is applied: 8 kept (4 of them unmanaged), 8 being given back.
    assert (figures.allocated_gpus, figures.releasing_gpus, figures.borrowed_gpus) == (16, 8, 0)
    assert figures.unmanaged_gpus == 4
    assert sorted((p.job, p.for_job) for p in before.preemptions) == [
        ("a/t2", "b/x"),
        ("a/t3", "b/x"),
    ]
    check_invariants(builder.snapshot(), before, 1_000_000.0)


def test_a_team_at_its_guarantee_through_unmanaged_pods_keeps_its_jobs() -> None:
    """Team a, guaranteed 8, serves 4 GPUs outside gpupool and trains on 4 more: it is at
    its guarantee, so team b's job waits instead of taking a's training job."""
    result = (
        cluster(1)
        .team("a", guaranteed=8)
        .team("b", guaranteed=0, max=8)
        .unmanaged("node-1", 4, team="a")
        .running("a/train", gpus=4, on="node-1", ran=HOUR)
        .pending("b/x", gpus=4)
        .plan()
    )
    assert result.preemptions == ()
    assert result.pending_for("b/x") is not None


def test_a_team_whose_unmanaged_pods_fill_its_limit_borrows_nothing_more() -> None:
    """Team a may hold 8 at most; its notebooks already hold 8: its job waits at the limit,
    though the cluster is empty."""
    result = (
        cluster(2)
        .team("a", guaranteed=4, max=8)
        .unmanaged("node-1", 8, team="a")
        .pending("a/x", gpus=2)
        .plan()
    )
    assert result.admissions == ()
    waiting = result.pending_for("a/x")
    assert waiting is not None and waiting.reason.value == "TeamAtBorrowingLimit"


def test_unmanaged_gpus_outside_every_team_shrink_what_the_teams_share() -> None:
    """2 nodes × 8; 8 GPUs of pods outside every team: the two teams share the other 8."""
    result = (
        cluster(2)
        .team("a")
        .team("b")
        .unmanaged("node-1", 8)
        .pending("a/x", gpus=8)
        .pending("b/y", gpus=8)
        .plan()
    )
    entitlement = {t.team: t.entitlement_gpus for t in result.teams}
    assert sum(entitlement.values()) == 8
    assert len(result.admissions) == 1


def test_a_node_whose_gpu_fails_under_unmanaged_pods_sheds_gpupools_workers() -> None:
    """node-1 has 8 GPUs, 4 of them held by an unmanaged pod and 4 by a/job; one GPU
    fails (not under the unmanaged pod): gpupool's worker gives way, the pod stays."""
    result = (
        cluster(1)
        .team("a", guaranteed=8)
        .unmanaged("node-1", 4)
        .running("a/job", gpus=4, on="node-1", ran=HOUR)
        .unhealthy("node-1", 1)
        .plan()
    )
    assert [(p.job, p.reason.value) for p in result.preemptions] == [("a/job", "NodeFailure")]
