"""One node's agent state: backend lifecycle, windows, the status to publish.

Sampling and status building are synchronous and cheap, so one process can run
the fake agents of hundreds of nodes; only publishing is async. What the
Prometheus collector reads (`view`) is an immutable snapshot replaced whole after
every sample, so the exporter thread never sees a half-updated node.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from gpupool.agent.backend import MIB, Backend, BackendUnavailable, GPUSample
from gpupool.agent.checkpoints import LogCheckpoints
from gpupool.agent.config import AgentConfig
from gpupool.agent.policy import Decision
from gpupool.agent.publisher import Publisher
from gpupool.agent.status import (
    Condition,
    GPUDevice,
    GPUNodeStatus,
    PodCheckpoint,
    PodRef,
    set_condition,
    utcnow,
)
from gpupool.agent.window import UtilizationWindow

log = logging.getLogger(__name__)

REPORTING = "Reporting"
HEALTHY = "GPUsHealthy"


@dataclass(frozen=True)
class GPUView:
    """One GPU as the metrics see it: the published device plus exact byte counts."""

    device: GPUDevice
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    ecc_supported: bool
    xid_total: int
    last_xid: int


@dataclass(frozen=True)
class NodeView:
    node: str
    backend: str
    driver_version: str
    reporting: bool
    gpus: tuple[GPUView, ...] = ()


def _round(value: float) -> float:
    return round(value, 1)


class NodeAgent:
    """Samples one node's backend and keeps what the GPUNode and /metrics show."""

    def __init__(
        self,
        node_name: str,
        backend: Backend,
        *,
        config: AgentConfig | None = None,
        publisher: Publisher | None = None,
        checkpoints: LogCheckpoints | None = None,
    ) -> None:
        self.node_name = node_name
        self.backend = backend
        self.config = config or AgentConfig()
        self.publisher = publisher
        # Where the GPU pods' reported checkpoints are read (their logs); None: nowhere.
        self.checkpoints = checkpoints
        self._reported: list[PodCheckpoint] = []
        self.ready = False
        self.message = "starting"
        self._init_failures = 0
        self._init_at = float("-inf")
        self._windows: dict[int, UtilizationWindow] = {}
        self._xid_totals: dict[int, int] = {}
        self._last_xid: dict[int, int] = {}
        self._conditions: list[Condition] = []
        self._seeded = False
        self.samples_total = 0
        self.last_sample_seconds = 0.0
        self.status = GPUNodeStatus(backend=backend.name, message=self.message)
        self.view = NodeView(node_name, backend.name, "", False)
        self.last_published: GPUNodeStatus | None = None
        self.last_published_at = float("-inf")

    def poll(self, now: float) -> list[GPUSample] | None:
        """Initialize the backend when due, then sample it; None while unavailable."""
        if not self.ready:
            if now < self._init_at:
                return None
            try:
                self.backend.init()
            except BackendUnavailable as exc:
                self._unavailable(str(exc), now)
                return None
            self.ready = True
            self._init_failures = 0
            log.info("node %s: %s backend ready", self.node_name, self.backend.name)
        try:
            return self.backend.sample(now)
        except BackendUnavailable as exc:
            self.backend.shutdown()
            self.ready = False
            self._unavailable(str(exc), now)
            return None

    def _unavailable(self, reason: str, now: float) -> None:
        self._init_failures += 1
        delay = self.config.init_backoff.delay(self._init_failures)
        self._init_at = now + delay
        if reason != self.message:
            # One clear line per distinct reason, not one per retry.
            log.error(
                "node %s: GPU backend %s unavailable, node reported as not reporting "
                "(retrying with backoff): %s",
                self.node_name,
                self.backend.name,
                reason,
            )
        else:
            log.debug("node %s: still unavailable, next try in %.0fs", self.node_name, delay)
        self.message = reason

    def absorb(
        self, samples: list[GPUSample] | None, pods: dict[str, PodRef], now: float
    ) -> GPUNodeStatus:
        """Fold one sample of every GPU into the windows; rebuild status and view."""
        views: list[GPUView] = []
        if samples is not None:
            self.samples_total += 1
            self.message = f"{len(samples)} GPU(s) via {self.backend.name}"
            views = [self._fold(sample, pods, now) for sample in samples]
        if self.checkpoints is not None:
            self._reported = self.checkpoints.scan(
                view.device.pod for view in views if view.device.pod is not None
            )
        reporting = samples is not None
        self.view = NodeView(
            self.node_name,
            self.backend.name,
            self.backend.driver_version if reporting else "",
            reporting,
            tuple(views),
        )
        self.status = self._build_status([v.device for v in views], reporting)
        return self.status

    def _fold(self, sample: GPUSample, pods: dict[str, PodRef], now: float) -> GPUView:
        window = self._windows.get(sample.index)
        if window is None:
            window = self._windows[sample.index] = UtilizationWindow(self.config.active_threshold)
        if sample.utilization is not None:
            window.add(sample.utilization, now)
        stats = window.stats(now)
        if sample.xids:
            self._xid_totals[sample.index] = self._xid_totals.get(sample.index, 0) + len(
                sample.xids
            )
            self._last_xid[sample.index] = sample.xids[-1]
        device = GPUDevice(
            index=sample.index,
            uuid=sample.uuid,
            product=sample.product,
            healthy=sample.healthy,
            health_reason=sample.health_reason,
            utilization=_round(stats.utilization),
            utilization_1m=_round(stats.mean_1m),
            utilization_5m=_round(stats.mean_5m),
            utilization_15m=_round(stats.mean_15m),
            idle_seconds=_round(stats.idle_seconds),
            memory_used_mib=(sample.memory_used_bytes or 0) // MIB,
            memory_total_mib=(sample.memory_total_bytes or 0) // MIB,
            temperature_c=sample.temperature_c,
            power_w=None if sample.power_w is None else _round(sample.power_w),
            ecc_errors=sample.ecc_errors or 0,
            pod=sample.pod or pods.get(sample.uuid),
        )
        return GPUView(
            device=device,
            memory_used_bytes=sample.memory_used_bytes,
            memory_total_bytes=sample.memory_total_bytes,
            ecc_supported=sample.ecc_errors is not None,
            xid_total=self._xid_totals.get(sample.index, 0),
            last_xid=self._last_xid.get(sample.index, 0),
        )

    def _build_status(self, gpus: list[GPUDevice], reporting: bool) -> GPUNodeStatus:
        now = utcnow()
        if reporting:
            set_condition(self._conditions, REPORTING, "True", "Sampling", self.message, now=now)
            sick = [g for g in gpus if not g.healthy]
            if sick:
                detail = "; ".join(f"GPU {g.index}: {g.health_reason}" for g in sick)
                set_condition(self._conditions, HEALTHY, "False", "UnhealthyGPUs", detail, now=now)
            else:
                message = f"all {len(gpus)} GPU(s) healthy"
                set_condition(self._conditions, HEALTHY, "True", "AllHealthy", message, now=now)
        else:
            set_condition(
                self._conditions, REPORTING, "False", "BackendUnavailable", self.message, now=now
            )
            set_condition(
                self._conditions, HEALTHY, "Unknown", "NotReporting", "no GPU data", now=now
            )
        return GPUNodeStatus(
            gpu_count=len(gpus),
            healthy_gpus=sum(1 for g in gpus if g.healthy),
            allocated_gpus=sum(1 for g in gpus if g.pod is not None),
            mean_utilization=_round(sum(g.utilization_1m for g in gpus) / len(gpus))
            if gpus
            else 0.0,
            reporting=reporting,
            message=self.message,
            backend=self.backend.name,
            driver_version=self.backend.driver_version if reporting else "",
            topology=self.publisher.topology if self.publisher else None,
            gpus=gpus,
            checkpoints=list(self._reported),
            last_update=now,
            conditions=[replace(c) for c in self._conditions],
        )

    def publish_age(self) -> float:
        """Seconds since the last successful status write (monotonic clock)."""
        return max(0.0, time.monotonic() - self.last_published_at)

    def decide(self, now: float) -> Decision:
        return self.config.policy.decide(
            self.last_published, self.status, now - self.last_published_at
        )

    def _seed_conditions(self) -> None:
        """Carry conditions over from the GPUNode found at start (keeps transition times)."""
        self._seeded = True
        existing = (self.publisher.existing_status if self.publisher else None) or {}
        ours = {c.type for c in self._conditions}
        for raw in existing.get("conditions") or []:
            condition = Condition.from_k8s(raw)
            if condition.type not in ours:
                self._conditions.append(condition)
                continue
            mine = next(c for c in self._conditions if c.type == condition.type)
            if mine.status == condition.status:
                mine.last_transition_time = condition.last_transition_time

    async def publish(self, now: float) -> bool:
        """Write the current status; False (and backoff) on an API error."""
        publisher = self.publisher
        if publisher is None or publisher.blocked(now):
            return False
        if not await publisher.prepare(now):
            return False
        if not self._seeded:
            self._seed_conditions()
        status = self._build_status(list(self.status.gpus), self.status.reporting)
        if not await publisher.publish(status.to_k8s(), now):
            return False
        self.status = status
        self.last_published = status
        self.last_published_at = now
        return True
