"""When to write GPUNode status (pure), and how long to back off after a failure.

`PublishPolicy.decide` is pure: the status last written, the one just built and
the seconds since the last write in, a decision out. A GPU turning unhealthy or
the node starting/stopping to report is written at once; other changes wait for
the publish interval and are written only when they matter to the scheduler
(utilization moved, memory moved, a pod came or went, a pod reported a
checkpoint); a heartbeat keeps
lastUpdate fresh so a stale GPUNode means a dead agent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gpupool.agent.status import GPUDevice, GPUNodeStatus


@dataclass(frozen=True)
class Decision:
    publish: bool
    reason: str = ""
    urgent: bool = False
    """Written now, without waiting for the publish interval."""


@dataclass(frozen=True)
class PublishPolicy:
    interval: float = 10.0
    heartbeat: float = 60.0
    utilization_points: float = 5.0
    memory_fraction: float = 0.05

    def decide(self, last: GPUNodeStatus | None, new: GPUNodeStatus, since_last: float) -> Decision:
        if last is None:
            return Decision(True, "first status", urgent=True)
        if last.reporting != new.reporting:
            return Decision(True, "reporting changed", urgent=True)
        before = {gpu.index: gpu for gpu in last.gpus}
        now = {gpu.index: gpu for gpu in new.gpus}
        if before.keys() != now.keys():
            return Decision(True, "GPU set changed", urgent=True)
        for index, gpu in now.items():
            if before[index].healthy and not gpu.healthy:
                return Decision(True, f"GPU {index} unhealthy: {gpu.health_reason}", urgent=True)
        if since_last < self.interval:
            return Decision(False)
        reason = self._material_change(last, new, before, now)
        if reason:
            return Decision(True, reason)
        if since_last >= self.heartbeat:
            return Decision(True, "heartbeat")
        return Decision(False)

    def _material_change(
        self,
        last: GPUNodeStatus,
        new: GPUNodeStatus,
        before: dict[int, GPUDevice],
        now: dict[int, GPUDevice],
    ) -> str:
        if last.message != new.message or last.topology != new.topology:
            return "node changed"
        if last.checkpoints != new.checkpoints:
            return "a pod reported a checkpoint"
        for index, gpu in now.items():
            old = before[index]
            if (old.healthy, old.health_reason, old.uuid) != (
                gpu.healthy,
                gpu.health_reason,
                gpu.uuid,
            ):
                return f"GPU {index} health changed"
            if old.pod != gpu.pod:
                return f"GPU {index} pod changed"
            if (
                abs(old.utilization - gpu.utilization) > self.utilization_points
                or abs(old.utilization_1m - gpu.utilization_1m) > self.utilization_points
            ):
                return f"GPU {index} utilization moved"
            total = gpu.memory_total_mib or old.memory_total_mib
            if total and abs(old.memory_used_mib - gpu.memory_used_mib) > (
                self.memory_fraction * total
            ):
                return f"GPU {index} memory moved"
            if old.ecc_errors != gpu.ecc_errors:
                return f"GPU {index} ECC errors"
        return ""


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 60.0

    def delay(self, failures: int) -> float:
        """Exponential with full jitter; failures >= 1."""
        ceiling = min(self.maximum, self.initial * 2 ** min(failures - 1, 16))
        return random.uniform(ceiling / 2, ceiling)
