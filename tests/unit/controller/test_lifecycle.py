"""From a job's pods to where its current run stands."""

from __future__ import annotations

import pytest

from gpupool.controller.lifecycle import RunState, current_run
from gpupool.controller.records import PodRecord

from .builders import make_pod

JOB = "ml/ddp"
UID = "uid-ddp"


def pod(index: int, phase: str, incarnation: int = 0) -> PodRecord:
    builder = make_pod(JOB, index=index, incarnation=incarnation)
    if phase == "Succeeded":
        builder.terminated("Succeeded", exit_code=0)
    elif phase == "Failed":
        builder.terminated("Failed", exit_code=1)
    else:
        builder.phase(phase)
    return builder.obj()


@pytest.mark.parametrize(
    ("pods", "state"),
    [
        ([], RunState.NONE),
        ([pod(0, "Pending"), pod(1, "Running")], RunState.STARTING),
        ([pod(0, "Running"), pod(1, "Running")], RunState.RUNNING),
        # DDP: rank 0 done is the job done; the other ranks are not waited for.
        ([pod(0, "Succeeded"), pod(1, "Running")], RunState.SUCCEEDED),
        ([pod(0, "Running"), pod(1, "Succeeded")], RunState.RUNNING),
        ([pod(0, "Succeeded"), pod(1, "Failed")], RunState.FAILED),
        ([pod(0, "Running"), pod(1, "Failed")], RunState.FAILED),
        # Only the newest incarnation decides.
        ([pod(0, "Failed", 0), pod(0, "Running", 1)], RunState.RUNNING),
    ],
)
def test_run_state_from_pods(pods: list[PodRecord], state: RunState) -> None:
    assert current_run(pods, UID).state is state


def test_older_incarnations_still_running_are_stale() -> None:
    run = current_run([pod(0, "Running", 0), pod(0, "Running", 1)], UID)
    assert run.incarnation == 1
    assert [p.incarnation for p in run.stale] == [0]


def test_pods_of_another_job_with_the_same_name_are_ignored() -> None:
    other = make_pod(JOB).owner_uid("uid-previous-ddp").running().obj()
    assert current_run([other], UID).state is RunState.NONE


def test_failure_message_names_the_worker() -> None:
    run = current_run([pod(0, "Running"), pod(1, "Failed")], UID)
    assert "worker 1" in run.message and "exited 1" in run.message
