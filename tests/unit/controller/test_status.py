"""GPUJob and TeamQuota status rendered from the view, the ledger and the plan."""

from __future__ import annotations

from typing import Any

from gpupool.api import GPUJobStatus, TeamQuotaStatus
from gpupool.controller.ledger import Ledgers
from gpupool.controller.preemption import EvictionRecord
from gpupool.controller.snapshot import JobView, observe
from gpupool.controller.status import (
    IdleState,
    is_minor,
    merge_patch,
    render_job_status,
    render_team_status,
)
from gpupool.controller.usage import TeamUsage
from gpupool.planner import PendingJob, PendingReason, PreemptionReason, TeamFigures

from .builders import T0, cache, indexed, later, make_job, make_node, make_pod, make_team

VISION = make_team("vision", namespaces=["vision"], guaranteed=8)
NODES = [make_node("node-1")]


def view_of(job: Any, pods: list[Any] = (), ledgers: Ledgers | None = None) -> JobView:  # type: ignore[assignment]
    world = indexed(jobs=[job], teams=[VISION], nodes=NODES, pods=list(pods))
    observation = observe(
        world, Ledgers() if ledgers is None else ledgers, cache(), now=T0.timestamp(), busy=set()
    )
    return observation.views[job.key]


def condition(status: GPUJobStatus, type_: str) -> tuple[str, str]:
    found = next(c for c in status.conditions if c.type == type_)
    return found.status, found.reason


def test_pending_job_shows_the_planners_reason_and_position() -> None:
    view = view_of(make_job("vision/resnet").workers(2).gpus(8).obj())
    pending = PendingJob(
        "vision/resnet", "vision", PendingReason.INSUFFICIENT_GPUS, "needs 16 GPUs, 8 free", 3, 1
    )
    status = render_job_status(view, GPUJobStatus(), pending=pending, idle=None, now=T0)
    assert (status.phase, status.shape, status.team) == ("Pending", "2×8", "vision")
    assert status.pending_reason == "InsufficientGPUs"
    assert status.queue_position == 3 and status.detail == "needs 16 GPUs, 8 free"
    assert condition(status, "Admitted") == ("False", "InsufficientGPUs")


def test_running_job_lists_its_workers_and_is_running() -> None:
    pods = [make_pod("vision/resnet").running().obj()]
    view = view_of(make_job("vision/resnet").obj(), pods)
    status = render_job_status(view, GPUJobStatus(), pending=None, idle=None, now=T0)
    assert status.phase == "Running"
    assert [(w.pod, w.node) for w in status.workers] == [("resnet-0-0", "node-1")]
    assert condition(status, "Running") == ("True", "AllWorkersRunning")
    assert condition(status, "Admitted") == ("True", "Admitted")
    assert status.queue_position is None and status.pending_reason == ""


def test_checkpointing_job_carries_the_preemption_record() -> None:
    job = make_job("vision/resnet").hook(60).obj()
    ledgers = Ledgers()
    ledgers.get(job).eviction = EvictionRecord.start(
        PreemptionReason.RECLAIM_BORROWED,
        now=T0,
        timeout_seconds=60,
        incarnation=0,
        for_job="nlp/bert",
        for_team="nlp",
    )
    view = view_of(job, [make_pod("vision/resnet").running().obj()], ledgers)
    status = render_job_status(view, GPUJobStatus(), pending=None, idle=None, now=T0)
    assert status.phase == "Checkpointing"
    assert condition(status, "CheckpointRequested") == ("True", "ReclaimBorrowed")
    assert "for nlp/bert" in status.detail


def test_requeued_job_is_pending_preempted_with_its_checkpoint() -> None:
    job = make_job("vision/resnet").obj()
    ledgers = Ledgers()
    ledger = ledgers.get(job)
    ledger.incarnation = 0
    ledger.preemptions = 1
    ledger.requeued = ("ReclaimBorrowed", "its GPUs go to nlp/bert (team nlp)")
    stored = GPUJobStatus.model_validate(
        {
            "conditions": [
                {"type": "CheckpointRequested", "status": "True", "reason": "ReclaimBorrowed"}
            ]
        }
    )
    view = view_of(job, [], ledgers)
    status = render_job_status(view, stored, pending=None, idle=None, now=T0)
    assert (status.phase, status.preemptions) == ("Pending", 1)
    assert condition(status, "Preempted") == ("True", "ReclaimBorrowed")
    assert condition(status, "CheckpointRequested") == ("False", "Done")


def test_finished_job_keeps_its_outcome() -> None:
    job = make_job("vision/resnet").obj()
    ledgers = Ledgers()
    ledger = ledgers.get(job)
    ledger.outcome, ledger.outcome_reason, ledger.outcome_message = (
        "Succeeded",
        "Completed",
        "worker 0 completed",
    )
    status = render_job_status(
        view_of(job, [], ledgers), GPUJobStatus(), pending=None, idle=None, now=T0
    )
    assert status.phase == "Succeeded"
    assert condition(status, "Finished") == ("True", "Completed")


def test_idle_condition_in_report_mode() -> None:
    pods = [make_pod("vision/resnet").running().obj()]
    view = view_of(make_job("vision/resnet").obj(), pods)
    idle = IdleState(True, False, "GPU utilization 1% below 5% for 31 min")
    status = render_job_status(view, GPUJobStatus(), pending=None, idle=idle, now=T0)
    assert condition(status, "Idle") == ("True", "IdleReported")


def test_rendering_twice_changes_nothing_and_keeps_transition_times() -> None:
    pods = [make_pod("vision/resnet").running().obj()]
    view = view_of(make_job("vision/resnet").obj(), pods)
    first = render_job_status(view, GPUJobStatus(), pending=None, idle=None, now=T0)
    second = render_job_status(view, first, pending=None, idle=None, now=later(5))
    assert merge_patch(first.to_k8s(), second.to_k8s()) == {}


def test_merge_patch_deletes_with_null_and_classifies_minor_changes() -> None:
    stored = {"phase": "Pending", "queuePosition": 4, "detail": "x"}
    moved = {"phase": "Pending", "queuePosition": 3, "detail": "x"}
    admitted = {"phase": "Admitted", "detail": "on node-1"}
    assert merge_patch(stored, moved) == {"queuePosition": 3}
    assert is_minor(merge_patch(stored, moved), stored, frozenset({"queuePosition"}))
    assert merge_patch(stored, admitted) == {
        "phase": "Admitted",
        "queuePosition": None,
        "detail": "on node-1",
    }
    assert not is_minor(merge_patch(stored, admitted), stored, frozenset({"queuePosition"}))


def test_team_status_from_the_plans_figures_and_usage() -> None:
    assert VISION.spec is not None
    figures = TeamFigures("vision", 8, 12, 20, 12, 4, 0, 8, 2, 1)
    usage = TeamUsage(decayed=3.14159, updated_at=T0, gpu_hours_allocated=10, gpu_hours_used=5)
    status = render_team_status(
        VISION.spec, TeamQuotaStatus(), figures, usage, generation=1, now=T0
    )
    assert (status.allocated_gpus, status.borrowed_gpus, status.pending_gpus) == (12, 4, 8)
    assert status.fair_share_gpus == 12 and status.decayed_usage == 3.1416
    borrowing = next(c for c in status.conditions if c.type == "Borrowing")
    assert borrowing.status == "True"
