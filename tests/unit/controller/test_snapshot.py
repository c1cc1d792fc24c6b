"""Observing jobs from index contents and building the planner's snapshot."""

from __future__ import annotations

from gpupool.controller.cache import AssumedWorker
from gpupool.controller.ledger import Ledgers
from gpupool.controller.preemption import EvictionRecord
from gpupool.controller.snapshot import (
    Cleanup,
    Finish,
    Indexed,
    Lost,
    Observation,
    Retry,
    build_snapshot,
    observe,
)
from gpupool.planner import JobState, PlannerConfig, PreemptionReason, Snapshot

from .builders import (
    T0,
    cache,
    indexed,
    iso,
    later,
    make_job,
    make_node,
    make_other_pod,
    make_pod,
    make_team,
)

VISION = make_team("vision", namespaces=["vision"], guaranteed=8)
NLP = make_team("nlp", namespaces=["nlp"], guaranteed=8, max_gpus=16)
NODES = [make_node("node-1"), make_node("node-2"), make_node("node-3")]


def run(
    world: Indexed, ledgers: Ledgers | None = None, **kwargs: object
) -> tuple[Observation, Snapshot]:
    c = kwargs.pop("cache", None) or cache()
    busy = kwargs.pop("busy", set())
    observation = observe(
        world, Ledgers() if ledgers is None else ledgers, c, now=T0.timestamp(), busy=busy
    )  # type: ignore[arg-type]
    return observation, build_snapshot(world, observation, {}, PlannerConfig())


def unmanaged(snapshot: Snapshot) -> tuple[dict[str, int], dict[str, int]]:
    """GPUs of pods outside any planned run: per node, and charged per team."""
    return (
        {node.name: node.unmanaged_gpus for node in snapshot.nodes},
        {team.name: team.unmanaged_gpus for team in snapshot.teams},
    )


def test_running_and_pending_jobs_across_teams() -> None:
    """3 nodes × 8 GPUs; vision runs resnet 2×4 on node-1; nlp's bert 1×8 waits."""
    resnet = make_job("vision/resnet").workers(2).gpus(4).obj()
    bert = make_job("nlp/bert").gpus(8).obj()
    pods = [
        make_pod("vision/resnet", index=i, node="node-1").gpus(4).running().obj() for i in (0, 1)
    ]
    observation, snapshot = run(
        indexed(jobs=[resnet, bert], teams=[VISION, NLP], nodes=NODES, pods=pods)
    )
    jobs = {job.key: job for job in snapshot.jobs}
    assert jobs["vision/resnet"].state is JobState.RUNNING
    assert [(w.node, w.gpus) for w in jobs["vision/resnet"].workers] == [("node-1", 4)] * 2
    assert jobs["vision/resnet"].team == "vision"  # derived from the namespace
    assert jobs["nlp/bert"].state is JobState.PENDING
    assert [node.gpus for node in snapshot.nodes] == [8, 8, 8]
    assert observation.actions == []


def test_live_pods_outside_any_planned_run_take_their_gpus_out_of_the_node() -> None:
    done = make_job("vision/done").gpus(8).status(phase="Succeeded").obj()
    leftover = make_pod("vision/done", node="node-2").gpus(8).running().obj()
    old = make_pod("vision/resnet", node="node-3", incarnation=0).gpus(2).running().obj()
    new = make_pod("vision/resnet", node="node-1", incarnation=1).gpus(2).running().obj()
    resnet = make_job("vision/resnet").gpus(2).status(restarts=1, admittedAt="2026-01-01T11:00:00Z")
    observation, snapshot = run(
        indexed(
            jobs=[done, resnet.obj()],
            teams=[VISION],
            nodes=NODES,
            pods=[leftover, old, new],
        )
    )
    assert unmanaged(snapshot) == (
        {"node-1": 0, "node-2": 8, "node-3": 2},
        {"vision": 0},
    )
    cleanups = [a for a in observation.actions if isinstance(a, Cleanup)]
    assert sorted(p.name for a in cleanups for p in a.pods) == ["done-0-0", "resnet-0-0"]


def test_an_assumed_admission_occupies_gpus_before_its_pods_exist() -> None:
    job = make_job("nlp/bert").workers(2).gpus(8).obj()
    c = cache()
    c.assume(job.key, 0, [AssumedWorker(0, "node-1", 8), AssumedWorker(1, "node-2", 8)])
    _, snapshot = run(indexed(jobs=[job], teams=[NLP], nodes=NODES), cache=c)
    (planned,) = snapshot.jobs
    assert planned.state is JobState.RUNNING
    assert [w.node for w in planned.workers] == ["node-1", "node-2"]


def test_a_job_from_a_namespace_outside_its_team_cannot_use_the_teams_gpus() -> None:
    job = make_job("vision/sneaky").team("nlp").obj()
    observation, snapshot = run(indexed(jobs=[job], teams=[VISION, NLP], nodes=NODES))
    assert snapshot.jobs == ()
    blocker = observation.views[job.key].blocker
    assert blocker is not None and blocker.reason == "NamespaceNotInTeam"
    assert "namespace vision is not one of TeamQuota nlp's namespaces" in blocker.message


def test_a_job_without_a_team_is_blocked() -> None:
    job = make_job("nowhere/x").obj()
    observation, _ = run(indexed(jobs=[job], teams=[VISION], nodes=NODES))
    blocker = observation.views[job.key].blocker
    assert blocker is not None and blocker.reason == "NoTeamQuota"


def test_workers_on_a_notready_node_lose_the_job() -> None:
    job = make_job("vision/resnet").workers(2).obj()
    pods = [
        make_pod("vision/resnet", index=0, node="node-1").running().obj(),
        make_pod("vision/resnet", index=1, node="node-2").running().obj(),
    ]
    nodes = [make_node("node-1"), make_node("node-2", ready=False)]
    observation, _ = run(indexed(jobs=[job], teams=[VISION], nodes=nodes, pods=pods))
    (lost,) = [a for a in observation.actions if isinstance(a, Lost)]
    assert [f.pod.index for f in lost.faults] == [1]
    assert "NotReady" in lost.message


def test_a_worker_deleted_behind_gpupools_back_loses_the_job() -> None:
    job = make_job("vision/resnet").obj()
    pod = make_pod("vision/resnet").running().deleting().obj()
    observation, _ = run(indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=[pod]))
    assert [type(a) for a in observation.actions] == [Lost]


def test_workers_on_a_node_that_is_gone_keep_the_node_in_the_books() -> None:
    job = make_job("vision/resnet").obj()
    pod = make_pod("vision/resnet", node="node-9").running().obj()
    observation, snapshot = run(indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=[pod]))
    assert [type(a) for a in observation.actions] == [Lost]
    gone = {node.name: node for node in snapshot.nodes}["node-9"]
    assert not gone.ready and gone.gpus == 1


def test_rank_zero_done_finishes_the_job() -> None:
    job = make_job("vision/resnet").workers(2).obj()
    pods = [
        make_pod("vision/resnet", index=0).terminated("Succeeded", exit_code=0).obj(),
        make_pod("vision/resnet", index=1).running().obj(),
    ]
    observation, snapshot = run(indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=pods))
    assert [type(a) for a in observation.actions] == [Finish]
    assert snapshot.jobs == ()
    assert {node.name: node.unmanaged_gpus for node in snapshot.nodes}["node-1"] == 1


def test_a_worker_failure_is_counted_once() -> None:
    job = make_job("vision/resnet").workers(2).obj()
    pods = [
        make_pod("vision/resnet", index=0).terminated("Failed", exit_code=1).obj(),
        make_pod("vision/resnet", index=1).running().obj(),
    ]
    world = indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=pods)
    ledgers = Ledgers()
    first, _ = run(world, ledgers)
    assert [type(a) for a in first.actions] == [Retry]
    again, _ = run(world, ledgers)
    assert again.actions == []


def test_an_eviction_in_flight_is_preempting_and_resumed_when_no_task_runs_it() -> None:
    job = make_job("vision/resnet").obj()
    pod = make_pod("vision/resnet").running().obj()
    ledgers = Ledgers()
    ledgers.get(job).eviction = EvictionRecord.start(
        PreemptionReason.RECLAIM_BORROWED,
        now=T0,
        timeout_seconds=60,
        incarnation=0,
        for_job="nlp/bert",
        for_team="nlp",
    )
    world = indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=[pod])
    observation, snapshot = run(world, ledgers)
    (planned,) = snapshot.jobs
    assert planned.state is JobState.PREEMPTING and planned.preempted_for == "nlp/bert"
    assert observation.orphaned_evictions == [job.key]
    busy, _ = run(world, ledgers, busy={job.key})
    assert busy.orphaned_evictions == []


def test_a_restarted_operator_resumes_the_preemption_persisted_in_status() -> None:
    record = EvictionRecord.start(
        PreemptionReason.PRIORITY, now=T0, timeout_seconds=60, incarnation=2, for_job="vision/x"
    )
    job = (
        make_job("vision/resnet")
        .status(
            phase="Checkpointing",
            restarts=2,
            admittedAt="2026-01-01T11:00:00Z",
            conditions=[record.to_condition().to_k8s()],
        )
        .obj()
    )
    pod = make_pod("vision/resnet", incarnation=2).running().obj()
    observation, snapshot = run(indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=[pod]))
    assert snapshot.jobs[0].state is JobState.PREEMPTING
    assert observation.orphaned_evictions == [job.key]
    assert observation.views[job.key].ledger.incarnation == 2


def test_the_next_incarnation_never_reuses_one_a_pod_already_has() -> None:
    job = make_job("vision/resnet").obj()
    pod = make_pod("vision/resnet", incarnation=4).terminated("Succeeded", exit_code=0).obj()
    ledgers = Ledgers()
    run(indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=[pod]), ledgers)
    assert ledgers.get(job).next_incarnation() == 5


def test_a_job_taken_back_for_idling_queues_from_its_requeue_not_its_submission() -> None:
    """Two nlp jobs wait: bert was submitted first but was just reclaimed for sitting idle
    (its status says so, as after a restart); gpt, submitted later, now goes first."""
    requeued = later(30)
    idle = {
        "type": "Preempted",
        "status": "True",
        "reason": "IdleReclaim",
        "message": "IdleReclaim: its GPUs go to nlp/other (team nlp)",
        "lastTransitionTime": iso(requeued),
    }
    bert = make_job("nlp/bert").gpus(8).status(phase="Pending", conditions=[idle]).obj()
    gpt = make_job("nlp/gpt").gpus(8).created(later(10)).obj()
    borrowed = {**idle, "reason": "ReclaimBorrowed"}
    t5 = make_job("nlp/t5").gpus(8).status(phase="Pending", conditions=[borrowed]).obj()
    _, snapshot = run(indexed(jobs=[bert, gpt, t5], teams=[NLP], nodes=NODES))
    jobs = {job.key: job for job in snapshot.jobs}
    assert jobs["nlp/bert"].submitted_at == requeued.timestamp()
    assert jobs["nlp/gpt"].submitted_at == later(10).timestamp()
    assert jobs["nlp/t5"].submitted_at == T0.timestamp()  # reclaimed, not idle: keeps its place


def test_pods_gpupool_did_not_create_hold_their_gpus_and_are_charged_to_their_team() -> None:
    """An inference replica in vision's namespace (2 GPUs on node-1), a notebook outside
    every team (1 GPU on node-2) and one on a node outside the pool: the first two are out
    of their nodes' capacity, only the first is vision's; none is a job."""
    serving = make_other_pod("vision/serve-0", node="node-1", gpus=2)
    notebook = make_other_pod("jupyter/nb", node="node-2", gpus=1)
    elsewhere = make_other_pod("vision/serve-1", node="cpu-pool-1", gpus=4)
    _, snapshot = run(
        indexed(
            jobs=[make_job("vision/resnet").gpus(8).obj()],
            teams=[VISION, NLP],
            nodes=NODES,
            other_pods=[serving, notebook, elsewhere],
        )
    )
    assert unmanaged(snapshot) == (
        {"node-1": 2, "node-2": 1, "node-3": 0},
        {"nlp": 0, "vision": 2},
    )
    assert [job.key for job in snapshot.jobs] == ["vision/resnet"]


def test_a_resizing_job_holds_its_next_incarnations_gpus_while_its_pods_go() -> None:
    """An elastic 2 × 8 job shrinks to 1: both workers are checkpointed and deleted,
    worker 0's node is assumed for incarnation 1. While the pods are still there the
    job holds node-1 (assumed) and node-2 (releasing); once they are gone, node-1 is
    still held, so no other job gets it before the new pod exists."""
    job = make_job("vision/el").spec(workers=None, minWorkers=1, maxWorkers=2).gpus(8).obj()
    pods = [
        make_pod("vision/el", index=index, node=node).gpus(8).running().obj()
        for index, node in ((0, "node-1"), (1, "node-2"))
    ]
    ledgers = Ledgers()
    ledgers.get(job).eviction = EvictionRecord.start(
        PreemptionReason.ELASTIC_SHRINK, now=T0, timeout_seconds=60, incarnation=0, workers=(1,)
    )
    assumed = cache()
    assumed.assume(job.key, 1, [AssumedWorker(0, "node-1", 8)])
    world = indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=pods)
    _, snapshot = run(world, ledgers, cache=assumed, busy={job.key})
    (planned,) = snapshot.jobs
    assert planned.state is JobState.RUNNING
    assert sorted((w.node, w.gpus) for w in planned.workers) == [("node-1", 8), ("node-2", 8)]
    assert [(w.node, w.gpus) for w in planned.releasing] == [("node-2", 8)]
    gone = indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=[])
    _, snapshot = run(gone, ledgers, cache=assumed, busy={job.key})
    (planned,) = snapshot.jobs
    assert [(w.node, w.gpus) for w in planned.workers] == [("node-1", 8)]
    assert planned.releasing == ()
