"""Fluent builders for the operator's index records, so tests read like the domain.

make_job("vision-train/resnet").workers(2).gpus(8).obj()
make_pod("vision-train/resnet", index=0, node="node-1").running().obj()
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from gpupool.controller.cache import SchedulingCache
from gpupool.controller.records import (
    GPUNodeRecord,
    GPUPodRecord,
    JobRecord,
    NodeRecord,
    PodRecord,
    TeamRecord,
    gpu_pod_record,
    gpunode_record,
    job_record,
    node_record,
    pod_record,
    team_record,
)
from gpupool.controller.snapshot import Indexed

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class JobBuilder:
    def __init__(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        self.body: dict[str, Any] = {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "GPUJob",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "generation": 1,
                "resourceVersion": "10",
                "creationTimestamp": iso(T0),
            },
            "spec": {
                "gpusPerWorker": 1,
                "workers": 1,
                "template": {"spec": {"containers": [{"name": "train", "image": "busybox"}]}},
            },
        }

    def spec(self, **fields: Any) -> Self:
        self.body["spec"].update(fields)
        return self

    def workers(self, count: int) -> Self:
        return self.spec(workers=count)

    def elastic(self, low: int, high: int) -> Self:
        self.body["spec"].pop("workers", None)
        return self.spec(minWorkers=low, maxWorkers=high)

    def gpus(self, count: int) -> Self:
        return self.spec(gpusPerWorker=count)

    def team(self, name: str) -> Self:
        return self.spec(team=name)

    def hook(self, timeout: int = 60) -> Self:
        return self.spec(checkpoint={"mode": "signal", "timeoutSeconds": timeout})

    def created(self, when: datetime) -> Self:
        self.body["metadata"]["creationTimestamp"] = iso(when)
        return self

    def status(self, **fields: Any) -> Self:
        self.body.setdefault("status", {}).update(fields)
        return self

    def uid(self, uid: str) -> Self:
        self.body["metadata"]["uid"] = uid
        return self

    def raw(self) -> dict[str, Any]:
        return copy.deepcopy(self.body)

    def obj(self) -> JobRecord:
        return job_record(self.raw())


def make_job(key: str) -> JobBuilder:
    return JobBuilder(key)


class PodBuilder:
    def __init__(self, job: str, *, index: int, node: str, incarnation: int = 0) -> None:
        namespace, _, name = job.partition("/")
        self.body: dict[str, Any] = {
            "metadata": {
                "name": f"{name}-{incarnation}-{index}",
                "namespace": namespace,
                "uid": f"pod-{name}-{incarnation}-{index}",
                "creationTimestamp": iso(T0),
                "labels": {
                    "gpupool.io/job": name,
                    "gpupool.io/worker-index": str(index),
                    "gpupool.io/incarnation": str(incarnation),
                    "app.kubernetes.io/managed-by": "gpupool",
                },
                "ownerReferences": [
                    {"kind": "GPUJob", "name": name, "uid": f"uid-{name}", "controller": True}
                ],
            },
            "spec": {
                "nodeName": node,
                "containers": [{"name": "train", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            },
            "status": {"phase": "Pending"},
        }

    def gpus(self, count: int) -> Self:
        self.body["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = str(count)
        return self

    def phase(self, phase: str) -> Self:
        self.body["status"]["phase"] = phase
        return self

    def running(self) -> Self:
        return self.phase("Running")

    def owner_uid(self, uid: str) -> Self:
        self.body["metadata"]["ownerReferences"][0]["uid"] = uid
        return self

    def deleting(self) -> Self:
        self.body["metadata"]["deletionTimestamp"] = iso(T0)
        return self

    def terminated(self, phase: str, *, exit_code: int, message: str = "") -> Self:
        self.body["status"] = {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "train",
                    "state": {"terminated": {"exitCode": exit_code, "message": message}},
                }
            ],
        }
        return self

    def raw(self) -> dict[str, Any]:
        return copy.deepcopy(self.body)

    def obj(self) -> PodRecord:
        record = pod_record(self.raw())
        assert record is not None
        return record


def make_pod(job: str, *, index: int = 0, node: str = "node-1", incarnation: int = 0) -> PodBuilder:
    return PodBuilder(job, index=index, node=node, incarnation=incarnation)


def other_pod_body(
    key: str,
    *,
    node: str | None = "node-1",
    gpus: int = 1,
    phase: str = "Running",
    requests_only: bool = False,
) -> dict[str, Any]:
    """A pod gpupool did not create (an inference replica, a notebook) asking for GPUs."""
    namespace, _, name = key.partition("/")
    resources = {"requests" if requests_only else "limits": {"nvidia.com/gpu": str(gpus)}}
    spec: dict[str, Any] = {"containers": [{"name": "serve", "image": "x", "resources": resources}]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{key}"},
        "spec": spec,
        "status": {"phase": phase},
    }


def make_other_pod(key: str, *, node: str = "node-1", gpus: int = 1) -> GPUPodRecord:
    record = gpu_pod_record(other_pod_body(key, node=node, gpus=gpus))
    assert record is not None
    return record


def make_node(
    name: str,
    gpus: int = 8,
    *,
    ready: bool = True,
    rack: str = "",
    withheld: int = 0,
) -> NodeRecord:
    """`withheld`: GPUs the device plugin found unhealthy (in capacity, not allocatable)."""
    labels = {"gpupool.io/rack": rack} if rack else {}
    return node_record(
        {
            "metadata": {"name": name, "labels": labels},
            "status": {
                "capacity": {"nvidia.com/gpu": str(gpus)},
                "allocatable": {"nvidia.com/gpu": str(gpus - withheld)},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "Unknown",
                        "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                    }
                ],
            },
        }
    )


def make_team(
    name: str,
    *,
    namespaces: list[str],
    guaranteed: int,
    max_gpus: int | None = None,
    idle: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> TeamRecord:
    spec: dict[str, Any] = {"namespaces": namespaces, "guaranteedGPUs": guaranteed}
    if max_gpus is not None:
        spec["maxGPUs"] = max_gpus
    if idle is not None:
        spec["idleReclaim"] = idle
    return team_record(
        {"metadata": {"name": name, "uid": f"team-{name}"}, "spec": spec, "status": status or {}}
    )


def make_gpunode(
    node: str,
    *,
    gpus: int = 8,
    users: dict[int, str] | None = None,
    utilization: float = 0.0,
    unhealthy: dict[int, str] | None = None,
) -> GPUNodeRecord:
    """`users`: GPU index -> "namespace/pod"; `unhealthy`: GPU index -> reason."""
    devices = []
    for index in range(gpus):
        device: dict[str, Any] = {
            "index": index,
            "healthy": index not in (unhealthy or {}),
            "healthReason": (unhealthy or {}).get(index, ""),
            "utilization1m": utilization,
            "utilization5m": utilization,
            "utilization15m": utilization,
        }
        user = (users or {}).get(index)
        if user is not None:
            namespace, _, pod = user.partition("/")
            device["pod"] = {"namespace": namespace, "name": pod}
        devices.append(device)
    return gpunode_record(
        {
            "metadata": {"name": node},
            "spec": {"nodeName": node},
            "status": {"reporting": True, "gpus": devices},
        }
    )


def indexed(
    *,
    jobs: Sequence[JobRecord] = (),
    teams: Sequence[TeamRecord] = (),
    nodes: Sequence[NodeRecord] = (),
    gpunodes: Sequence[GPUNodeRecord] = (),
    pods: Sequence[PodRecord] = (),
    other_pods: Sequence[GPUPodRecord] = (),
) -> Indexed:
    by_job: dict[tuple[str, str], list[PodRecord]] = {}
    for pod in pods:
        by_job.setdefault(pod.job_key, []).append(pod)
    by_node: dict[str, list[GPUPodRecord]] = {}
    for other in other_pods:
        by_node.setdefault(other.node, []).append(other)
    return Indexed(
        jobs={job.key: job for job in jobs},
        teams={team.name: team for team in teams},
        nodes={node.name: node for node in nodes},
        gpunodes={gpunode.node: gpunode for gpunode in gpunodes},
        pods={key: tuple(value) for key, value in by_job.items()},
        gpu_pods={key: tuple(value) for key, value in by_node.items()},
    )


def cache() -> SchedulingCache:
    return SchedulingCache(ttl_seconds=60)


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)
