"""Fake agents of many nodes in one process, against an in-memory API."""

from __future__ import annotations

import asyncio
import time

from typer.testing import CliRunner

from gpupool.agent.config import AgentConfig
from gpupool.agent.fake import FAKE_UTILIZATION, FakeAgents, FakeConfig, run_fake_agents
from gpupool.api.gpunode import GPUNode
from gpupool.cli import app

from .stubs import StubKube

FAST = AgentConfig(interval=0.05)


def gpu_pod(name: str, node: str, gpus: int, utilization: str) -> dict[str, object]:
    return {
        "metadata": {
            "namespace": "team",
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "annotations": {FAKE_UTILIZATION: utilization},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "resources": {"limits": {"nvidia.com/gpu": gpus}}}],
        },
        "status": {"phase": "Running", "startTime": "2024-01-01T00:00:00Z"},
    }


async def test_three_nodes_publish_with_pods_and_capacity() -> None:
    kube = StubKube({"n1": {"gpupool.io/rack": "r1"}, "n2": {}, "n3": {}})
    kube.pods = [
        gpu_pod("a", "n1", 2, "85"),
        gpu_pod("b", "n3", 1, "40"),
        gpu_pod("x", "n9", 1, "1"),
    ]
    async with FakeAgents(kube, ["n1", "n2", "n3"], config=FAST) as agents:
        assert await agents.publish_now() == 3
        agents.backend("n2").set_unhealthy(3, "XID 79 (fake)")
        await agents.sample_now()
        await agents.loop.drain()
    nodes = {name: GPUNode.model_validate(obj) for name, obj in kube.gpunodes.items()}
    assert set(nodes) == {"n1", "n2", "n3"}
    n1 = nodes["n1"].status
    assert n1 is not None and n1.backend == "fake" and n1.reporting
    assert n1.gpu_count == 4  # from the Node's nvidia.com/gpu capacity
    assert n1.allocated_gpus == 2
    assert [g.utilization for g in n1.gpus] == [85, 85, 0, 0]
    assert n1.gpus[0].pod is not None and n1.gpus[0].pod.name == "a"
    assert n1.topology is not None and n1.topology.rack == "r1"
    n2 = nodes["n2"].status
    assert n2 is not None and (n2.healthy_gpus, n2.gpus[3].health_reason) == (3, "XID 79 (fake)")
    n3 = nodes["n3"].status
    assert n3 is not None and n3.gpus[0].utilization == 40


async def test_one_node_lists_only_its_pods_and_runs_for_a_bounded_time() -> None:
    kube = StubKube({"n1": {}})
    started = time.monotonic()
    await run_fake_agents(kube, ["n1"], fake=FakeConfig(gpus=2), config=FAST, duration=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert kube.gpunodes["n1"]["status"]["gpuCount"] == 2


async def test_stop_event_ends_the_run() -> None:
    kube = StubKube({"n1": {}})
    stop = asyncio.Event()
    task = asyncio.create_task(run_fake_agents(kube, ["n1"], config=FAST, stop=stop))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, timeout=5)


async def test_a_missing_node_backs_off_without_stopping_the_others() -> None:
    kube = StubKube({"n1": {}})
    async with FakeAgents(kube, ["n1", "ghost"], fake=FakeConfig(gpus=1), config=FAST) as agents:
        assert await agents.publish_now() == 1
        ghost = agents.agent("ghost").publisher
        assert ghost is not None and ghost.errors_total == 1
    assert set(kube.gpunodes) == {"n1"}


def test_cli_rejects_bad_arguments() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["agent"], env={"NODE_NAME": ""})
    assert result.exit_code != 0 and "no node" in result.output
    result = runner.invoke(app, ["agent", "--node", "a", "--node", "b"])
    assert result.exit_code != 0 and "--fake" in result.output
    result = runner.invoke(app, ["agent", "--fake", "--node", "a", "--fake-utilization", "0=oops"])
    assert result.exit_code != 0 and "oops" in result.output
