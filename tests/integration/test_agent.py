"""The node agent against a real API server: fake agents for 3 nodes, the real
NVML code path over the stand-in module, and the agent's RBAC and own-node
admission policy rendered from the Helm chart.

Runs on the cluster named by KUBECONFIG (the local control plane or any other).
The test's Nodes are plain Node objects nobody runs (no kubelet, not kwok-managed):
the fake agents only need them to exist, and pods bound to them stay Pending,
which the fake still counts as holding GPUs, as a kubelet would have admitted them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupool.agent.config import AgentConfig
from gpupool.agent.fake import FAKE_UTILIZATION, FakeAgents
from gpupool.agent.main import run_agent
from gpupool.agent.nvml_standin import StandInNVML
from gpupool.agent.policy import PublishPolicy
from gpupool.api.gpunode import GPUNode
from gpupool.k8s import (
    GPUNODES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    ApiError,
    KubeClient,
)
from gpupool.k8s.kubeconfig import load_credentials

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
FAST = AgentConfig(interval=0.2, metrics_port=0, policy=PublishPolicy(interval=1, heartbeat=30))


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
    name = f"gpupool-agent-{uuid.uuid4().hex[:8]}"
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    # Pods need the namespace's default ServiceAccount; don't wait for the
    # controller-manager to make it (it may not run at all on a bare API server).
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
    for pod in (await client.list(PODS, name))["items"]:
        await client.delete(PODS, pod["metadata"]["name"], name, grace_period_seconds=0)
    await client.delete(NAMESPACES, name)


@pytest.fixture
async def nodes(client: KubeClient) -> AsyncIterator[Callable[..., Awaitable[list[str]]]]:
    """Makes GPU Nodes (8 GPUs, topology labels); deletes them and their GPUNodes after."""
    made: list[str] = []

    async def make(count: int, gpus: int = 8) -> list[str]:
        prefix = f"gpupool-agent-{uuid.uuid4().hex[:6]}"
        names = [f"{prefix}-{i}" for i in range(count)]
        for i, name in enumerate(names):
            labels = {
                "gpupool.io/test": "agent",
                "gpupool.io/rack": f"rack-{i % 2}",
                "topology.kubernetes.io/zone": "zone-a",
                "gpupool.io/nvlink-domain": f"nvl-{i}",
            }
            capacity = {"nvidia.com/gpu": str(gpus), "cpu": "64", "memory": "512Gi", "pods": "110"}
            await client.create(
                NODES,
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": labels},
                    "status": {"capacity": capacity, "allocatable": capacity},
                },
            )
            made.append(name)
        return names

    yield make
    for name in made:
        await client.delete(NODES, name)
        await client.delete(GPUNODES, name)


def gpu_pod(name: str, node: str, gpus: int, utilization: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {FAKE_UTILIZATION: utilization}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "train",
                    "image": "registry.invalid/train:1",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
    }


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(0.2)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl not on PATH")
    completed = subprocess.run(
        [binary, "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


async def test_fake_agents_for_three_nodes_show_up_in_kubectl(
    client: KubeClient, kubeconfig_path: str, namespace: str, nodes: Any
) -> None:
    n1, n2, n3 = await nodes(3)
    for pod in (
        gpu_pod("train-a", n1, 4, "85"),
        gpu_pod("train-b", n2, 8, "0-1h:60"),
        gpu_pod("idle-c", n3, 2, "0"),
    ):
        await client.create(PODS, pod, namespace)

    async with FakeAgents(client, [n1, n2, n3], config=FAST) as agents:
        assert await agents.publish_now() == 3

        table = kubectl(kubeconfig_path, "get", "gpunodes", n1, n2, n3, "-o", "wide")
        rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
        header = table.splitlines()[0].split()
        assert header[:6] == ["NAME", "GPUS", "ALLOCATED", "UTIL%", "HEALTHY", "REPORTING"]
        # Mean of the 1-minute means: n1 has 4 of 8 GPUs at 85%.
        assert rows[n1][1:6] == ["8", "4", "42.5", "8", "true"]
        assert rows[n2][1:6] == ["8", "8", "60", "8", "true"]
        assert rows[n3][1:6] == ["8", "2", "0", "8", "true"]
        assert "fake" in rows[n1] and "rack-0" in rows[n1] and "nvl-1" in rows[n2]

    for name, allocated, utilization in ((n1, 4, 85.0), (n2, 8, 60.0), (n3, 2, 0.0)):
        raw = await client.get(GPUNODES, name)
        node = GPUNode.model_validate(raw)
        assert node.spec.node_name == name
        status = node.status
        assert status is not None and status.reporting and status.backend == "fake"
        assert (status.gpu_count, status.healthy_gpus, status.allocated_gpus) == (8, 8, allocated)
        busy = [gpu for gpu in status.gpus if gpu.pod is not None]
        assert {gpu.pod.name for gpu in busy if gpu.pod} == {
            {n1: "train-a", n2: "train-b", n3: "idle-c"}[name]
        }
        assert all(gpu.utilization == utilization for gpu in busy)
        assert status.topology is not None and status.topology.zone == "zone-a"
        reporting = {c.type: c.status for c in status.conditions}
        assert reporting == {"Reporting": "True", "GPUsHealthy": "True"}
        # The model round-trips what the API server stored.
        stored = {k: v for k, v in raw.items() if k in ("apiVersion", "kind", "spec", "status")}
        assert {k: v for k, v in node.to_k8s().items() if k != "metadata"} == stored
        owner = raw["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Node", name)


async def test_unhealthy_gpu_and_lost_driver_are_published_at_once(
    client: KubeClient, nodes: Any
) -> None:
    (node,) = await nodes(1, gpus=4)
    slow = AgentConfig(interval=0.2, metrics_port=0, policy=PublishPolicy(interval=3600))
    async with FakeAgents(client, [node], config=slow) as agents:
        await eventually(lambda: _has_status(client, node))
        agents.backend(node).set_unhealthy(2, "XID 79 (fake)")

        async def unhealthy() -> bool:
            status = (await client.get(GPUNODES, node)).get("status", {})
            return bool(status.get("healthyGPUs") == 3)

        await eventually(unhealthy, timeout=10)
        raw = await client.get(GPUNODES, node)
        assert raw["status"]["gpus"][2]["healthReason"] == "XID 79 (fake)"

        agents.backend(node).unavailable = "NVML init failed (Driver Not Loaded) (fake)"

        async def not_reporting() -> bool:
            status = (await client.get(GPUNODES, node)).get("status", {})
            return status.get("reporting") is False

        await eventually(not_reporting, timeout=10)
        status = GPUNode.model_validate(await client.get(GPUNODES, node)).status
        assert status is not None and "Driver Not Loaded" in status.message
        condition = {c.type: c for c in status.conditions}["Reporting"]
        assert (condition.status, condition.reason) == ("False", "BackendUnavailable")


async def _has_status(client: KubeClient, name: str) -> bool:
    try:
        return "status" in await client.get(GPUNODES, name)
    except ApiError as error:
        if error.not_found:
            return False
        raise


async def test_real_agent_over_the_standin_nvml(client: KubeClient, nodes: Any) -> None:
    (node,) = await nodes(1)
    standin = StandInNVML.with_gpus(2)
    standin.devices[1].utilization = 77
    standin.devices[0].unsupported = {"nvmlDeviceGetPowerUsage"}
    config = AgentConfig(
        interval=0.2,
        metrics_port=0,
        pod_resources_socket=Path("/nonexistent/kubelet.sock"),
    )
    await run_agent(client, node, config, nvml=standin, duration=1.5)
    status = GPUNode.model_validate(await client.get(GPUNODES, node)).status
    assert status is not None and status.backend == "nvml" and status.reporting
    assert status.driver_version == "550.54.15"
    assert [gpu.uuid for gpu in status.gpus] == [d.uuid for d in standin.devices]
    assert status.gpus[1].utilization == 77
    assert status.gpus[0].power_w is None and status.gpus[1].power_w == 90.0


async def test_gpunode_goes_with_its_node(client: KubeClient, nodes: Any) -> None:
    (node,) = await nodes(1, gpus=1)
    async with FakeAgents(client, [node], config=FAST) as agents:
        assert await agents.publish_now() == 1
    await client.delete(NODES, node)

    async def collected() -> bool:
        return not await _exists(client, node)

    await eventually(collected, timeout=60)


async def _exists(client: KubeClient, name: str) -> bool:
    try:
        await client.get(GPUNODES, name)
    except ApiError as error:
        if error.not_found:
            return False
        raise
    return True


# --- the agent's RBAC and own-node admission policy, from the Helm chart ---------------


def helm_binary() -> str:
    """The helm the local control plane's build put in its cache, or one on PATH."""
    try:
        from gpupool.devcluster import binaries  # type: ignore[attr-defined]

        found = binaries.helm()
    except (ImportError, AttributeError, FileNotFoundError):
        found = shutil.which("helm")
    if not found:
        pytest.skip(
            "no helm binary: the local control plane's build (gpupool.devcluster) "
            "has not built helm, and none is on PATH"
        )
    return str(found)


def render_agent_security(namespace: str, release: str) -> list[JSON]:
    completed = subprocess.run(
        [
            helm_binary(),
            "template",
            release,
            str(ROOT / "helm" / "gpupool"),
            "--namespace",
            namespace,
            "--kube-version",
            "1.36.0",
            "--show-only",
            "templates/agent-rbac.yaml",
            "--show-only",
            "templates/agent-admission-policy.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc]


def token_client(kubeconfig: str, token: str) -> KubeClient:
    # Without the client certificate, which would authenticate first and hide the token.
    return KubeClient(load_credentials(kubeconfig).with_token(token))


async def node_token(client: KubeClient, namespace: str, account: str, node: str) -> str:
    uid = (await client.get(NODES, node))["metadata"]["uid"]
    answer = await client.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 600,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid},
            },
        },
    )
    token: str = answer["status"]["token"]
    return token


async def test_an_agent_writes_only_its_own_nodes_gpunode(
    client: KubeClient, kubeconfig_path: str, namespace: str, nodes: Any
) -> None:
    release = f"t{uuid.uuid4().hex[:6]}"
    documents = render_agent_security(namespace, release)
    kinds = sorted(doc["kind"] for doc in documents)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    manifest = yaml.safe_dump_all(documents)
    kubectl(kubeconfig_path, "apply", "-f", "-", stdin=manifest)
    try:
        await _check_own_node_only(client, kubeconfig_path, namespace, documents, nodes)
    finally:
        kubectl(kubeconfig_path, "delete", "--ignore-not-found", "-f", "-", stdin=manifest)


async def _check_own_node_only(
    client: KubeClient,
    kubeconfig: str,
    namespace: str,
    documents: list[JSON],
    nodes: Any,
) -> None:
    account = next(d for d in documents if d["kind"] == "ServiceAccount")["metadata"]["name"]
    mine, other = await nodes(2, gpus=2)
    async with token_client(
        kubeconfig, await node_token(client, namespace, account, mine)
    ) as agent:
        # The other node's GPUNode: refused by the policy, with its message. The
        # policy is enforced a moment after it is created, so retry briefly.
        message = ""

        async def refused() -> bool:
            nonlocal message
            async with FakeAgents(agent, [other], config=FAST) as fake:
                if await fake.publish_now():
                    await client.delete(GPUNODES, other)
                    return False
                publisher = fake.agent(other).publisher
                message = publisher.last_error if publisher else ""
                return "may write only" in message

        await eventually(refused, timeout=30)
        assert "403" in message
        assert f"the gpupool agent on node {mine} may write only GPUNode/{mine}" in message
        assert f"not GPUNode/{other}" in message

        # Its own node's GPUNode: created and written.
        async with FakeAgents(agent, [mine], config=FAST) as fake:
            assert await fake.publish_now() == 1
        status = GPUNode.model_validate(await client.get(GPUNODES, mine)).status
        assert status is not None and status.gpu_count == 2

        # Nothing beyond GPUNodes: RBAC refuses the rest.
        with pytest.raises(ApiError) as caught:
            await agent.create(PODS, gpu_pod("sneaky", mine, 1, "0"), namespace)
        assert caught.value.forbidden
        with pytest.raises(ApiError) as caught:
            await agent.delete(NODES, other, missing_ok=False)
        assert caught.value.forbidden

    # A token that names no node (not bound to a pod or Node) is refused as well.
    answer = await client.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    async with token_client(kubeconfig, answer["status"]["token"]) as unbound:
        with pytest.raises(ApiError) as caught:
            await unbound.patch_status(GPUNODES, mine, {"message": "hijacked"})
        assert caught.value.forbidden and "names no node" in caught.value.message
