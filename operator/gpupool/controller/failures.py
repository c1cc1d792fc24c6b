"""Failure detection: workers whose node or GPU can no longer be trusted (pure).

A worker is lost when its Node is NotReady or gone, or when its node's agent marks the
GPU it uses unhealthy (GPUNode pod attribution). Its job is requeued (reason
NodeFailure) and resumes from its last reported checkpoint: its pods cannot be asked
for a new one. Pods on a NotReady or vanished node are force-deleted (grace 0: no
kubelet will ever confirm the deletion); the job's other pods go with a short grace.
The planner keeps off the unhealthy GPUs (they are subtracted from the node's capacity)
and off NotReady nodes until they recover.

Two sources say a GPU is unhealthy: the node's agent (GPUNode status) and the device
plugin, which leaves the GPUs it finds unhealthy out of the Node's allocatable (not out
of its capacity). Both usually see the same XID, so they are counted once: the larger of
the two counts is out of the capacity (`node_health`). A GPU only the agent finds
unhealthy is still allocatable, so the kubelet may hand it to any new pod on the node,
which gpupool cannot steer: no new workers go to such a node until the device plugin
agrees or the GPU recovers (workers already there keep running unless they use it).
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


@dataclass(frozen=True, slots=True)
class NodeHealth:
    # GPUs out of the node's capacity (status.capacity) as unhealthy, leaving out those
    # held by the pods the caller takes out of the capacity itself.
    unhealthy: int
    # The agent finds a GPU unhealthy that no pod holds and the device plugin still
    # advertises: the kubelet may hand it to the next pod placed here.
    handed_out: bool


def node_health(
    node: NodeRecord,
    gpunode: GPUNodeRecord | None,
    *,
    exclude: Set[tuple[str, str]] = frozenset(),
) -> NodeHealth:
    """What the agent and the device plugin say about a node's GPUs, counted once.

    GPUs held by the pods in `exclude` are left out (the caller counts them otherwise).
    """
    reported = gpunode.unhealthy if gpunode is not None else ()
    excluded = sum(1 for device in reported if device.pod is not None and device.pod in exclude)
    free = sum(1 for device in reported if device.pod is None)
    withheld = node.withheld_gpus
    return NodeHealth(
        unhealthy=max(0, max(len(reported), withheld) - excluded),
        handed_out=free > withheld,
    )
