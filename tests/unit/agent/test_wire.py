"""The GPUNode status the agent sends: valid for the CRD's models, byte for byte.

The agent builds its status with plain dataclasses (no pydantic on the node), while
the pydantic models in gpupool.api stay the CRD's single source of truth. For each
representative node the body the publisher sends must validate with
`GPUNodeStatus`, survive the model's own serialization unchanged (same keys, same
order, same JSON numbers), and match the body recorded in wire/<case>.json. A
missing recording is written and the test fails: review the file, then rerun.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpupool.agent.backend import Backend, GPUSample
from gpupool.agent.checkpoints import LogCheckpoints
from gpupool.agent.fake import FAKE_UTILIZATION, FakeBackend, FakeConfig
from gpupool.agent.node import NodeAgent
from gpupool.agent.nvml import NvmlBackend
from gpupool.agent.nvml_standin import NVMLError_LibraryNotFound, StandInNVML
from gpupool.agent.publisher import Publisher
from gpupool.agent.status import PodRef
from gpupool.api.gpunode import GPUNodeStatus

from .stubs import StubKube

RECORDED = Path(__file__).parent / "wire"
WALL_CLOCK = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
LABELS = {
    "gpupool.io/rack": "r7",
    "topology.kubernetes.io/zone": "z1",
    "gpupool.io/nvlink-domain": "nvl-3",
}

Sampled = Callable[[NodeAgent], None]


async def published(
    backend: Backend,
    sample: Sampled,
    *,
    labels: dict[str, str] | None = None,
    existing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sample node n1's backend, publish once, return the status body sent."""
    kube = StubKube({"n1": labels or {}})
    if existing is not None:
        kube.gpunodes["n1"] = {"metadata": {"name": "n1"}, "spec": {"nodeName": "n1"}, **existing}
    agent = NodeAgent("n1", backend, publisher=Publisher(kube, "n1"))
    sample(agent)
    assert await agent.publish(100.0)
    body: dict[str, Any] = kube.gpunodes["n1"]["status"]
    return body


def ticks(seconds: int, pods: dict[str, PodRef] | None = None) -> Sampled:
    def sample(agent: NodeAgent) -> None:
        for t in range(seconds):
            agent.absorb(agent.poll(float(t)), pods or {}, float(t))

    return sample


async def healthy() -> dict[str, Any]:
    """Two busy GPUs, topology from the Node, conditions carried over from the GPUNode."""
    standin = StandInNVML.with_gpus(2)
    for device, utilization in zip(standin.devices, (90, 33), strict=True):
        device.utilization = utilization
        device.memory_used = utilization * 512 * 1024**2
        device.power_mw = 60_000 + 3_417 * utilization
    existing = {
        "status": {
            "conditions": [
                {
                    "type": "Reporting",
                    "status": "True",
                    "reason": "Sampling",
                    "message": "old",
                    "lastTransitionTime": "2020-01-01T00:00:00Z",
                },
                {
                    "type": "SomebodyElses",
                    "status": "False",
                    "lastTransitionTime": "2021-06-01T12:00:00.5+00:00",
                    "observedGeneration": 3,
                    "severity": "dropped by the model",
                },
            ]
        }
    }
    return await published(NvmlBackend(standin), ticks(90), labels=LABELS, existing=existing)


async def unhealthy() -> dict[str, Any]:
    """ECC errors, an XID, a lost GPU; one GPU without power or temperature readings."""
    standin = StandInNVML.with_gpus(4)
    standin.devices[0].ecc_uncorrected = 2
    standin.devices[3].unsupported = {"nvmlDeviceGetPowerUsage", "nvmlDeviceGetTemperature"}

    def sample(agent: NodeAgent) -> None:
        agent.absorb(agent.poll(0.0), {}, 0.0)
        standin.inject_xid(1, 79)
        standin.devices[2].lost = True
        agent.absorb(agent.poll(1.0), {}, 1.0)

    return await published(NvmlBackend(standin), sample, labels=LABELS)


async def not_reporting() -> dict[str, Any]:
    """No driver on the node."""
    standin = StandInNVML.with_gpus(2, init_error=NVMLError_LibraryNotFound)
    return await published(NvmlBackend(standin), ticks(3))


async def pods_attributed() -> dict[str, Any]:
    """Pods from PodResources (one with a container and UID, one without), one GPU free."""
    standin = StandInNVML.with_gpus(3)
    for device in standin.devices[:2]:
        device.utilization = 71
    pods = {
        standin.devices[0].uuid: PodRef(
            namespace="team-a", name="train-0", container="trainer", uid="uid-train-0"
        ),
        standin.devices[1].uuid: PodRef(namespace="team-b", name="infer"),
    }
    return await published(NvmlBackend(standin), ticks(20, pods), labels={"gpupool.io/rack": "r1"})


async def fake_pods() -> dict[str, Any]:
    """The fake backend: GPUs handed to a pod's container, utilization from its annotation."""
    backend = FakeBackend("n1", FakeConfig(gpus=3), clock=lambda: 1_700_000_030.0)
    backend.assign(
        [
            {
                "metadata": {
                    "namespace": "team",
                    "name": "a",
                    "uid": "uid-a",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "annotations": {FAKE_UTILIZATION: "0-10s:20,10s-:85"},
                },
                "spec": {
                    "containers": [{"name": "main", "resources": {"limits": {"nvidia.com/gpu": 2}}}]
                },
            }
        ]
    )
    backend.set_unhealthy(2)
    return await published(backend, ticks(5))


async def checkpoints_reported() -> dict[str, Any]:
    """A pod whose log carries the workload helper's checkpoint report."""
    standin = StandInNVML.with_gpus(1)
    pod = PodRef(namespace="team-a", name="train-0", container="trainer", uid="uid-train-0")
    pods = {standin.devices[0].uuid: pod}
    with tempfile.TemporaryDirectory() as root:
        log = Path(root, "team-a_train-0_uid-train-0", "trainer", "0.log")
        log.parent.mkdir(parents=True)
        log.write_text(
            '2026-03-04T05:00:00.123456789Z stderr F gpupool.io/checkpoint {"checkpoint": '
            '"s3://ckpt/train/step-500"}\n'
        )
        kube = StubKube({"n1": {}})
        agent = NodeAgent(
            "n1",
            NvmlBackend(standin),
            publisher=Publisher(kube, "n1"),
            checkpoints=LogCheckpoints(Path(root)),
        )
        ticks(3, pods)(agent)
        assert await agent.publish(100.0)
    body: dict[str, Any] = kube.gpunodes["n1"]["status"]
    return body


class NoGPUs:
    """A backend that works but sees no GPU: nothing to list, nothing attributed."""

    name = "nvml"
    driver_version = "550.54.15"

    def init(self) -> None:
        """Always available."""

    def sample(self, now: float) -> list[GPUSample]:
        return []

    def shutdown(self) -> None:
        """Nothing to release."""


async def none() -> dict[str, Any]:
    return await published(NoGPUs(), ticks(2))


CASES = {
    "healthy": healthy,
    "unhealthy": unhealthy,
    "not_reporting": not_reporting,
    "pods_attributed": pods_attributed,
    "fake_pods": fake_pods,
    "checkpoints_reported": checkpoints_reported,
    "none": none,
}


@pytest.fixture(autouse=True)
def fixed_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpupool.agent.node.utcnow", lambda: WALL_CLOCK)


@pytest.mark.parametrize("case", CASES)
async def test_the_status_sent_is_what_the_crd_models_would_send(case: str) -> None:
    body = await CASES[case]()
    sent = json.dumps(body, indent=2) + "\n"
    model = GPUNodeStatus.model_validate(body)
    dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert json.dumps(dumped, indent=2) + "\n" == sent
    recorded = RECORDED / f"{case}.json"
    if not recorded.exists():
        recorded.parent.mkdir(exist_ok=True)
        recorded.write_text(sent)
        pytest.fail(f"recorded {recorded}: review it, then rerun")
    assert sent == recorded.read_text()
