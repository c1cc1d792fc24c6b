"""The fake backend: utilization scripts, GPUs handed to pods, faults on demand."""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.agent.backend import BackendUnavailable
from gpupool.agent.fake import FAKE_UTILIZATION, FakeBackend, FakeConfig, fake_uuid
from gpupool.agent.schedule import Schedule, parse_duration

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def pod(
    name: str,
    gpus: int,
    *,
    annotation: str | None = None,
    created: str = "2023-11-14T22:13:20Z",
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "namespace": "team",
        "name": name,
        "uid": f"uid-{name}",
        "creationTimestamp": created,
    }
    if annotation is not None:
        meta["annotations"] = {FAKE_UTILIZATION: annotation}
    return {
        "metadata": meta,
        "spec": {
            "nodeName": "n1",
            "containers": containers
            or [{"name": "main", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"startTime": created},
    }


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("85", {0: 85, 1e6: 85}),
        ("0-120s:90,120s-:0", {0: 90, 119.9: 90, 120: 0, 5000: 0}),
        ("10-20:50", {0: None, 10: 50, 20: None}),
        ("0-1m:100, 1m-2m:40", {30: 100, 90: 40, 150: None}),
        ("0-500ms:10,1h-:70", {0.2: 10, 0.7: None, 3600: 70}),
    ],
)
def test_schedules(text: str, points: dict[float, float | None]) -> None:
    schedule = Schedule.parse(text)
    for elapsed, value in points.items():
        assert schedule.value_at(elapsed) == value, elapsed


@pytest.mark.parametrize(
    "text", ["", "abc", "101", "-5", "0-10s", "10s-5s:50", "x-10:5", "0-10q:50"]
)
def test_bad_schedules(text: str) -> None:
    with pytest.raises(ValueError):
        Schedule.parse(text)


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("2m") == 120
    assert parse_duration("1.5h") == 5400
    assert parse_duration("250ms") == 0.25


def test_gpus_go_to_pods_in_creation_order_and_stay_put() -> None:
    backend = FakeBackend("n1", FakeConfig(gpus=4))
    backend.assign(
        [pod("b", 2, created="2023-11-14T22:14:00Z"), pod("a", 1, created="2023-11-14T22:13:00Z")]
    )
    assert [backend.owner(i).name if backend.owner(i) else None for i in range(4)] == [
        "a",
        "b",
        "b",
        None,
    ]
    # "a" ends; "c" arrives: "b" keeps its GPUs, "c" takes the lowest free ones.
    backend.assign([pod("b", 2, created="2023-11-14T22:14:00Z"), pod("c", 2)])
    owners = [backend.owner(i).name if backend.owner(i) else None for i in range(4)]
    assert owners == ["c", "b", "b", "c"]


def test_a_pod_that_does_not_fit_gets_nothing() -> None:
    backend = FakeBackend("n1", FakeConfig(gpus=2))
    backend.assign([pod("a", 1), pod("big", 4, created="2023-11-14T22:15:00Z")])
    assert [backend.owner(i) and backend.owner(i).name for i in range(2)] == ["a", None]


def test_each_gpu_container_gets_its_own_gpus() -> None:
    containers = [
        {"name": "sidecar", "resources": {}},
        {"name": "left", "resources": {"limits": {"nvidia.com/gpu": 1}}},
        {"name": "right", "resources": {"requests": {"nvidia.com/gpu": "1"}}},
    ]
    backend = FakeBackend("n1", FakeConfig(gpus=3))
    backend.assign([pod("multi", 0, containers=containers)])
    assert [backend.owner(i).container if backend.owner(i) else "" for i in range(3)] == [
        "left",
        "right",
        "",
    ]


def test_unhealthy_gpus_are_not_handed_out() -> None:
    backend = FakeBackend("n1", FakeConfig(gpus=2))
    backend.set_unhealthy(0)
    backend.assign([pod("a", 1)])
    assert backend.owner(0) is None and backend.owner(1) is not None


def test_utilization_follows_the_pod_annotation_from_its_start() -> None:
    clock = Clock()
    backend = FakeBackend("n1", FakeConfig(gpus=3), clock=clock)
    backend.assign(
        [
            pod("a-sched", 1, annotation="0-120s:90,120s-:5"),
            pod("b-flat", 1, annotation="42"),
            pod("plain", 1, created="2023-11-14T22:13:21Z"),
        ]
    )
    clock.now = T0 + 60
    assert [s.utilization for s in backend.sample(0)] == [90, 42, 90]
    clock.now = T0 + 180
    samples = backend.sample(1)
    assert [s.utilization for s in samples] == [5, 42, 90]
    assert samples[0].pod is not None and samples[0].pod.name == "a-sched"
    assert samples[0].memory_used_bytes and samples[0].memory_used_bytes > 0


def test_gpu_scripts_without_pods_and_a_bad_annotation() -> None:
    clock = Clock()
    config = FakeConfig(gpus=3, gpu_scripts={1: "0-10s:100"}, idle_script="3")
    backend = FakeBackend("n1", config, clock=clock)
    backend.assign([pod("bad", 1, annotation="lots")])
    clock.now = T0 + 5
    samples = backend.sample(0)
    assert [s.utilization for s in samples] == [90, 100, 3]
    assert samples[2].memory_used_bytes == 0
    clock.now = T0 + 15
    assert backend.sample(1)[1].utilization == 0


def test_identity_health_and_unavailability() -> None:
    backend = FakeBackend("n1", FakeConfig(gpus=2, product="NVIDIA H100 80GB HBM3"))
    samples = backend.sample(0)
    assert samples[0].uuid == fake_uuid("n1", 0) != fake_uuid("n2", 0)
    assert samples[0].product == "NVIDIA H100 80GB HBM3"
    backend.set_unhealthy(1, "XID 48")
    assert (backend.sample(1)[1].healthy, backend.sample(1)[1].health_reason) == (False, "XID 48")
    backend.set_healthy(1)
    assert backend.sample(2)[1].healthy
    backend.unavailable = "no driver (fake)"
    with pytest.raises(BackendUnavailable):
        backend.init()
    with pytest.raises(BackendUnavailable):
        backend.sample(3)


def test_gpu_count_defaults() -> None:
    assert FakeBackend("n1").gpus == 8
    assert FakeBackend("n1", gpus=4).gpus == 4
    assert FakeBackend("n1", FakeConfig(gpus=2), gpus=4).gpus == 4
