"""Idle tracking: a running job's GPU utilization and since when it has been idle.

A job's utilization is the mean, over the GPUs its pods hold, of each GPU's windowed
utilization as the node agents attribute them (GPUNode `status.gpus[].pod`). A job is
idle while that mean (1-minute window) stays below its team's `idleReclaim`
threshold; `idle_since` is when it went below, kept in memory and in
`status.utilization.idleSince` so a restart does not reset the clock. Without
measurements there is no evidence of idleness, so the clock stops.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from gpupool.controller.records import GPUNodeRecord, PodRecord


@dataclass(frozen=True, slots=True)
class JobUtilization:
    """Percent, averaged over the job's GPUs the agents report on."""

    mean_1m: float
    mean_5m: float
    mean_15m: float
    gpus: int


def job_utilization(
    pods: Iterable[PodRecord], gpunodes: Mapping[str, GPUNodeRecord]
) -> JobUtilization | None:
    """The mean utilization of the GPUs attributed to `pods`; None when none is reported."""
    ones: list[float] = []
    fives: list[float] = []
    fifteens: list[float] = []
    for pod in pods:
        gpunode = gpunodes.get(pod.node)
        if gpunode is None or not gpunode.reporting:
            continue
        for device in gpunode.devices:
            if device.pod == (pod.namespace, pod.name):
                ones.append(device.utilization_1m)
                fives.append(device.utilization_5m)
                fifteens.append(device.utilization_15m)
    if not ones:
        return None
    count = len(ones)
    return JobUtilization(
        mean_1m=round(sum(ones) / count, 1),
        mean_5m=round(sum(fives) / count, 1),
        mean_15m=round(sum(fifteens) / count, 1),
        gpus=count,
    )


def next_idle_since(
    previous: datetime | None,
    utilization: JobUtilization | None,
    threshold: float | None,
    *,
    now: datetime,
    running_since: datetime | None,
) -> datetime | None:
    """When the job became idle, carried forward while it stays idle; None when busy.

    `threshold` None: the team does not track idleness. The clock never starts before
    the job's current run began (a resumed job is not idle from its previous life).
    """
    if threshold is None or utilization is None or utilization.mean_1m >= threshold:
        return None
    since = previous or now
    if running_since is not None and since < running_since:
        since = running_since
    return min(since, now)
