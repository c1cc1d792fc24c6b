"""Which pod uses which GPU.

1. The kubelet PodResources API (what dcgm-exporter does): the devices the
   device plugin allocated to each container, by GPU UUID. Sees a pod as soon
   as it is admitted, busy or idle. Needs the socket directory mounted
   (hostPath /var/lib/kubelet/pod-resources).
2. Fallback for GPUs it does not cover: the GPU's processes (NVML, host PIDs)
   -> /proc/<pid>/cgroup -> pod UID -> the pod, from a list of this node's pods.
   Sees only pods with a process on the GPU. Needs hostPID: true (to see other
   containers' /proc) and read access to pods.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import grpc

from gpupool.agent.backend import GPUSample
from gpupool.agent.cgroups import CgroupRef, pod_of_pid
from gpupool.agent.podresources import api_pb2, api_pb2_grpc
from gpupool.agent.status import PodRef
from gpupool.k8s import ApiError, KubeClient
from gpupool.k8s.gpunodes import list_node_pods

log = logging.getLogger(__name__)


class Attributor(Protocol):
    async def attribute(self, samples: list[GPUSample], now: float) -> dict[str, PodRef]:
        """GPU UUID -> the pod (and container) using it."""
        ...

    async def close(self) -> None: ...


def device_uuid(device_id: str) -> str:
    """The GPU UUID of a device-plugin device ID ("<uuid>::<n>" when time-sliced)."""
    return device_id.split("::", 1)[0]


def devices_by_pod(
    response: api_pb2.ListPodResourcesResponse, resource_names: tuple[str, ...]
) -> dict[str, PodRef]:
    """GPU UUID -> pod/container from a PodResources List() answer."""
    found: dict[str, PodRef] = {}
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                if devices.resource_name not in resource_names:
                    continue
                for device_id in devices.device_ids:
                    found.setdefault(
                        device_uuid(device_id),
                        PodRef(namespace=pod.namespace, name=pod.name, container=container.name),
                    )
    return found


class PodResourcesClient:
    """List() on the kubelet's PodResources socket; None when it can't be asked."""

    def __init__(
        self,
        socket_path: Path,
        resource_names: tuple[str, ...],
        timeout: float = 2.0,
    ) -> None:
        self.socket_path = socket_path
        self.resource_names = resource_names
        self.timeout = timeout
        self._channel: Any = None
        self._stub: Any = None
        self._warned = ""

    def _warn_once(self, message: str) -> None:
        if message != self._warned:
            log.warning("PodResources: %s", message)
            self._warned = message

    async def list(self) -> dict[str, PodRef] | None:
        if not self.socket_path.exists():
            self._warn_once(
                f"{self.socket_path} absent (mount hostPath /var/lib/kubelet/pod-resources); "
                "falling back to process cgroups"
            )
            return None
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"unix://{self.socket_path}")
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)  # type: ignore[no-untyped-call]
        try:
            response = await self._stub.List(
                api_pb2.ListPodResourcesRequest(), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            self._warn_once(f"List() failed ({exc.code().name}: {exc.details()})")
            await self.close()
            return None
        self._warned = ""
        return devices_by_pod(response, self.resource_names)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None


@dataclass
class PodInfo:
    namespace: str
    name: str
    uid: str
    containers: dict[str, str] = field(default_factory=dict)
    """Container ID (without the runtime:// prefix) -> container name."""

    def ref(self, container_id: str = "") -> PodRef:
        container = self.containers.get(container_id, "")
        if not container and len(self.containers) == 1:
            container = next(iter(self.containers.values()))
        return PodRef(namespace=self.namespace, name=self.name, container=container, uid=self.uid)


def pod_info(pod: dict[str, Any]) -> PodInfo:
    meta = pod.get("metadata", {})
    containers: dict[str, str] = {}
    status = pod.get("status") or {}
    for entry in status.get("containerStatuses") or []:
        container_id = str(entry.get("containerID") or "")
        containers[container_id.split("://", 1)[-1]] = str(entry.get("name", ""))
    return PodInfo(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        containers=containers,
    )


class NodePods:
    """This node's pods by UID, listed from the API when an unknown UID shows up."""

    def __init__(self, client: KubeClient, node_name: str, min_interval: float = 10.0) -> None:
        self.client = client
        self.node_name = node_name
        self.min_interval = min_interval
        self.by_uid: dict[str, PodInfo] = {}
        self._listed_at = float("-inf")

    async def find(self, uid: str, now: float) -> PodInfo | None:
        if uid not in self.by_uid and now - self._listed_at >= self.min_interval:
            self._listed_at = now
            try:
                pods = await list_node_pods(self.client, self.node_name)
            except ApiError as error:
                log.warning("listing pods of node %s: %s", self.node_name, error)
                return None
            self.by_uid = {info.uid: info for info in map(pod_info, pods)}
        return self.by_uid.get(uid)


class NodeAttributor:
    """PodResources first, then process cgroups for the GPUs it left out."""

    def __init__(
        self,
        pod_resources: PodResourcesClient | None,
        pods: NodePods | None,
        *,
        proc_root: Path = Path("/proc"),
        refresh: float = 5.0,
    ) -> None:
        self.pod_resources = pod_resources
        self.pods = pods
        self.proc_root = proc_root
        self.refresh = refresh
        self._devices: dict[str, PodRef] = {}
        self._listed_at = float("-inf")
        self._cgroups: dict[int, CgroupRef | None] = {}

    async def attribute(self, samples: list[GPUSample], now: float) -> dict[str, PodRef]:
        if self.pod_resources is not None and now - self._listed_at >= self.refresh:
            self._listed_at = now
            self._devices = await self.pod_resources.list() or {}
        found: dict[str, PodRef] = {}
        live_pids: set[int] = set()
        for sample in samples:
            ref = self._devices.get(sample.uuid)
            if ref is None:
                live_pids.update(p.pid for p in sample.processes)
                ref = await self._from_processes(sample, now)
            elif not ref.uid and self.pods is not None:
                known = next(
                    (
                        p
                        for p in self.pods.by_uid.values()
                        if (p.namespace, p.name) == (ref.namespace, ref.name)
                    ),
                    None,
                )
                if known is not None:
                    ref = replace(ref, uid=known.uid)
            if ref is not None:
                found[sample.uuid] = ref
        # Forget exited processes so the PID cache stays as small as the GPU's process list.
        for pid in self._cgroups.keys() - live_pids:
            del self._cgroups[pid]
        return found

    async def _from_processes(self, sample: GPUSample, now: float) -> PodRef | None:
        if self.pods is None:
            return None
        for process in sample.processes:
            if process.pid not in self._cgroups:
                self._cgroups[process.pid] = pod_of_pid(process.pid, self.proc_root)
            cgroup = self._cgroups[process.pid]
            if cgroup is None:
                continue
            pod = await self.pods.find(cgroup.pod_uid, now)
            if pod is not None:
                return pod.ref(cgroup.container_id)
        return None

    async def close(self) -> None:
        if self.pod_resources is not None:
            await self.pod_resources.close()
