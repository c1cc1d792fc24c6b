"""The agent process: the real NVML agent of one node, or fake agents of many."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from gpupool.agent.attribution import NodeAttributor, NodePods, PodResourcesClient
from gpupool.agent.checkpoints import LogCheckpoints
from gpupool.agent.config import AgentConfig
from gpupool.agent.loop import AgentLoop
from gpupool.agent.metrics import MetricsServer
from gpupool.agent.node import NodeAgent
from gpupool.agent.nvml import NvmlBackend
from gpupool.agent.publisher import Publisher
from gpupool.k8s import KubeClient

if TYPE_CHECKING:
    from gpupool.agent.fake import FakeConfig

log = logging.getLogger("gpupool.agent")


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def run_agent(
    client: KubeClient,
    node: str,
    config: AgentConfig,
    *,
    nvml: object = None,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """The real agent for one node until stopped; `nvml` replaces pynvml (tests, bench)."""
    stop = stop or asyncio.Event()
    backend = NvmlBackend(nvml)
    publisher = Publisher(
        client, node, topology_refresh=config.topology_refresh, backoff=config.api_backoff
    )
    checkpoints = LogCheckpoints(config.pod_logs) if config.pod_logs is not None else None
    agent = NodeAgent(node, backend, config=config, publisher=publisher, checkpoints=checkpoints)
    attributor = NodeAttributor(
        PodResourcesClient(config.pod_resources_socket, config.resource_names),
        NodePods(client, node),
        proc_root=config.proc_root,
        refresh=config.attribution_refresh,
    )
    loop = AgentLoop(
        [agent], interval=config.interval, attributors={node: attributor}, poll_in_thread=True
    )
    metrics = None
    if config.metrics_port:
        metrics = MetricsServer(lambda: [agent], config.metrics_address, config.metrics_port)
        metrics.start()
    try:
        await loop.run(stop, duration)
    finally:
        await attributor.close()
        backend.shutdown()
        if metrics is not None:
            metrics.stop()


async def run(
    nodes: list[str],
    config: AgentConfig,
    *,
    kubeconfig: str | None,
    fake: FakeConfig | None,
    duration: float | None,
) -> None:
    """Run until SIGTERM/SIGINT or `duration`; fake agents when `fake` is given."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with KubeClient.from_kubeconfig(kubeconfig) as client:
        if fake is not None:
            from gpupool.agent.fake import run_fake_agents

            await run_fake_agents(
                client,
                nodes,
                fake=fake,
                config=config,
                stop=stop,
                duration=duration,
                metrics_port=config.metrics_port,
            )
        else:
            await run_agent(client, nodes[0], config, duration=duration, stop=stop)
