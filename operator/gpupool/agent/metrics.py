"""Prometheus exposition of the agent, named and labelled like dcgm-exporter.

A custom Collector builds every series at scrape time from the agents' latest
immutable views, so a pod's series vanish with the pod and no per-sample work is
spent on metrics. Every metric is documented in docs/metrics-agent.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpupool.agent.node import GPUView, NodeAgent

log = logging.getLogger(__name__)

GPU_LABELS = ("gpu", "uuid", "modelName", "Hostname", "namespace", "pod", "container")
POD_LABELS = ("Hostname", "namespace", "pod", "container")
WINDOWS = (("1m", "utilization_1m"), ("5m", "utilization_5m"), ("15m", "utilization_15m"))


def _gpu_labels(node: str, view: GPUView) -> list[str]:
    device = view.device
    pod = device.pod
    return [
        str(device.index),
        device.uuid,
        device.product,
        node,
        pod.namespace if pod else "",
        pod.name if pod else "",
        pod.container if pod else "",
    ]


@dataclass
class _PodTotals:
    gpus: int = 0
    utilization: float = 0.0
    memory_used_bytes: int = 0
    power_w: float = 0.0
    indices: list[str] = field(default_factory=list)


class AgentCollector(Collector):
    """Reads the agents' views at scrape time (from the exporter's thread)."""

    def __init__(self, agents: Callable[[], Sequence[NodeAgent]]) -> None:
        self.agents = agents

    def describe(self) -> list[Metric]:
        # Nothing up front: the series exist only while their GPUs and pods do.
        return []

    def collect(self) -> Iterator[Metric]:
        gauges: dict[str, GaugeMetricFamily] = {
            name: GaugeMetricFamily(name, text, labels=GPU_LABELS)
            for name, text in (
                ("gpupool_gpu_utilization_percent", "GPU utilization, latest sample (percent)."),
                ("gpupool_gpu_memory_used_bytes", "Framebuffer memory used (bytes)."),
                ("gpupool_gpu_memory_total_bytes", "Framebuffer memory size (bytes)."),
                ("gpupool_gpu_power_watts", "Power draw (watts)."),
                ("gpupool_gpu_temperature_celsius", "GPU core temperature (degrees Celsius)."),
                ("gpupool_gpu_healthy", "1 if the GPU is healthy, 0 if not."),
                ("gpupool_gpu_idle_seconds", "Seconds since the GPU was last active."),
                ("gpupool_gpu_last_xid", "Code of the last XID event seen (0: none)."),
            )
        }
        windowed = GaugeMetricFamily(
            "gpupool_gpu_utilization_mean_percent",
            "Mean GPU utilization over a window (percent).",
            labels=(*GPU_LABELS, "window"),
        )
        xids = CounterMetricFamily(
            "gpupool_gpu_xid_errors", "XID events seen since the agent started.", labels=GPU_LABELS
        )
        ecc = CounterMetricFamily(
            "gpupool_gpu_ecc_errors",
            "Uncorrected ECC errors since the last driver reload (volatile).",
            labels=GPU_LABELS,
        )
        info = GaugeMetricFamily(
            "gpupool_gpu_info",
            "Always 1; the GPU's identity and driver.",
            labels=(*GPU_LABELS, "driver_version", "backend"),
        )
        pod_util = GaugeMetricFamily(
            "gpupool_pod_gpu_utilization_percent",
            "Mean latest utilization of the pod's GPUs on this node (percent).",
            labels=POD_LABELS,
        )
        pod_memory = GaugeMetricFamily(
            "gpupool_pod_gpu_memory_used_bytes",
            "Memory used on the pod's GPUs on this node (bytes).",
            labels=POD_LABELS,
        )
        pod_power = GaugeMetricFamily(
            "gpupool_pod_gpu_power_watts",
            "Power drawn by the pod's GPUs on this node (watts).",
            labels=POD_LABELS,
        )
        pod_gpus = GaugeMetricFamily(
            "gpupool_pod_gpus", "GPUs the pod holds on this node.", labels=POD_LABELS
        )
        reporting = GaugeMetricFamily(
            "gpupool_agent_reporting",
            "1 while the GPU backend samples, 0 when it is unavailable (no driver).",
            labels=("Hostname", "backend"),
        )
        samples = CounterMetricFamily(
            "gpupool_agent_samples", "Samples of all GPUs taken.", labels=("Hostname",)
        )
        published = CounterMetricFamily(
            "gpupool_agent_publishes", "GPUNode status writes that succeeded.", labels=("Hostname",)
        )
        errors = CounterMetricFamily(
            "gpupool_agent_publish_errors",
            "GPUNode API calls that failed (each one backs off).",
            labels=("Hostname",),
        )
        duration = GaugeMetricFamily(
            "gpupool_agent_last_publish_age_seconds",
            "Seconds since the GPUNode status was last written.",
            labels=("Hostname",),
        )

        for agent in self.agents():
            view = agent.view
            node = view.node
            reporting.add_metric([node, view.backend], 1.0 if view.reporting else 0.0)
            samples.add_metric([node], agent.samples_total)
            if agent.publisher is not None:
                published.add_metric([node], agent.publisher.published_total)
                errors.add_metric([node], agent.publisher.errors_total)
            if agent.last_published is not None:
                age = agent.publish_age()
                duration.add_metric([node], age)
            pods: dict[tuple[str, str, str], _PodTotals] = {}
            for gpu in view.gpus:
                labels = _gpu_labels(node, gpu)
                device = gpu.device
                gauges["gpupool_gpu_utilization_percent"].add_metric(labels, device.utilization)
                for window, attr in WINDOWS:
                    windowed.add_metric([*labels, window], float(getattr(device, attr)))
                if gpu.memory_used_bytes is not None:
                    gauges["gpupool_gpu_memory_used_bytes"].add_metric(
                        labels, gpu.memory_used_bytes
                    )
                if gpu.memory_total_bytes is not None:
                    gauges["gpupool_gpu_memory_total_bytes"].add_metric(
                        labels, gpu.memory_total_bytes
                    )
                if device.power_w is not None:
                    gauges["gpupool_gpu_power_watts"].add_metric(labels, device.power_w)
                if device.temperature_c is not None:
                    gauges["gpupool_gpu_temperature_celsius"].add_metric(
                        labels, device.temperature_c
                    )
                gauges["gpupool_gpu_healthy"].add_metric(labels, 1.0 if device.healthy else 0.0)
                gauges["gpupool_gpu_idle_seconds"].add_metric(labels, device.idle_seconds)
                gauges["gpupool_gpu_last_xid"].add_metric(labels, gpu.last_xid)
                xids.add_metric(labels, gpu.xid_total)
                if gpu.ecc_supported:
                    ecc.add_metric(labels, device.ecc_errors)
                info.add_metric([*labels, view.driver_version, view.backend], 1.0)
                if device.pod is not None:
                    key = (device.pod.namespace, device.pod.name, device.pod.container)
                    totals = pods.setdefault(key, _PodTotals())
                    totals.gpus += 1
                    totals.utilization += device.utilization
                    totals.memory_used_bytes += gpu.memory_used_bytes or 0
                    totals.power_w += device.power_w or 0.0
            for (namespace, pod, container), totals in pods.items():
                labels = [node, namespace, pod, container]
                pod_util.add_metric(labels, totals.utilization / totals.gpus)
                pod_memory.add_metric(labels, totals.memory_used_bytes)
                pod_power.add_metric(labels, totals.power_w)
                pod_gpus.add_metric(labels, totals.gpus)

        yield from gauges.values()
        yield from (windowed, xids, ecc, info, pod_util, pod_memory, pod_power, pod_gpus)
        yield from (reporting, samples, published, errors, duration)


def make_registry(agents: Callable[[], Sequence[NodeAgent]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agents))
    ProcessCollector(registry=registry)
    return registry


class MetricsServer:
    """/metrics on its own thread (prometheus_client's WSGI server)."""

    def __init__(self, agents: Callable[[], Sequence[NodeAgent]], address: str, port: int) -> None:
        self.registry = make_registry(agents)
        self.address = address
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    def start(self) -> None:
        result: Any = start_http_server(self.port, self.address, registry=self.registry)
        self._server, self._thread = result
        log.info("metrics on http://%s:%d/metrics", self.address, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
