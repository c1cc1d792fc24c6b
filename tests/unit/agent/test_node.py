"""One node's agent: NVML lifecycle, status building, publishing through API failures."""

from __future__ import annotations

import logging

import pytest

from gpupool.agent.config import AgentConfig
from gpupool.agent.loop import AgentLoop
from gpupool.agent.node import NodeAgent
from gpupool.agent.nvml import NvmlBackend
from gpupool.agent.nvml_standin import NVMLError_LibraryNotFound, StandInNVML
from gpupool.agent.policy import Backoff, PublishPolicy
from gpupool.agent.publisher import Publisher
from gpupool.agent.status import PodRef
from gpupool.api.gpunode import GPUNode
from gpupool.k8s import ApiError

from .stubs import StubKube

CONFIG = AgentConfig(
    init_backoff=Backoff(initial=5, maximum=60),
    api_backoff=Backoff(initial=1, maximum=8),
    policy=PublishPolicy(interval=10, heartbeat=60),
)
LABELS = {
    "gpupool.io/rack": "r7",
    "topology.kubernetes.io/zone": "z1",
    "gpupool.io/nvlink-domain": "nvl-3",
}


def make_agent(standin: StandInNVML, kube: StubKube | None = None) -> NodeAgent:
    publisher = Publisher(kube, "n1", backoff=CONFIG.api_backoff) if kube else None
    return NodeAgent("n1", NvmlBackend(standin), config=CONFIG, publisher=publisher)


def test_no_nvml_reports_not_reporting_logs_once_and_retries_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    standin = StandInNVML.with_gpus(2, init_error=NVMLError_LibraryNotFound)
    agent = make_agent(standin)
    with caplog.at_level(logging.INFO):
        for t in range(0, 600, 1):
            agent.absorb(agent.poll(float(t)), {}, float(t))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "not reporting" in errors[0].getMessage()
    assert "NVML Shared Library Not Found" in errors[0].getMessage()
    status = agent.status
    assert status.reporting is False
    assert "NVML init failed" in status.message
    reporting = {c.type: c for c in status.conditions}["Reporting"]
    assert (reporting.status, reporting.reason) == ("False", "BackendUnavailable")
    assert {c.type: c for c in status.conditions}["GPUsHealthy"].status == "Unknown"
    # Backoff: 5, 10, 20, 40, 60, 60, ... seconds (halved at worst by jitter), not 600 tries.
    assert agent._init_failures < 30
    # The driver shows up: the next attempt succeeds.
    standin.init_error = None
    t = agent._init_at
    agent.absorb(agent.poll(t), {}, t)
    assert agent.status.reporting and agent.status.gpu_count == 2
    assert {c.type: c for c in agent.status.conditions}["Reporting"].status == "True"


def test_status_summaries_and_pods() -> None:
    standin = StandInNVML.with_gpus(3)
    agent = make_agent(standin)
    standin.devices[0].utilization = 90
    standin.devices[1].utilization = 30
    pod = PodRef(namespace="team-a", name="train", container="main")
    agent.poll(0.0)
    standin.devices[2].lost = True
    for t in range(60):
        agent.absorb(agent.poll(float(t)), {standin.devices[0].uuid: pod}, float(t))
    status = agent.status
    assert (status.gpu_count, status.healthy_gpus, status.allocated_gpus) == (3, 2, 1)
    assert status.gpus[0].pod == pod
    assert status.gpus[0].utilization_1m == pytest.approx(90)
    assert status.mean_utilization == pytest.approx(40)
    assert status.gpus[2].health_reason == "GPU is lost"
    healthy = {c.type: c for c in status.conditions}["GPUsHealthy"]
    assert (healthy.status, healthy.message) == ("False", "GPU 2: GPU is lost")
    assert status.backend == "nvml" and status.driver_version == "550.54.15"
    assert agent.samples_total == 60


def test_driver_disappearing_mid_run_goes_back_to_not_reporting() -> None:
    standin = StandInNVML.with_gpus(1)
    agent = make_agent(standin)
    agent.absorb(agent.poll(0.0), {}, 0.0)
    assert agent.status.reporting
    standin.initialized = False  # as if the driver was unloaded
    agent.absorb(agent.poll(1.0), {}, 1.0)
    assert not agent.status.reporting and "went away" in agent.status.message
    assert agent.status.gpus == []


async def test_publish_creates_an_owned_gpunode_with_topology() -> None:
    kube = StubKube({"n1": LABELS})
    agent = make_agent(StandInNVML.with_gpus(2), kube)
    agent.absorb(agent.poll(0.0), {}, 0.0)
    assert await agent.publish(0.0)
    stored = kube.gpunodes["n1"]
    assert stored["spec"] == {"nodeName": "n1"}
    assert stored["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1"}
    ]
    gpunode = GPUNode.model_validate(stored)
    assert gpunode.status is not None and gpunode.status.gpu_count == 2
    assert gpunode.status.topology is not None
    assert (gpunode.status.topology.rack, gpunode.status.topology.nvlink_domain) == ("r7", "nvl-3")
    assert gpunode.status.topology.zone == "z1"
    assert agent.last_published is not None


async def test_api_errors_back_off_and_never_raise() -> None:
    kube = StubKube()
    agent = make_agent(StandInNVML.with_gpus(1), kube)
    agent.absorb(agent.poll(0.0), {}, 0.0)
    kube.fail = [ApiError(503, "ServiceUnavailable", "down")]
    assert not await agent.publish(0.0)
    assert agent.publisher is not None
    assert agent.publisher.errors_total == 1 and agent.publisher.blocked(0.1)
    calls = len(kube.calls)
    assert not await agent.publish(0.2)  # in backoff: no call made
    assert len(kube.calls) == calls
    assert await agent.publish(10.0)
    assert agent.publisher.failures == 0 and agent.publisher.published_total == 1


async def test_a_deleted_gpunode_is_recreated() -> None:
    kube = StubKube()
    agent = make_agent(StandInNVML.with_gpus(1), kube)
    agent.absorb(agent.poll(0.0), {}, 0.0)
    assert await agent.publish(0.0)
    del kube.gpunodes["n1"]
    assert not await agent.publish(1.0)
    assert await agent.publish(20.0)
    assert "n1" in kube.gpunodes


async def test_conditions_carry_over_from_the_existing_gpunode() -> None:
    kube = StubKube()
    kube.gpunodes["n1"] = {
        "metadata": {"name": "n1"},
        "spec": {"nodeName": "n1"},
        "status": {
            "conditions": [
                {
                    "type": "Reporting",
                    "status": "True",
                    "reason": "Sampling",
                    "message": "old",
                    "lastTransitionTime": "2020-01-01T00:00:00Z",
                },
                {"type": "SomebodyElses", "status": "True"},
            ]
        },
    }
    agent = make_agent(StandInNVML.with_gpus(1), kube)
    agent.absorb(agent.poll(0.0), {}, 0.0)
    assert await agent.publish(0.0)
    conditions = {c["type"]: c for c in kube.gpunodes["n1"]["status"]["conditions"]}
    assert conditions["Reporting"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert "SomebodyElses" in conditions


async def test_loop_publishes_unhealthy_at_once_and_changes_after_the_interval() -> None:
    kube = StubKube()
    standin = StandInNVML.with_gpus(2)
    agent = make_agent(standin, kube)
    loop = AgentLoop([agent], interval=1.0)

    async def tick(t: float) -> None:
        await loop.tick(t)
        await loop.drain()

    await tick(0.0)
    assert kube.gpunodes["n1"]["status"]["gpus"][0]["healthy"] is True
    writes = lambda: sum(1 for verb, _ in kube.calls if verb == "patch_status")  # noqa: E731
    standin.devices[0].utilization = 100
    await tick(1.0)
    assert writes() == 1  # changed, but within the publish interval
    standin.inject_xid(1, 79)
    await tick(2.0)
    assert writes() == 2  # unhealthy: at once
    assert kube.gpunodes["n1"]["status"]["gpus"][1]["healthReason"] == "XID 79"
    await tick(12.5)
    assert writes() == 3  # the utilization change, after the interval
    assert kube.gpunodes["n1"]["status"]["gpus"][0]["utilization"] == 100
    await tick(14.0)
    assert writes() == 3


async def test_loop_survives_unexpected_errors(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenAttributor:
        async def attribute(self, samples: object, now: float) -> dict[str, PodRef]:
            raise RuntimeError("attribution bug")

        async def close(self) -> None:
            """Nothing to close."""

    kube = StubKube({"n1": {}, "n2": {}})
    one = make_agent(StandInNVML.with_gpus(1), kube)
    two = NodeAgent(
        "n2",
        NvmlBackend(StandInNVML.with_gpus(1)),
        config=CONFIG,
        publisher=Publisher(kube, "n2", backoff=CONFIG.api_backoff),
    )
    loop = AgentLoop([one, two], attributors={"n1": BrokenAttributor()})
    kube.fail = [ValueError("malformed answer")]  # n2's first call
    with caplog.at_level(logging.ERROR):
        await loop.tick(0.0)
        await loop.drain()
    assert "attribution bug" in caplog.text and "malformed answer" in caplog.text
    assert two.publisher is not None and two.publisher.blocked(0.1)
    await loop.tick(10.0)
    await loop.drain()
    assert "n2" in kube.gpunodes and "n1" not in kube.gpunodes
