"""Pod attribution: PodResources over a real gRPC unix socket, then the cgroup fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gpupool.agent.attribution import (
    NodeAttributor,
    NodePods,
    PodResourcesClient,
    device_uuid,
    pod_info,
)
from gpupool.agent.backend import GPUProcess, GPUSample
from gpupool.agent.podresources import api_pb2, api_pb2_grpc
from gpupool.agent.status import PodRef

UID = "0f3a9b1c-2d4e-4f60-8a7b-9c0d1e2f3a4b"
CID = "ab" * 32


def listing(*pods: tuple[str, str, str, str, list[str]]) -> api_pb2.ListPodResourcesResponse:
    """(namespace, pod, container, resource, device ids) -> a List() answer."""
    return api_pb2.ListPodResourcesResponse(
        pod_resources=[
            api_pb2.PodResources(
                namespace=namespace,
                name=name,
                containers=[
                    api_pb2.ContainerResources(
                        name=container,
                        devices=[api_pb2.ContainerDevices(resource_name=resource, device_ids=ids)],
                    )
                ],
            )
            for namespace, name, container, resource, ids in pods
        ]
    )


class Lister(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self) -> None:
        self.response = api_pb2.ListPodResourcesResponse()
        self.calls = 0

    async def List(self, request: Any, context: Any) -> api_pb2.ListPodResourcesResponse:
        self.calls += 1
        return self.response


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[tuple[Path, Lister]]:
    socket = tmp_path / "kubelet.sock"
    server = grpc.aio.server()
    lister = Lister()
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(lister, server)
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    try:
        yield socket, lister
    finally:
        await server.stop(grace=None)


def sample(index: int, *pids: int) -> GPUSample:
    return GPUSample(index=index, uuid=f"GPU-{index}", processes=[GPUProcess(pid) for pid in pids])


def test_device_ids_of_time_sliced_gpus() -> None:
    assert device_uuid("GPU-abc::3") == "GPU-abc"
    assert device_uuid("GPU-abc") == "GPU-abc"


async def test_pod_resources_maps_gpus_to_pods(kubelet: tuple[Path, Lister]) -> None:
    socket, lister = kubelet
    lister.response = listing(
        ("team-a", "train-0", "trainer", "nvidia.com/gpu", ["GPU-0", "GPU-1::2"]),
        ("team-b", "web", "app", "example.com/fpga", ["GPU-2"]),
    )
    client = PodResourcesClient(socket, ("nvidia.com/gpu",))
    try:
        found = await client.list()
    finally:
        await client.close()
    assert found == {
        "GPU-0": PodRef(namespace="team-a", name="train-0", container="trainer"),
        "GPU-1": PodRef(namespace="team-a", name="train-0", container="trainer"),
    }


async def test_missing_socket_is_none_not_an_error(tmp_path: Path) -> None:
    client = PodResourcesClient(tmp_path / "absent.sock", ("nvidia.com/gpu",))
    assert await client.list() is None


async def test_a_dead_socket_is_none_not_an_error(tmp_path: Path) -> None:
    socket = tmp_path / "dead.sock"
    socket.touch()
    client = PodResourcesClient(socket, ("nvidia.com/gpu",), timeout=0.5)
    assert await client.list() is None
    await client.close()


class StaticPods(NodePods):
    """NodePods whose 'API list' is a fixed set of pods."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        super().__init__(client=None, node_name="n1", min_interval=0)
        self.pods = pods
        self.lists = 0

    async def find(self, uid: str, now: float) -> Any:
        if uid not in self.by_uid:
            self.lists += 1
            self.by_uid = {info.uid: info for info in map(pod_info, self.pods)}
        return self.by_uid.get(uid)


POD = {
    "metadata": {"namespace": "team-a", "name": "train-0", "uid": UID},
    "status": {
        "containerStatuses": [
            {"name": "sidecar", "containerID": "containerd://" + "cd" * 32},
            {"name": "trainer", "containerID": "containerd://" + CID},
        ]
    },
}


def write_proc(root: Path, pid: int, text: str) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(text)


async def test_cgroup_fallback_for_gpus_pod_resources_does_not_know(
    kubelet: tuple[Path, Lister], tmp_path: Path
) -> None:
    socket, lister = kubelet
    lister.response = listing(("team-b", "infer", "server", "nvidia.com/gpu", ["GPU-0"]))
    proc = tmp_path / "proc"
    write_proc(proc, 100, f"0::/kubepods/burstable/pod{UID}/{CID}\n")
    write_proc(proc, 200, "0::/system.slice/sshd.service\n")
    pods = StaticPods([POD])
    attributor = NodeAttributor(
        PodResourcesClient(socket, ("nvidia.com/gpu",)), pods, proc_root=proc, refresh=5
    )
    try:
        found = await attributor.attribute([sample(0), sample(1, 200, 100), sample(2, 999)], 0.0)
        assert found == {
            "GPU-0": PodRef(namespace="team-b", name="infer", container="server"),
            "GPU-1": PodRef(namespace="team-a", name="train-0", container="trainer", uid=UID),
        }
        # Within the refresh interval the kubelet is not asked again.
        await attributor.attribute([sample(0)], 1.0)
        assert lister.calls == 1
        await attributor.attribute([sample(0)], 6.0)
        assert lister.calls == 2
        # PIDs that left the GPU are forgotten.
        assert set(attributor._cgroups) == set()
    finally:
        await attributor.close()


async def test_without_pod_resources_only_the_fallback_runs(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_proc(proc, 7, f"0::/kubepods/pod{UID}\n")
    attributor = NodeAttributor(None, StaticPods([POD]), proc_root=proc)
    found = await attributor.attribute([sample(0, 7)], 0.0)
    # The process sits in the pod's cgroup itself: the pod, container unknown.
    assert found == {"GPU-0": PodRef(namespace="team-a", name="train-0", container="", uid=UID)}


async def test_single_container_pod_names_its_container(tmp_path: Path) -> None:
    pod = {
        "metadata": {"namespace": "n", "name": "p", "uid": UID},
        "status": {"containerStatuses": [{"name": "only", "containerID": "cri-o://" + CID}]},
    }
    proc = tmp_path / "proc"
    write_proc(proc, 7, f"0::/kubepods/pod{UID}\n")
    attributor = NodeAttributor(None, StaticPods([pod]), proc_root=proc)
    found = await attributor.attribute([sample(0, 7)], 0.0)
    assert found["GPU-0"].container == "only"
