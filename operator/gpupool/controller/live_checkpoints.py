"""Checkpoints running workers reported while they run (pure).

The workload helper prints each checkpoint it reports; the node agent reads it from
the container's log and publishes it per pod in its GPUNode (`status.checkpoints`,
see gpupool.agent.checkpoints). A job's newest such report becomes its
`status.lastCheckpoint` (source `workload`) as soon as it is seen: the planner's
victim cost counts the work since then, and a job that loses a worker to a node
failure resumes from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from gpupool.api import CheckpointRecord
from gpupool.controller.records import GPUNodeRecord, PodRecord, ReportedCheckpoint

PodKey = tuple[str, str]


def reported_checkpoints(gpunodes: Iterable[GPUNodeRecord]) -> dict[PodKey, ReportedCheckpoint]:
    """Every pod's published report, by (namespace, pod name)."""
    found: dict[PodKey, ReportedCheckpoint] = {}
    for gpunode in gpunodes:
        for reported in gpunode.checkpoints:
            found[(reported.namespace, reported.name)] = reported
    return found


def newer_checkpoint(
    pods: Iterable[PodRecord],
    reports: Mapping[PodKey, ReportedCheckpoint],
    last: CheckpointRecord | None,
    now: datetime,
) -> CheckpointRecord | None:
    """The newest checkpoint the job's `pods` reported, when it is newer than `last`
    (or `last` has no time); None otherwise. A time ahead of `now` (a node's clock
    running ahead) counts as `now`: a report never makes a job look cheaper than one
    that has just saved."""
    best: ReportedCheckpoint | None = None
    for pod in pods:
        reported = reports.get((pod.namespace, pod.name))
        if reported is None or reported.saved_at is None:
            continue
        if reported.uid and reported.uid != pod.uid:
            continue
        if best is None or best.saved_at is None or reported.saved_at > best.saved_at:
            best = reported
    if best is None or best.saved_at is None:
        return None
    saved_at = min(best.saved_at, now)
    if last is not None and last.time is not None and saved_at <= last.time:
        return None
    return CheckpointRecord(location=best.location, time=saved_at, source="workload")
