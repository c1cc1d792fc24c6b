"""The preemption record survives a restart through the CheckpointRequested condition."""

from __future__ import annotations

import pytest

from gpupool.api import Condition
from gpupool.controller.preemption import EvictionRecord
from gpupool.planner import PreemptionReason

from .builders import T0


@pytest.mark.parametrize(
    "record",
    [
        EvictionRecord.start(
            PreemptionReason.RECLAIM_BORROWED,
            now=T0,
            timeout_seconds=120,
            incarnation=3,
            for_job="nlp/bert",
            for_team="nlp",
            message="team vision borrows 8 GPUs beyond its guarantee. Deadline soon.",
        ),
        EvictionRecord.start(
            PreemptionReason.ELASTIC_SHRINK,
            now=T0,
            timeout_seconds=30,
            incarnation=0,
            workers=(2, 3),
            for_job="nlp/bert",
            for_team="nlp",
        ),
        EvictionRecord.start(
            PreemptionReason.NODE_FAILURE, now=T0, timeout_seconds=0, incarnation=1, message="x"
        ),
        # A grow: every worker is checkpointed, none leaves.
        EvictionRecord.start(
            PreemptionReason.ELASTIC_GROW, now=T0, timeout_seconds=60, incarnation=2, workers=()
        ),
    ],
)
def test_round_trip_through_the_condition(record: EvictionRecord) -> None:
    condition = record.to_condition()
    assert condition.status == "True" and condition.reason == record.reason.value
    back = EvictionRecord.from_condition(Condition.model_validate(condition.to_k8s()))
    assert back is not None
    assert back.reason is record.reason
    assert back.deadline == record.deadline
    assert back.workers == record.workers
    assert back.incarnation == record.incarnation
    assert (back.for_job, back.for_team) == (record.for_job, record.for_team)


def test_a_cleared_condition_is_no_preemption_in_flight() -> None:
    condition = Condition(type="CheckpointRequested", status="False", reason="Done")
    assert EvictionRecord.from_condition(condition) is None


def test_the_deadline_is_the_hook_timeout_after_the_request() -> None:
    record = EvictionRecord.start(
        PreemptionReason.PRIORITY, now=T0, timeout_seconds=90, incarnation=0
    )
    assert (record.deadline - record.requested_at).total_seconds() == 90
    assert "Deadline 2026-01-01T12:01:30Z" in record.condition_message()
