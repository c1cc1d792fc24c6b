"""Team usage: decayed GPU-hours (the fair-share tie-break) and cumulative GPU-hours.

Decayed usage halves every `half_life_hours`. Over an interval during which a team
held `g` GPUs, it grows by the exact integral of g·2^(-(t_end - s)/h) ds, so the
figure does not depend on how often it is brought up to date. It is persisted in
TeamQuota status with `usageUpdatedAt`; after a restart the interval since then is
charged at the allocation seen now (the pods kept running while the operator was away).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from gpupool.api import TeamQuotaStatus

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class TeamUsage:
    decayed: float = 0.0
    updated_at: datetime | None = None
    gpu_hours_allocated: float = 0.0
    gpu_hours_used: float = 0.0

    @classmethod
    def from_status(cls, status: TeamQuotaStatus) -> TeamUsage:
        return cls(
            decayed=status.decayed_usage,
            updated_at=status.usage_updated_at,
            gpu_hours_allocated=status.gpu_hours_allocated,
            gpu_hours_used=status.gpu_hours_used,
        )


def advance(
    usage: TeamUsage,
    *,
    allocated_gpus: float,
    used_gpus: float,
    now: datetime,
    half_life_hours: float,
) -> TeamUsage:
    """Usage brought up to `now`, the team having held `allocated_gpus` since it was last.

    `used_gpus` is the allocation weighted by measured utilization (GPU-equivalents
    busy); it feeds `gpuHoursUsed`.
    """
    if usage.updated_at is None:
        return replace(usage, updated_at=now)
    hours = (now - usage.updated_at).total_seconds() / _SECONDS_PER_HOUR
    if hours <= 0:
        return usage
    decay = math.pow(0.5, hours / half_life_hours)
    gained = allocated_gpus * half_life_hours / math.log(2) * (1 - decay)
    return TeamUsage(
        decayed=usage.decayed * decay + gained,
        updated_at=now,
        gpu_hours_allocated=usage.gpu_hours_allocated + allocated_gpus * hours,
        gpu_hours_used=usage.gpu_hours_used + used_gpus * hours,
    )
