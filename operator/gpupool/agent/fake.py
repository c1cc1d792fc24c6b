"""The fake backend: scripted GPUs for the demo and the tests, no driver needed.

Kept apart from the real backend; it shares only the Backend protocol. A fake
node's GPUs go to the pods bound to it that request nvidia.com/gpu (like the
device plugin would hand them out, stable while the pod lives), and a GPU's
utilization follows its pod's `gpupool.io/fake-utilization` annotation ("85" or
a schedule such as "0-120s:90,120s-:0", relative to the pod's start). GPUs with
no pod follow their own script (default idle).

`FakeAgents` runs the fake agents of many nodes in one process cheaply: one pod
list and one Node list serve all of them, one loop samples them all, and the
GPUNode writes share a bounded pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import Any

from gpupool.agent.backend import MIB, BackendUnavailable, GPUSample
from gpupool.agent.config import GPU_RESOURCE, AgentConfig
from gpupool.agent.loop import AgentLoop
from gpupool.agent.metrics import MetricsServer
from gpupool.agent.node import NodeAgent
from gpupool.agent.publisher import Publisher
from gpupool.agent.schedule import Schedule
from gpupool.agent.status import PodRef
from gpupool.k8s import NODES, ApiError, KubeClient
from gpupool.k8s.gpunodes import list_bound_pods, list_node_pods

log = logging.getLogger(__name__)

FAKE_UTILIZATION = "gpupool.io/fake-utilization"
_UUID_NAMESPACE = uuid.UUID("6f1c2d3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f")


@dataclass(frozen=True)
class FakeConfig:
    gpus: int | None = None
    """GPUs per node; None: the Node's nvidia.com/gpu capacity (else `default_gpus`)."""
    default_gpus: int = 8
    product: str = "NVIDIA A100-SXM4-80GB"
    memory_mib: int = 81920
    gpu_scripts: Mapping[int, str] = field(default_factory=dict)
    """Utilization script per GPU index, used while no pod holds the GPU."""
    idle_script: str = "0"
    """Script of a GPU with neither a pod nor its own script."""
    pod_utilization: float = 90.0
    """Utilization of a GPU whose pod has no annotation (or a bad one)."""
    pod_refresh: float = 2.0
    """Seconds between pod lists (the GPU-to-pod assignment)."""
    resource_name: str = GPU_RESOURCE
    driver_version: str = "fake"


@lru_cache(maxsize=1024)
def _schedule(text: str) -> Schedule | None:
    """Parsed once per distinct script; None (with a warning) when malformed."""
    try:
        return Schedule.parse(text)
    except ValueError as exc:
        log.warning("ignoring utilization script %r: %s", text, exc)
        return None


def fake_uuid(node: str, index: int) -> str:
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{node}/{index}')}"


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _gpu_count(resources: Mapping[str, Any], resource_name: str) -> int:
    for kind in ("limits", "requests"):
        value = (resources.get(kind) or {}).get(resource_name)
        if value is not None:
            return int(str(value))
    return 0


@dataclass(frozen=True)
class _Claim:
    """A container's GPUs: who, how many, and what its utilization script is."""

    key: tuple[str, str]
    ref: PodRef
    count: int
    script: str | None
    started: float | None


def _claims(pod: Mapping[str, Any], resource_name: str) -> list[_Claim]:
    meta = pod.get("metadata", {})
    status = pod.get("status") or {}
    started = _timestamp(status.get("startTime")) or _timestamp(meta.get("creationTimestamp"))
    script = (meta.get("annotations") or {}).get(FAKE_UTILIZATION)
    claims = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        count = _gpu_count(container.get("resources") or {}, resource_name)
        if count <= 0:
            continue
        ref = PodRef(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            container=str(container.get("name", "")),
            uid=str(meta.get("uid", "")),
        )
        claims.append(_Claim((ref.uid, ref.container), ref, count, script, started))
    return claims


def _pod_order(pod: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = pod.get("metadata", {})
    return (
        str(meta.get("creationTimestamp", "")),
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
    )


class FakeBackend:
    """Scripted GPUs of one node."""

    name = "fake"

    def __init__(
        self,
        node_name: str,
        config: FakeConfig | None = None,
        *,
        gpus: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_name = node_name
        self.config = config or FakeConfig()
        self.gpus = gpus or self.config.gpus or self.config.default_gpus
        self.clock = clock
        self.started = clock()
        self.unavailable: str | None = None
        """Set to a reason to play a node without a driver (init and sample fail)."""
        self.unhealthy: dict[int, str] = {}
        self._owners: dict[int, _Claim] = {}
        self._uuids = [fake_uuid(node_name, index) for index in range(self.gpus)]

    @property
    def driver_version(self) -> str:
        return self.config.driver_version

    def init(self) -> None:
        if self.unavailable:
            raise BackendUnavailable(self.unavailable)

    def shutdown(self) -> None:
        """Nothing to release."""

    def set_unhealthy(self, index: int, reason: str = "XID 79 (fake)") -> None:
        self.unhealthy[index] = reason

    def set_healthy(self, index: int) -> None:
        self.unhealthy.pop(index, None)

    def owner(self, index: int) -> PodRef | None:
        claim = self._owners.get(index)
        return claim.ref if claim else None

    def assign(self, pods: Sequence[Mapping[str, Any]]) -> None:
        """Give GPUs to the pods' GPU containers, keeping what each already holds."""
        claims = [
            claim
            for pod in sorted(pods, key=_pod_order)
            for claim in _claims(pod, self.config.resource_name)
        ]
        wanted = {claim.key: claim for claim in claims}
        held: dict[tuple[str, str], list[int]] = {}
        owners: dict[int, _Claim] = {}
        for index, claim in sorted(self._owners.items()):
            current = wanted.get(claim.key)
            if current is not None and len(held.get(claim.key, [])) < current.count:
                held.setdefault(claim.key, []).append(index)
                owners[index] = current
        # The device plugin hands out healthy devices only, lowest index first here.
        free = [i for i in range(self.gpus) if i not in owners and i not in self.unhealthy]
        for claim in claims:
            missing = claim.count - len(held.get(claim.key, []))
            if missing > len(free):
                log.debug("node %s: no room for %s", self.node_name, claim.ref.name)
                continue
            for index in free[:missing]:
                owners[index] = claim
            free = free[missing:]
        self._owners = owners

    def _utilization(self, index: int, wall: float) -> float:
        claim = self._owners.get(index)
        if claim is not None:
            schedule = _schedule(claim.script) if claim.script else None
            if schedule is None:
                return self.config.pod_utilization
            value = schedule.value_at(wall - (claim.started or self.started))
            return self.config.pod_utilization if value is None else value
        script = self.config.gpu_scripts.get(index, self.config.idle_script)
        schedule = _schedule(script)
        value = schedule.value_at(wall - self.started) if schedule else None
        return value or 0.0

    def sample(self, now: float) -> list[GPUSample]:
        if self.unavailable:
            raise BackendUnavailable(self.unavailable)
        wall = self.clock()
        total = self.config.memory_mib * MIB
        samples = []
        for index in range(self.gpus):
            utilization = self._utilization(index, wall)
            claim = self._owners.get(index)
            used = int(total * (0.3 + 0.6 * utilization / 100)) if claim else 0
            reason = self.unhealthy.get(index, "")
            samples.append(
                GPUSample(
                    index=index,
                    uuid=self._uuids[index],
                    product=self.config.product,
                    healthy=not reason,
                    health_reason=reason,
                    utilization=utilization,
                    memory_used_bytes=used,
                    memory_total_bytes=total,
                    temperature_c=round(32 + 0.5 * utilization, 1),
                    power_w=round(60 + 3.4 * utilization, 1),
                    ecc_errors=0,
                    pod=claim.ref if claim else None,
                )
            )
        return samples


class FakeAgents:
    """The fake agents of many nodes in one process (the demo's and the tests' agents).

    async with FakeAgents(client, ["n1", "n2"]) as agents:
        agents.backend("n1").set_unhealthy(0)
        await agents.publish_now()
    """

    def __init__(
        self,
        client: KubeClient,
        nodes: Sequence[str],
        *,
        fake: FakeConfig | None = None,
        config: AgentConfig | None = None,
        metrics_port: int = 0,
    ) -> None:
        if not nodes:
            raise ValueError("FakeAgents needs at least one node")
        self.client = client
        self.nodes = list(dict.fromkeys(nodes))
        self.fake = fake or FakeConfig()
        self.config = config or AgentConfig()
        self.metrics_port = metrics_port
        self.backends: dict[str, FakeBackend] = {}
        self.agents: dict[str, NodeAgent] = {}
        self.loop: AgentLoop | None = None
        self.metrics: MetricsServer | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def backend(self, node: str) -> FakeBackend:
        return self.backends[node]

    def agent(self, node: str) -> NodeAgent:
        return self.agents[node]

    async def _nodes_by_name(self) -> dict[str, dict[str, Any]]:
        """The fake nodes' Node objects: one list for all of them, or with an agent's
        own RBAC (get, not list) one get a node."""
        try:
            listed = await self.client.list(NODES)
        except ApiError as error:
            if not error.forbidden:
                log.warning("fake agents: listing nodes: %s", error)
                return {}
            return await self._get_nodes()
        wanted = set(self.nodes)
        return {
            item["metadata"]["name"]: item
            for item in listed.get("items", [])
            if item["metadata"]["name"] in wanted
        }

    async def _get_nodes(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name in self.nodes:
            try:
                found[name] = await self.client.get(NODES, name)
            except ApiError as error:
                log.warning("fake agents: reading node %s: %s", name, error)
        return found

    async def start(self) -> None:
        nodes = await self._nodes_by_name()
        now = time.monotonic()
        for name in self.nodes:
            node = nodes.get(name)
            capacity = (node or {}).get("status", {}).get("capacity", {})
            count = self.fake.gpus or int(capacity.get(self.fake.resource_name, 0) or 0)
            backend = FakeBackend(name, self.fake, gpus=count or None)
            publisher = Publisher(
                self.client,
                name,
                topology_refresh=self.config.topology_refresh,
                backoff=self.config.api_backoff,
            )
            if node is not None:
                publisher.use_node(node, now)
            self.backends[name] = backend
            self.agents[name] = NodeAgent(name, backend, config=self.config, publisher=publisher)
        self.loop = AgentLoop(list(self.agents.values()), interval=self.config.interval)
        if self.metrics_port:
            self.metrics = MetricsServer(
                lambda: list(self.agents.values()), self.config.metrics_address, self.metrics_port
            )
            self.metrics.start()
        await self.refresh_pods()
        self._tasks = [
            asyncio.create_task(self.loop.run(self._stop)),
            asyncio.create_task(self._refresh_pods_forever()),
            asyncio.create_task(self._refresh_nodes_forever()),
        ]
        log.info("fake agents started for %d node(s)", len(self.nodes))

    async def refresh_pods(self) -> None:
        """Re-read the pods and reassign GPUs: one list for all nodes."""
        try:
            if len(self.nodes) == 1:
                pods = await list_node_pods(self.client, self.nodes[0])
            else:
                pods = await list_bound_pods(self.client)
        except ApiError as error:
            log.warning("fake agents: listing pods: %s", error)
            return
        by_node: dict[str, list[dict[str, Any]]] = {name: [] for name in self.nodes}
        for pod in pods:
            bucket = by_node.get((pod.get("spec") or {}).get("nodeName", ""))
            if bucket is not None:
                bucket.append(pod)
        for name, backend in self.backends.items():
            backend.assign(by_node[name])

    async def _refresh_pods_forever(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.fake.pod_refresh)
            if not self._stop.is_set():
                await self.refresh_pods()

    async def _refresh_nodes_forever(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.config.topology_refresh)
            if self._stop.is_set():
                return
            now = time.monotonic()
            for name, node in (await self._nodes_by_name()).items():
                publisher = self.agents[name].publisher
                if publisher is not None:
                    publisher.use_node(node, now)

    async def sample_now(self) -> None:
        """One sample of every node, outside the loop's rhythm (tests)."""
        if self.loop is not None:
            await self.loop.tick()

    async def publish_now(self) -> int:
        """Re-read pods, sample and write every GPUNode now; how many writes succeeded."""
        if self.loop is None:
            return 0
        await self.refresh_pods()
        await self.loop.tick()
        return await self.loop.publish_all()

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=35)
            for task in self._tasks:
                task.cancel()
            self._tasks = []
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None

    async def wait(self) -> None:
        await self._stop.wait()

    async def __aenter__(self) -> FakeAgents:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def run_fake_agents(
    client: KubeClient,
    nodes: Sequence[str],
    *,
    fake: FakeConfig | None = None,
    config: AgentConfig | None = None,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    metrics_port: int = 0,
) -> None:
    """Run fake agents for `nodes` until `stop` is set or `duration` seconds passed."""
    async with FakeAgents(
        client, nodes, fake=fake, config=config, metrics_port=metrics_port
    ) as agents:
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(agents.wait())]
        if stop is not None:
            waiters.append(asyncio.create_task(stop.wait()))
        _, pending = await asyncio.wait(
            waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
