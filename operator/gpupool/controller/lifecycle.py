"""From a job's pods to where its current run stands (pure).

Success policy (the Kubeflow PyTorchJob default): the run has succeeded when worker 0
(rank 0) exits successfully and no worker has failed. In DDP-style training every rank
finishes the same loop, and rank 0 is the one that writes the final model; the other
ranks may still be tearing down their process groups, so they are not waited for —
they are deleted. A job whose workers all succeed satisfies this too.

Failure: any worker of the current run that ends in phase Failed fails the run. The
caller retries it as a new incarnation, up to `backoffLimit`. A run whose failed workers
were all refused by their node's kubelet at admission (another pod took the GPUs
between the plan and the pod's arrival) is a placement conflict: re-planned, no failure.

Pods of older incarnations never decide anything; while they still run they are only
cleaned up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from gpupool.controller.records import PodRecord


class RunState(StrEnum):
    NONE = "none"  # no pod of the current incarnation
    STARTING = "starting"  # some workers not running yet
    RUNNING = "running"  # every worker running
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Run:
    """The job's current incarnation as its pods show it."""

    state: RunState
    incarnation: int | None
    # Pods of the current incarnation, by worker index (the newest pod per index).
    workers: dict[int, PodRecord]
    # Non-terminal pods of older incarnations, and of the current one that are not the
    # newest for their index: they still hold GPUs and must go.
    stale: tuple[PodRecord, ...]
    message: str = ""
    # FAILED only because kubelets refused workers at admission: a placement conflict.
    conflict: bool = False
    # Workers of the current run that hold GPUs (not terminal), by index.
    live: tuple[PodRecord, ...] = field(init=False)

    def __post_init__(self) -> None:
        live = tuple(pod for _, pod in sorted(self.workers.items()) if not pod.terminal)
        object.__setattr__(self, "live", live)

    @property
    def indices(self) -> frozenset[int]:
        return frozenset(self.workers)


def current_run(pods: Iterable[PodRecord], job_uid: str) -> Run:
    """Classify the pods of one job (any pod not owned by `job_uid` is ignored)."""
    owned = [pod for pod in pods if pod.job_uid == job_uid]
    if not owned:
        return Run(RunState.NONE, None, {}, ())
    incarnation = max(pod.incarnation for pod in owned)
    workers: dict[int, PodRecord] = {}
    stale: list[PodRecord] = []
    for pod in sorted(owned, key=lambda p: (p.incarnation, p.created is not None, p.created)):
        if pod.incarnation != incarnation:
            if not pod.terminal:
                stale.append(pod)
            continue
        previous = workers.get(pod.index)
        if previous is not None and not previous.terminal:
            stale.append(previous)
        workers[pod.index] = pod
    failed = [pod for _, pod in sorted(workers.items()) if pod.phase == "Failed"]
    zero = workers.get(0)
    if failed:
        first = failed[0]
        if all(pod.refused for pod in failed):
            message = (
                f"node {first.node} refused worker {first.index} (pod {first.name}): "
                f"{first.refused}; another pod took its GPUs first"
            )
            return Run(RunState.FAILED, incarnation, workers, tuple(stale), message, True)
        message = f"worker {first.index} (pod {first.name}) failed"
        if first.message:
            message += f": {first.message}"
        return Run(RunState.FAILED, incarnation, workers, tuple(stale), message)
    if zero is not None and zero.phase == "Succeeded":
        return Run(
            RunState.SUCCEEDED,
            incarnation,
            workers,
            tuple(stale),
            f"worker 0 (pod {zero.name}) completed",
        )
    # A worker that finished before rank 0 is done, not missing.
    running = all(
        pod.phase in ("Running", "Succeeded") and not pod.deleting for pod in workers.values()
    )
    state = RunState.RUNNING if running else RunState.STARTING
    return Run(state, incarnation, workers, tuple(stale))
