"""The control plane alone: what an admission burst costs without any operator.

The same number of worker pods as phase 1, built by gpupool's own pod builder (the
same size, env and labels) but created directly by the benchmark client, bound
round-robin to the fake nodes, without GPUJobs, status writes or Events. The seconds
until they all run are the floor of phase 1 on this machine: what the API server,
etcd and kwok need for the pods alone. The figure is reported next to the
operator's, so a run on a small machine says how much of its time is the operator's.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import Any

from gpupool.api import GPUJobSpec
from gpupool.bench.concurrency import bounded
from gpupool.bench.phases import Phases
from gpupool.controller.manifests import GPU_RESOURCE, LABEL_MANAGED_BY, worker_pod
from gpupool.k8s import NAMESPACES, PODS, KubeClient

JSON = dict[str, Any]


def baseline_pod(spec: GPUJobSpec, name: str, namespace: str, node: str) -> JSON:
    """A worker pod as gpupool builds it, owned by nobody and asking for no GPU.

    No owner (garbage collection would delete a pod whose GPUJob does not exist), not
    labelled as gpupool's (no operator may take it for one of its workers), no GPU
    (the nodes' GPUs may still be taken by the jobs of the phases before).
    """
    job = {"metadata": {"name": name, "namespace": namespace, "uid": "baseline"}}
    pod = worker_pod(
        job,
        spec,
        team="baseline",
        index=0,
        world_size=1,
        node=node,
        incarnation=0,
        resume_from=None,
    )
    pod["metadata"]["name"] = name
    del pod["metadata"]["ownerReferences"]
    pod["metadata"]["labels"][LABEL_MANAGED_BY] = "gpupool-bench-baseline"
    for container in pod["spec"]["containers"]:
        for amounts in (container.get("resources") or {}).values():
            amounts.pop(GPU_RESOURCE, None)
    return pod


async def pods_only(
    client: KubeClient,
    spec: GPUJobSpec,
    *,
    namespace: str,
    nodes: Sequence[str],
    count: int,
    timeout: float,
) -> float | None:
    """Seconds from the first create until `count` such pods run; None after `timeout`."""
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    phases = Phases(client, namespace, PODS)
    follower = asyncio.create_task(phases.follow())
    try:
        started = time.monotonic()
        await bounded(
            64,
            [
                functools.partial(
                    client.create,
                    PODS,
                    baseline_pod(spec, f"b{i:05d}", namespace, nodes[i % len(nodes)]),
                    namespace,
                )
                for i in range(count)
            ],
        )
        return await phases.wait_running(count, timeout, started)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
