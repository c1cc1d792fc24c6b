"""The checkpoint hook protocol against a real API server.

Runs on the session's cluster (the `kubeconfig` fixture) or else the one named by
KUBECONFIG (the local control plane, kind, any other).
The worker pods are bound to a GPU node that no kubelet (and no kwok) runs, so the
test itself plays the kubelet: after gpupool's graceful delete it writes the
container's terminated state through the `pods/status` subresource, exactly as a
kubelet reports it, then confirms the deletion. A second test uses kwok's pod stage
that copies the `gpupool.io/fake-checkpoint` annotation into the termination
message, when the cluster has it.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from gpupool.api import GPUJobSpec
from gpupool.controller.checkpoint import request_checkpoint
from gpupool.controller.manifests import worker_pod
from gpupool.k8s import NAMESPACES, NODES, PODS, SERVICE_ACCOUNTS, ApiError, KubeClient

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
FAKE_CHECKPOINT_ANNOTATION = "gpupool.io/fake-checkpoint"
KWOK_STAGES = "/apis/kwok.x-k8s.io/v1alpha1/stages"


@pytest.fixture
def kubeconfig_path(request: pytest.FixtureRequest) -> str:
    """The session's cluster (a `kubeconfig` fixture, when tests/conftest.py has one)."""
    try:
        return str(request.getfixturevalue("kubeconfig"))
    except pytest.FixtureLookupError:
        path = os.environ.get("KUBECONFIG")
        if not path:
            pytest.skip("KUBECONFIG names no cluster")
        return path


@pytest.fixture
async def client(kubeconfig_path: str) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(kubeconfig_path) as kube:
        yield kube


@pytest.fixture
async def namespace(client: KubeClient) -> AsyncIterator[str]:
    name = f"gpupool-ckpt-{uuid.uuid4().hex[:8]}"
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    # Pods need the namespace's default ServiceAccount, which kube-controller-manager
    # creates a moment after the namespace: create it now instead of racing it.
    try:
        await client.create(
            SERVICE_ACCOUNTS,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            name,
        )
    except ApiError as error:
        if not error.conflict:
            raise
    yield name
    pods = await client.list(PODS, name)
    for pod in pods["items"]:
        await client.delete(PODS, pod["metadata"]["name"], name, grace_period_seconds=0)
    await client.delete(NAMESPACES, name)


async def make_node(client: KubeClient, *, kwok: bool) -> str:
    name = f"gpupool-ckpt-{'kwok' if kwok else 'bare'}-{uuid.uuid4().hex[:6]}"
    metadata: JSON = {"name": name, "labels": {"gpupool.io/test": "checkpoint-hooks"}}
    if kwok:
        metadata["annotations"] = {"kwok.x-k8s.io/node": "fake"}
    await client.create(
        NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": metadata,
            "spec": {
                "taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
            },
            "status": {
                "capacity": {"nvidia.com/gpu": "8", "cpu": "64", "memory": "512Gi", "pods": "110"},
                "allocatable": {
                    "nvidia.com/gpu": "8",
                    "cpu": "64",
                    "memory": "512Gi",
                    "pods": "110",
                },
            },
        },
    )
    return name


@pytest.fixture
async def bare_node(client: KubeClient) -> AsyncIterator[str]:
    """A GPU node nobody runs: the test is its kubelet."""
    name = await make_node(client, kwok=False)
    yield name
    await client.delete(NODES, name)


def job_and_spec(namespace: str, hook: JSON | None) -> tuple[JSON, GPUJobSpec]:
    job = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "GPUJob",
        "metadata": {"name": "llm", "namespace": namespace, "uid": str(uuid.uuid4())},
    }
    raw: JSON = {
        "gpusPerWorker": 8,
        "workers": 1,
        "template": {"spec": {"containers": [{"name": "train", "image": "trainer:1"}]}},
    }
    if hook is not None:
        raw["checkpoint"] = hook
    return job, GPUJobSpec.model_validate(raw)


async def create_worker(
    client: KubeClient,
    namespace: str,
    node: str,
    spec: GPUJobSpec,
    job: JSON,
    annotations: dict[str, str] | None = None,
) -> JSON:
    pod = worker_pod(
        job,
        spec,
        team="team-a",
        index=0,
        world_size=1,
        node=node,
        incarnation=0,
        resume_from=None,
        extra_tolerations=[{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
    )
    # The GPUJob is not created here: an owner reference to a missing owner would let
    # the garbage collector delete the pod in the middle of the test.
    del pod["metadata"]["ownerReferences"]
    if annotations:
        pod["metadata"].setdefault("annotations", {}).update(annotations)
    return await client.create(PODS, pod, namespace)


async def play_kubelet(client: KubeClient, pod: JSON, message: str) -> None:
    """After gpupool's graceful delete: report the container's exit, then confirm it."""
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    for _ in range(100):
        current = await client.get(PODS, name, namespace)
        if current["metadata"].get("deletionTimestamp"):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("gpupool never deleted the pod")
    assert current["metadata"]["deletionGracePeriodSeconds"] == 30
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": "train",
                "image": "trainer:1",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 143,
                        "reason": "Error",
                        "message": message,
                        "startedAt": now,
                        "finishedAt": now,
                    }
                },
            }
        ],
    }
    await client.patch_status(PODS, name, status, namespace)
    await client.delete(PODS, name, namespace, grace_period_seconds=0, uid=pod["metadata"]["uid"])


async def wait_gone(client: KubeClient, namespace: str, name: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await client.get(PODS, name, namespace)
        except ApiError as error:
            if error.not_found:
                return True
            raise
        await asyncio.sleep(0.2)
    return False


async def test_signal_hook_reads_the_termination_message(
    client: KubeClient, namespace: str, bare_node: str
) -> None:
    job, spec = job_and_spec(namespace, {"mode": "signal", "timeoutSeconds": 30})
    pod = await create_worker(client, namespace, bare_node, spec, job)
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    kubelet = asyncio.create_task(
        play_kubelet(client, pod, '{"checkpoint": "s3://ckpt/llm/step-1200"}')
    )
    outcome = await request_checkpoint(
        client,
        namespace=namespace,
        job_name="llm",
        pods=[pod],
        hook=spec.checkpoint,
        now=time.monotonic,
    )
    await asyncio.wait_for(kubelet, 30)
    assert outcome.outcome == "succeeded", outcome
    assert outcome.location == "s3://ckpt/llm/step-1200"
    assert outcome.source == "terminationMessage"
    assert outcome.duration_s < 10
    assert await wait_gone(client, namespace, pod["metadata"]["name"], 10)


async def test_signal_hook_never_touches_a_newer_pod_of_the_same_name(
    client: KubeClient, namespace: str, bare_node: str
) -> None:
    job, spec = job_and_spec(namespace, {"mode": "signal", "timeoutSeconds": 30})
    pod = await create_worker(client, namespace, bare_node, spec, job)
    name = pod["metadata"]["name"]
    await client.delete(PODS, name, namespace, grace_period_seconds=0)
    assert await wait_gone(client, namespace, name, 10)
    newer = await create_worker(client, namespace, bare_node, spec, job)
    outcome = await request_checkpoint(
        client,
        namespace=namespace,
        job_name="llm",
        pods=[pod],
        hook=spec.checkpoint,
        now=time.monotonic,
    )
    assert outcome.outcome == "failed"
    current = await client.get(PODS, name, namespace)
    assert current["metadata"]["uid"] == newer["metadata"]["uid"]
    assert "deletionTimestamp" not in current["metadata"]


ENDPOINT_IP = "127.0.0.42"


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[int, list[JSON]]]:
    """The workload's checkpoint endpoint, at the pod's (loopback) IP."""
    requests: list[JSON] = []

    async def save(request: web.Request) -> web.Response:
        requests.append(await request.json())
        return web.json_response({"checkpoint": "gs://ckpt/llm/step-77"})

    app = web.Application()
    app.router.add_post("/checkpoint", save)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, ENDPOINT_IP, 0)
    await site.start()
    yield runner.addresses[0][1], requests
    await runner.cleanup()


async def test_http_post_hook_goes_to_the_pod_ip_and_the_spec_port(
    client: KubeClient, namespace: str, bare_node: str, endpoint: tuple[int, list[JSON]]
) -> None:
    port, requests = endpoint
    job, spec = job_and_spec(
        namespace,
        {
            "mode": "httpPost",
            "timeoutSeconds": 10,
            "httpPost": {"port": port, "path": "/checkpoint"},
        },
    )
    created = await create_worker(client, namespace, bare_node, spec, job)
    # The test is the node's kubelet: the pod runs at a loopback IP where the workload's
    # endpoint listens.
    pod = await client.patch_status(
        PODS,
        created["metadata"]["name"],
        {"phase": "Running", "podIP": ENDPOINT_IP, "podIPs": [{"ip": ENDPOINT_IP}]},
        namespace,
    )
    assert pod["status"]["podIP"] == ENDPOINT_IP
    outcome = await request_checkpoint(
        client,
        namespace=namespace,
        job_name="llm",
        pods=[pod],
        hook=spec.checkpoint,
        now=time.monotonic,
    )
    assert outcome.outcome == "succeeded", outcome
    assert (outcome.location, outcome.source) == ("gs://ckpt/llm/step-77", "hook")
    assert [r["pod"] for r in requests] == [pod["metadata"]["name"]]
    deleted = await client.get(PODS, pod["metadata"]["name"], namespace)
    assert deleted["metadata"]["deletionTimestamp"]
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 5


async def has_fake_checkpoint_stage(client: KubeClient) -> bool:
    try:
        stages = await client.request("GET", KWOK_STAGES, retry=False)
    except ApiError:
        return False
    return FAKE_CHECKPOINT_ANNOTATION in str(stages.get("items"))


async def test_signal_hook_with_the_kwok_stage(client: KubeClient, namespace: str) -> None:
    if not await has_fake_checkpoint_stage(client):
        pytest.skip(
            f"no kwok Stage copies {FAKE_CHECKPOINT_ANNOTATION} into the termination message"
        )
    node = await make_node(client, kwok=True)
    try:
        job, spec = job_and_spec(namespace, {"mode": "signal", "timeoutSeconds": 20})
        pod = await create_worker(
            client, namespace, node, spec, job, {FAKE_CHECKPOINT_ANNOTATION: "/ckpt/kwok/step-5"}
        )
        for _ in range(100):
            current = await client.get(PODS, pod["metadata"]["name"], namespace)
            if current.get("status", {}).get("phase") == "Running":
                break
            await asyncio.sleep(0.1)
        outcome = await request_checkpoint(
            client,
            namespace=namespace,
            job_name="llm",
            pods=[current],
            hook=spec.checkpoint,
            now=time.monotonic,
        )
        assert outcome.outcome == "succeeded", outcome
        assert (outcome.location, outcome.source) == ("/ckpt/kwok/step-5", "terminationMessage")
        assert await wait_gone(client, namespace, pod["metadata"]["name"], 20)
    finally:
        await client.delete(NODES, node)
