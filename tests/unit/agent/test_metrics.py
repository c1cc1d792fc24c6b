"""Prometheus exposition: dcgm-style names and labels, pods' series vanish with them."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gpupool.agent.fake import FakeBackend, FakeConfig
from gpupool.agent.metrics import MetricsServer, make_registry
from gpupool.agent.node import NodeAgent
from gpupool.agent.nvml import NvmlBackend
from gpupool.agent.nvml_standin import StandInNVML
from gpupool.agent.status import PodRef

POD = PodRef(namespace="team-a", name="train-0", container="trainer")


def scrape_text(agents: list[NodeAgent]) -> str:
    return generate_latest(make_registry(lambda: agents)).decode()


def samples(text: str) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def one(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matches = [s for s in found.get(name, []) if labels.items() <= s.labels.items()]
    assert len(matches) == 1, (name, labels, found.get(name))
    return matches[0].value


def nvml_agent() -> tuple[NodeAgent, StandInNVML]:
    standin = StandInNVML.with_gpus(2)
    standin.devices[0].utilization = 80
    standin.devices[0].memory_used = 2 * 1024**3
    standin.devices[0].power_mw = 250_000
    standin.devices[0].temperature = 66
    standin.devices[1].unsupported = {"nvmlDeviceGetPowerUsage", "nvmlDeviceGetTotalEccErrors"}
    agent = NodeAgent("gpu-node-1", NvmlBackend(standin))
    return agent, standin


def test_gpu_series_carry_dcgm_style_labels() -> None:
    agent, standin = nvml_agent()
    standin.inject_xid(0, 13)
    agent.absorb(agent.poll(0.0), {standin.devices[0].uuid: POD}, 0.0)
    found = samples(scrape_text([agent]))
    gpu0 = {"gpu": "0", "Hostname": "gpu-node-1", "pod": "train-0"}
    assert one(found, "gpupool_gpu_utilization_percent", **gpu0) == 80
    assert one(found, "gpupool_gpu_memory_used_bytes", **gpu0) == 2 * 1024**3
    assert one(found, "gpupool_gpu_memory_total_bytes", **gpu0) == 80 * 1024**3
    assert one(found, "gpupool_gpu_power_watts", **gpu0) == 250
    assert one(found, "gpupool_gpu_temperature_celsius", **gpu0) == 66
    assert one(found, "gpupool_gpu_healthy", **gpu0) == 1
    assert one(found, "gpupool_gpu_idle_seconds", **gpu0) == 0
    assert one(found, "gpupool_gpu_xid_errors_total", **gpu0) == 1
    assert one(found, "gpupool_gpu_last_xid", **gpu0) == 13
    assert one(found, "gpupool_gpu_ecc_errors_total", **gpu0) == 0
    assert one(found, "gpupool_gpu_utilization_mean_percent", window="5m", **gpu0) == 80
    labels = next(iter(found["gpupool_gpu_utilization_percent"])).labels
    assert set(labels) == {"gpu", "uuid", "modelName", "Hostname", "namespace", "pod", "container"}
    assert one(found, "gpupool_gpu_info", gpu="0", driver_version="550.54.15") == 1
    # GPU 1: no pod (empty labels, like dcgm-exporter), unsupported fields left out.
    assert one(found, "gpupool_gpu_utilization_percent", gpu="1", pod="", namespace="") == 0
    assert not [s for s in found["gpupool_gpu_power_watts"] if s.labels["gpu"] == "1"]
    assert not [s for s in found["gpupool_gpu_ecc_errors_total"] if s.labels["gpu"] == "1"]
    # Per pod.
    pod = {"namespace": "team-a", "pod": "train-0", "container": "trainer"}
    assert one(found, "gpupool_pod_gpu_utilization_percent", **pod) == 80
    assert one(found, "gpupool_pod_gpus", **pod) == 1
    assert one(found, "gpupool_pod_gpu_memory_used_bytes", **pod) == 2 * 1024**3
    assert one(found, "gpupool_pod_gpu_power_watts", **pod) == 250
    # The agent itself.
    assert one(found, "gpupool_agent_samples_total", Hostname="gpu-node-1") == 1
    assert one(found, "gpupool_agent_reporting", Hostname="gpu-node-1", backend="nvml") == 1
    assert "process_resident_memory_bytes" in found


def test_a_pods_series_disappear_when_the_pod_goes() -> None:
    agent, standin = nvml_agent()
    agent.absorb(agent.poll(0.0), {standin.devices[0].uuid: POD}, 0.0)
    assert "train-0" in scrape_text([agent])
    agent.absorb(agent.poll(1.0), {}, 1.0)
    text = scrape_text([agent])
    assert "train-0" not in text
    assert "gpupool_pod_gpus" not in {
        s.name for f in text_string_to_metric_families(text) for s in f.samples
    }


def test_not_reporting_node_has_no_gpu_series() -> None:
    agent = NodeAgent("n0", NvmlBackend(StandInNVML([])))
    agent.absorb(agent.poll(0.0), {}, 0.0)
    found = samples(scrape_text([agent]))
    assert one(found, "gpupool_agent_reporting", Hostname="n0") == 0
    assert "gpupool_gpu_utilization_percent" not in found


def test_many_fake_nodes_in_one_registry() -> None:
    agents = [NodeAgent(f"n{i}", FakeBackend(f"n{i}", FakeConfig(gpus=8))) for i in range(3)]
    for agent in agents:
        agent.absorb(agent.poll(0.0), {}, 0.0)
    found = samples(scrape_text(agents))
    assert len(found["gpupool_gpu_utilization_percent"]) == 24
    assert {s.labels["Hostname"] for s in found["gpupool_gpu_healthy"]} == {"n0", "n1", "n2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_http_endpoint() -> None:
    agent, _ = nvml_agent()
    agent.absorb(agent.poll(0.0), {}, 0.0)
    port = free_port()
    server = MetricsServer(lambda: [agent], "127.0.0.1", port)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.stop()
    assert "gpupool_gpu_utilization_percent{" in body
