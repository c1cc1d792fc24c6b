"""What a GPU backend gives the agent: one sample of every GPU per call.

Two implementations share this protocol and nothing else: `nvml.NvmlBackend`
(the real driver, through pynvml) and `fake.FakeBackend` (scripted GPUs for the
demo and the tests). The agent never knows which one it drives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gpupool.agent.status import PodRef

MIB = 1024 * 1024


class BackendUnavailable(Exception):
    """The backend cannot sample at all (no driver, no library, no devices visible)."""


@dataclass(frozen=True)
class GPUProcess:
    """A compute process on a GPU, as the driver reports it (host PID namespace)."""

    pid: int
    used_memory_bytes: int | None = None


@dataclass
class GPUSample:
    """One GPU at one instant. None means the field is not supported or not readable."""

    index: int
    uuid: str
    product: str = ""
    healthy: bool = True
    health_reason: str = ""
    utilization: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    ecc_errors: int | None = None
    xids: list[int] = field(default_factory=list)
    """XID events seen since the previous sample."""
    processes: list[GPUProcess] = field(default_factory=list)
    pod: PodRef | None = None
    """Set by a backend that knows the pod itself (the fake); else attribution decides."""


class Backend(Protocol):
    @property
    def name(self) -> str:
        """Shown in GPUNode status.backend: "nvml" or "fake"."""
        ...

    @property
    def driver_version(self) -> str: ...

    def init(self) -> None:
        """Open the device; raise BackendUnavailable with a one-line reason if it can't."""
        ...

    def sample(self, now: float) -> list[GPUSample]:
        """Every GPU once; a broken GPU comes back unhealthy, it does not raise.

        Raises BackendUnavailable when the whole backend went away (driver unloaded).
        """
        ...

    def shutdown(self) -> None: ...
