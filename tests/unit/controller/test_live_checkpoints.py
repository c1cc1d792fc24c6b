"""A job's newest checkpoint among those its running pods reported through the agents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gpupool.api import CheckpointRecord
from gpupool.controller.live_checkpoints import newer_checkpoint, reported_checkpoints
from gpupool.controller.records import GPUNodeRecord, PodRecord, ReportedCheckpoint

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
POD = PodRecord(
    namespace="vision",
    name="a-0-0",
    uid="uid-0",
    job="a",
    job_uid="job-uid",
    index=0,
    incarnation=0,
    node="n1",
    gpus=8,
    phase="Running",
    deleting=False,
    created=None,
    started=None,
)
OTHER = replace(POD, name="a-0-1", uid="uid-1", index=1, node="n2")


def reported(
    pod: PodRecord, location: str, ago: float, uid: str | None = None
) -> ReportedCheckpoint:
    return ReportedCheckpoint(
        pod.namespace,
        pod.name,
        pod.uid if uid is None else uid,
        location,
        NOW - timedelta(seconds=ago),
    )


def reports(*entries: ReportedCheckpoint) -> dict[tuple[str, str], ReportedCheckpoint]:
    return reported_checkpoints([GPUNodeRecord("n1", True, (), None, entries)])


def test_the_newest_report_of_the_jobs_pods_wins() -> None:
    found = newer_checkpoint(
        [POD, OTHER],
        reports(reported(POD, "/c/old", 120), reported(OTHER, "/c/new", 60)),
        None,
        NOW,
    )
    assert found == CheckpointRecord(
        location="/c/new", time=NOW - timedelta(seconds=60), source="workload"
    )


def test_nothing_newer_than_what_is_recorded() -> None:
    last = CheckpointRecord(location="/c/hook", time=NOW - timedelta(seconds=30), source="hook")
    assert newer_checkpoint([POD], reports(reported(POD, "/c/1", 60)), last, NOW) is None
    found = newer_checkpoint([POD], reports(reported(POD, "/c/2", 10)), last, NOW)
    assert found is not None and found.location == "/c/2"


def test_another_pod_of_the_same_name_does_not_count() -> None:
    assert newer_checkpoint([POD], reports(reported(POD, "/c/x", 5, uid="old")), None, NOW) is None
    assert newer_checkpoint([OTHER], reports(reported(POD, "/c/x", 5)), None, NOW) is None


def test_a_node_clock_ahead_never_dates_a_report_in_the_future() -> None:
    found = newer_checkpoint([POD], reports(reported(POD, "/c/f", -300)), None, NOW)
    assert found is not None and found.time == NOW
