"""The agent's knobs, with the defaults the DaemonSet runs with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gpupool.agent.policy import Backoff, PublishPolicy

POD_RESOURCES_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
POD_LOGS = Path("/var/log/pods")
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class AgentConfig:
    interval: float = 1.0
    """Seconds between two samples of every GPU."""
    active_threshold: float = 1.0
    """Utilization percent above which a GPU counts as active (idle seconds reset)."""
    policy: PublishPolicy = field(default_factory=PublishPolicy)
    init_backoff: Backoff = field(default_factory=lambda: Backoff(initial=5.0, maximum=300.0))
    """Between attempts to initialize NVML when it is not available."""
    api_backoff: Backoff = field(default_factory=Backoff)
    topology_refresh: float = 300.0
    """Seconds between re-reads of the Node's topology labels."""
    attribution_refresh: float = 5.0
    """Seconds between PodResources List() calls."""
    pod_resources_socket: Path = POD_RESOURCES_SOCKET
    resource_names: tuple[str, ...] = (GPU_RESOURCE,)
    proc_root: Path = Path("/proc")
    pod_logs: Path | None = POD_LOGS
    """The containers' logs (hostPath /var/log/pods), where running pods' checkpoint
    reports are read; None: not read."""
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 9400
    """0 turns the Prometheus endpoint off."""
