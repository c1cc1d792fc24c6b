"""The node agent measuring its own overhead (CPU of one core, RSS), for
`gpupool bench agent`, which runs this module in a fresh interpreter
(`python -m gpupool.agent.overhead GPUS SECONDS INTERVAL`, JSON on stdout).

The process runs the real agent code path, nothing else: the NVML backend over the
stand-in pynvml (utilization moving like a training job), the sampling loop with its
NVML calls in a worker thread, pod attribution through PodResources List() every 5 s
(a gRPC server on a unix socket in the same process, so its cost is counted too), the
publish decision and GPUNode writes (to an in-process API that JSON-encodes and
stores them), and a Prometheus scrape every 15 s. It lives in the agent package,
whose __init__ imports nothing, so neither the CLI nor the other benchmarks load
their modules into the measured process.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CPU_GOAL_PERCENT = 1.0
RSS_GOAL_MB = 60.0


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(
    gpus: int, seconds: float, interval: float, scrape_every: float
) -> dict[str, Any]:
    import grpc
    from prometheus_client import generate_latest

    from gpupool.agent.attribution import NodeAttributor, PodResourcesClient
    from gpupool.agent.config import GPU_RESOURCE, AgentConfig
    from gpupool.agent.loop import AgentLoop
    from gpupool.agent.metrics import make_registry
    from gpupool.agent.node import NodeAgent
    from gpupool.agent.nvml import NvmlBackend
    from gpupool.agent.nvml_standin import ProcessInfo, StandInNVML
    from gpupool.agent.podresources import api_pb2, api_pb2_grpc
    from gpupool.agent.publisher import Publisher
    from gpupool.k8s import ApiError, Credentials, KubeClient

    class LoopbackKube(KubeClient):
        """Answers the agent's calls in-process (JSON-encoded like the wire)."""

        def __init__(self) -> None:
            super().__init__(Credentials(server="http://loopback.invalid"))
            self.objects: dict[str, Any] = {}
            self.writes = 0

        async def request(
            self,
            method: str,
            path: str,
            *,
            params: Any = None,
            body: Any = None,
            content_type: str = "application/json",
            timeout: float | None = None,
            retry: bool = True,
            text: bool = False,
        ) -> Any:
            payload: Any = json.loads(json.dumps(body)) if body is not None else None
            if path.startswith("/api/v1/nodes/"):
                name = path.rsplit("/", 1)[1]
                return {"metadata": {"name": name, "uid": "bench", "labels": {}}}
            key = path.removesuffix("/status")
            if method == "GET":
                if key not in self.objects:
                    raise ApiError(404, "NotFound", path)
                return self.objects[key]
            if method == "POST":
                self.objects[f"{key}/{payload['metadata']['name']}"] = payload
                return payload
            self.writes += 1
            self.objects.setdefault(key, {}).update(payload)
            return self.objects[key]

    class Kubelet(api_pb2_grpc.PodResourcesListerServicer):
        """Two pods holding every GPU, like a busy node's kubelet."""

        def __init__(self, uuids: list[str]) -> None:
            half = len(uuids) // 2 or 1
            self.response = api_pb2.ListPodResourcesResponse(
                pod_resources=[
                    api_pb2.PodResources(
                        namespace="team",
                        name=f"train-{n}",
                        containers=[
                            api_pb2.ContainerResources(
                                name="main",
                                devices=[
                                    api_pb2.ContainerDevices(
                                        resource_name=GPU_RESOURCE, device_ids=ids
                                    )
                                ],
                            )
                        ],
                    )
                    for n, ids in enumerate((uuids[:half], uuids[half:]))
                ]
            )

        async def List(self, request: Any, context: Any) -> Any:
            return self.response

    standin = StandInNVML.with_gpus(gpus)
    for i, device in enumerate(standin.devices):
        device.processes = [ProcessInfo(pid=10_000 + i, usedGpuMemory=30 * 1024**3)]
    rng = random.Random(42)
    socket = Path(tempfile.mkdtemp(prefix="gpupool-bench-")) / "kubelet.sock"
    server = grpc.aio.server()
    kubelet = Kubelet([d.uuid for d in standin.devices])
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(kubelet, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    config = AgentConfig(interval=interval, metrics_port=0, pod_resources_socket=socket)
    kube = LoopbackKube()
    publisher = Publisher(kube, "bench-node")
    agent = NodeAgent("bench-node", NvmlBackend(standin), config=config, publisher=publisher)
    attributor = NodeAttributor(
        PodResourcesClient(socket, config.resource_names), None, refresh=config.attribution_refresh
    )
    loop = AgentLoop(
        [agent], interval=interval, attributors={"bench-node": attributor}, poll_in_thread=True
    )
    registry = make_registry(lambda: [agent])
    import_rss = _rss_mb()

    def move() -> None:
        for device in standin.devices:
            step = rng.randint(-8, 8)
            device.utilization = max(0, min(100, device.utilization + step))
            device.memory_used = int(device.memory_total * (0.3 + 0.6 * device.utilization / 100))
            device.power_mw = 60_000 + 3_400 * device.utilization
            device.temperature = 32 + device.utilization // 2

    async def drive(duration: float) -> int:
        scrapes = 0
        next_scrape = time.monotonic() + scrape_every
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            started = time.monotonic()
            move()
            await loop.tick(started)
            if started >= next_scrape:
                generate_latest(registry)
                scrapes += 1
                next_scrape += scrape_every
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        await loop.drain()
        return scrapes

    await drive(min(3.0, seconds))  # warm-up: first writes, caches, thread pool
    samples_before, writes_before = agent.samples_total, kube.writes
    cpu_before, wall_before = _cpu_seconds(), time.monotonic()
    scrapes = await drive(seconds)
    cpu = _cpu_seconds() - cpu_before
    wall = time.monotonic() - wall_before
    samples = agent.samples_total - samples_before
    rss = _rss_mb()
    attributed = sum(1 for gpu in agent.status.gpus if gpu.pod is not None)
    await attributor.close()
    await server.stop(grace=None)
    socket.unlink(missing_ok=True)
    socket.parent.rmdir()
    cpu_percent = 100 * cpu / wall
    return {
        "gpus": gpus,
        "seconds": round(wall, 2),
        "interval": interval,
        "samples": samples,
        "publishes": kube.writes - writes_before,
        "gpus_attributed": attributed,
        "scrapes": scrapes,
        "cpu_percent_of_one_core": round(cpu_percent, 3),
        "cpu_ms_per_sample": round(1000 * cpu / max(samples, 1), 3),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(_rss_mb("VmHWM"), 1),
        "rss_after_imports_mb": round(import_rss, 1),
        "goal": {"cpu_percent_of_one_core": CPU_GOAL_PERCENT, "rss_mb": RSS_GOAL_MB},
        "meets_cpu_goal": cpu_percent < CPU_GOAL_PERCENT,
        "meets_rss_goal": rss < RSS_GOAL_MB,
    }


def measure(
    gpus: int, seconds: float, interval: float = 1.0, scrape_every: float = 15.0
) -> dict[str, Any]:
    return asyncio.run(_measure(gpus, seconds, interval, scrape_every))


if __name__ == "__main__":
    gpus_arg, seconds_arg, interval_arg = sys.argv[1:4]
    print(json.dumps(measure(int(gpus_arg), float(seconds_arg), float(interval_arg))))
