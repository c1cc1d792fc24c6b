"""A small cluster in the fake API server, as the CLI lists it: nodes, teams, jobs, pods."""

from __future__ import annotations

from typing import Any

from gpupool.k8s import EVENTS, GPUJOBS, NODES, PODS, TEAMQUOTAS, ApiError, Resource

from ..controller.builders import make_job, make_pod
from ..controller.fakes import FakeKube

JSON = dict[str, Any]
NOW = 1_767_272_400.0  # 2026-01-01 13:00 UTC, an hour after the builders' T0


def node(name: str, gpus: int = 8) -> JSON:
    return {
        "metadata": {"name": name},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def team(name: str, guaranteed: int, **spec: Any) -> JSON:
    return {
        "metadata": {"name": name},
        "spec": {"namespaces": [name], "guaranteedGPUs": guaranteed, **spec},
    }


def event(job: str, reason: str, note: str, when: str) -> JSON:
    namespace, _, name = job.partition("/")
    return {
        "metadata": {"name": f"{name}.{reason.lower()}", "namespace": namespace},
        "eventTime": when,
        "type": "Normal",
        "reason": reason,
        "note": note,
        "regarding": {"kind": "GPUJob", "name": name, "namespace": namespace},
    }


class ClusterKube(FakeKube):
    """The fake API server as the CLI uses it: a context manager, and `list_errors` makes
    listing a resource (by plural) fail as a missing CRD or RBAC would."""

    def __init__(self) -> None:
        super().__init__()
        self.list_errors: dict[str, ApiError] = {}

    async def __aenter__(self) -> ClusterKube:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON:
        if resource.plural in self.list_errors:
            raise self.list_errors[resource.plural]
        return await super().list(resource, namespace)


def pool() -> ClusterKube:
    """2 nodes × 8 GPUs; vision (guaranteed 8) runs vision/a on node-1 and was preempted
    once; nlp (guaranteed 8) waits with nlp/huge (3×8, more than the cluster) and
    nlp/bert (1×8, fits on node-2)."""
    kube = ClusterKube()
    for name in ("node-1", "node-2"):
        kube.put(NODES, node(name))
    kube.put(TEAMQUOTAS, team("vision", 8))
    kube.put(TEAMQUOTAS, team("nlp", 8))
    kube.put(
        GPUJOBS,
        make_job("vision/a")
        .gpus(8)
        .hook(60)
        .status(
            phase="Running",
            team="vision",
            admittedAt="2026-01-01T12:10:00Z",
            restarts=1,
            preemptions=1,
            lastCheckpoint={
                "location": "s3://ckpt/vision/a/step-100",
                "time": "2026-01-01T12:05:00Z",
                "source": "hook",
            },
            conditions=[
                {
                    "type": "Preempted",
                    "status": "False",
                    "reason": "Resumed",
                    "message": "resumed from s3://ckpt/vision/a/step-100",
                    "lastTransitionTime": "2026-01-01T12:10:00Z",
                }
            ],
        )
        .raw(),
    )
    kube.put(
        PODS, make_pod("vision/a", index=0, node="node-1", incarnation=1).gpus(8).running().raw()
    )
    kube.put(GPUJOBS, make_job("nlp/huge").gpus(8).workers(3).raw())
    kube.put(GPUJOBS, make_job("nlp/bert").gpus(8).raw())
    kube.put(GPUJOBS, make_job("orphans/lost").gpus(1).raw())
    kube.put(
        EVENTS,
        event(
            "vision/a", "Requeued", "ReclaimBorrowed: its GPUs go to nlp/x", "2026-01-01T12:05:00Z"
        ),
    )
    kube.put(
        EVENTS, event("vision/a", "Resumed", "resumed as incarnation 1", "2026-01-01T12:10:00Z")
    )
    kube.put(EVENTS, event("nlp/bert", "Admitted", "unrelated job", "2026-01-01T12:10:00Z"))
    return kube
