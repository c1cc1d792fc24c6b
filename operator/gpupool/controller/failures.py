"""Failure detection: workers whose node or GPU can no longer be trusted (pure).

A worker is lost when its Node is NotReady or gone, or when its node's agent marks the
GPU it uses unhealthy (GPUNode pod attribution). Its job is requeued (reason
NodeFailure) and resumes from its last reported checkpoint: its pods cannot be asked
for a new one. Pods on a NotReady or vanished node are force-deleted (grace 0: no
kubelet will ever confirm the deletion); the job's other pods go with a short grace.
The planner keeps off the unhealthy GPUs (they are subtracted from the node's capacity)
and off NotReady nodes until they recover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from gpupool.controller.records import GPUNodeRecord, NodeRecord, PodRecord


@dataclass(frozen=True, slots=True)
class Fault:
    """Why one worker pod is lost."""

    pod: PodRecord
    message: str
    # The node is gone or NotReady: delete with grace 0, nothing will answer.
    node_down: bool


def node_problem(name: str, nodes: Mapping[str, NodeRecord]) -> str | None:
    node = nodes.get(name)
    if node is None:
        return f"node {name} is gone"
    if not node.ready:
        return f"node {name} is NotReady ({node.not_ready_reason})"
    return None


def unhealthy_gpu_users(gpunodes: Iterable[GPUNodeRecord]) -> dict[tuple[str, str], str]:
    """(namespace, pod) -> why: pods the agents attribute an unhealthy GPU to."""
    users: dict[tuple[str, str], str] = {}
    for gpunode in gpunodes:
        for device in gpunode.unhealthy:
            if device.pod is not None:
                why = device.health_reason or "unhealthy"
                users[device.pod] = f"GPU {device.index} on node {gpunode.node} is {why}"
    return users


def job_faults(
    pods: Iterable[PodRecord],
    nodes: Mapping[str, NodeRecord],
    unhealthy_users: Mapping[tuple[str, str], str],
) -> list[Fault]:
    """The lost workers among a running job's live pods."""
    faults = []
    for pod in pods:
        problem = node_problem(pod.node, nodes)
        if problem is not None:
            faults.append(Fault(pod, problem, node_down=True))
            continue
        gpu = unhealthy_users.get((pod.namespace, pod.name))
        if gpu is not None:
            faults.append(Fault(pod, gpu, node_down=False))
    return faults


def unhealthy_counts(
    gpunodes: Iterable[GPUNodeRecord], *, exclude: Set[tuple[str, str]] = frozenset()
) -> dict[str, int]:
    """Unhealthy GPUs per node, as the planner's `Node.unhealthy_gpus`.

    GPUs held by the pods in `exclude` are left out (the caller counts them otherwise).
    """
    counts: dict[str, int] = {}
    for gpunode in gpunodes:
        count = sum(1 for device in gpunode.unhealthy if device.pod not in exclude)
        if count:
            counts[gpunode.node] = count
    return counts
