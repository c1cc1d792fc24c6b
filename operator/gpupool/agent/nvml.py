"""The real backend: every GPU through NVML (the `pynvml` module, nvidia-ml-py).

Failure is contained per GPU and per field: a GPU that is lost is reported
unhealthy while the others keep reporting; a field the device does not support
(power on some boards, ECC on consumer parts) is left out and not asked again.
Only errors that mean the whole library went away (driver unloaded, NVML not
initialized) raise BackendUnavailable, so the agent re-initializes with backoff.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from gpupool.agent.backend import BackendUnavailable, GPUProcess, GPUSample

log = logging.getLogger(__name__)

# XIDs caused by the application, not the hardware (illegal address, page fault,
# graphics exception, ...): counted, but they do not mark the GPU unhealthy. The
# same default list as NVIDIA's k8s-device-plugin.
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})

# Events drained per sample at most, so an event storm cannot stall sampling.
MAX_EVENTS_PER_SAMPLE = 64

# pynvml names one class per return code, NVMLError_<CapWords of the code>:
# NVML_ERROR_GPU_IS_LOST is NVMLError_GpuIsLost.
_LIBRARY_GONE = (
    "NVMLError_Uninitialized",
    "NVMLError_DriverNotLoaded",
    "NVMLError_LibraryNotFound",
    "NVMLError_LibRmVersionMismatch",
)


class _GPULost(Exception):
    pass


class _NeverRaised(Exception):
    """Stands in for an error class this pynvml version does not define."""


def _error(nvml: Any, name: str) -> type[BaseException]:
    found: type[BaseException] = getattr(nvml, name, _NeverRaised)
    return found


@dataclass
class _Device:
    index: int
    handle: Any
    uuid: str = ""
    product: str = ""
    memory_total: int | None = None
    fault: str = ""
    """Sticky reason this GPU is unhealthy (lost, critical XID, double-bit ECC)."""
    dead: bool = False
    """Lost or never opened: not queried any more."""
    unsupported: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    """Field errors already logged once."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend:
    """Samples every GPU through NVML. `nvml` replaces the pynvml module (tests)."""

    name = "nvml"

    def __init__(
        self, nvml: Any = None, *, application_xids: frozenset[int] = APPLICATION_XIDS
    ) -> None:
        self._injected = nvml
        self._nvml: Any = None
        self._library_gone: tuple[type[BaseException], ...] = ()
        self._lost: type[BaseException] = _NeverRaised
        self._not_supported: type[BaseException] = _NeverRaised
        self._timeout: type[BaseException] = _NeverRaised
        self._devices: list[_Device] = []
        self._events: Any = None
        self._application_xids = application_xids
        self._driver_version = ""

    @property
    def driver_version(self) -> str:
        return self._driver_version

    def _module(self) -> Any:
        if self._injected is not None:
            return self._injected
        try:
            return importlib.import_module("pynvml")
        except ImportError as exc:
            raise BackendUnavailable(f"the pynvml module is not installed: {exc}") from exc

    def init(self) -> None:
        nvml = self._module()
        self._nvml = nvml
        self._library_gone = tuple(_error(nvml, name) for name in _LIBRARY_GONE)
        self._lost = _error(nvml, "NVMLError_GpuIsLost")
        self._not_supported = _error(nvml, "NVMLError_NotSupported")
        self._timeout = _error(nvml, "NVMLError_Timeout")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise BackendUnavailable(
                f"NVML init failed ({exc}): no NVIDIA driver or libnvidia-ml visible here"
            ) from exc
        try:
            self._driver_version = _text(nvml.nvmlSystemGetDriverVersion())
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            self._shutdown_quietly()
            raise BackendUnavailable(f"NVML cannot list devices: {exc}") from exc
        if count == 0:
            self._shutdown_quietly()
            raise BackendUnavailable("NVML sees no GPU (is the container given its devices?)")
        self._devices = [self._open(index) for index in range(count)]
        self._events = self._register_events()
        log.info(
            "NVML %s: %d GPU(s): %s",
            self._driver_version,
            count,
            ", ".join(f"{d.index}={d.product or '?'}" for d in self._devices),
        )

    def _open(self, index: int) -> _Device:
        nvml = self._nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as exc:
            log.warning("GPU %d: cannot open: %s", index, exc)
            return _Device(index=index, handle=None, fault=f"cannot open: {exc}", dead=True)
        device = _Device(index=index, handle=handle)
        try:
            device.uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            device.product = _text(nvml.nvmlDeviceGetName(handle))
            device.memory_total = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
        except nvml.NVMLError as exc:
            log.warning("GPU %d: cannot identify: %s", index, exc)
            device.fault = f"cannot identify: {exc}"
            device.dead = True
        return device

    def _register_events(self) -> Any:
        nvml = self._nvml
        wanted = nvml.nvmlEventTypeXidCriticalError | nvml.nvmlEventTypeDoubleBitEccError
        try:
            events = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as exc:
            log.warning("NVML events unavailable, XIDs will not be seen: %s", exc)
            return None
        for device in self._devices:
            if device.dead:
                continue
            try:
                supported = int(nvml.nvmlDeviceGetSupportedEventTypes(device.handle))
                if supported & wanted:
                    nvml.nvmlDeviceRegisterEvents(device.handle, supported & wanted, events)
            except nvml.NVMLError as exc:
                log.info("GPU %d: no XID/ECC events (%s)", device.index, exc)
        return events

    def _drain_events(self) -> dict[int, list[int]]:
        """XIDs per GPU index since the last call; marks hardware faults sticky."""
        nvml = self._nvml
        xids: dict[int, list[int]] = {}
        if self._events is None:
            return xids
        by_uuid = {d.uuid: d for d in self._devices if d.uuid}
        for _ in range(MAX_EVENTS_PER_SAMPLE):
            try:
                event = nvml.nvmlEventSetWait_v2(self._events, 0)
            except self._timeout:
                break
            except nvml.NVMLError as exc:
                log.debug("NVML event wait: %s", exc)
                break
            # The event's device handle is a fresh ctypes pointer, so identify the
            # GPU by UUID rather than by handle identity.
            try:
                device = by_uuid.get(_text(nvml.nvmlDeviceGetUUID(event.device)))
            except nvml.NVMLError:
                device = None
            if device is None:
                log.warning("NVML event 0x%x for an unknown GPU", int(event.eventType))
                continue
            if event.eventType & nvml.nvmlEventTypeXidCriticalError:
                xid = int(event.eventData)
                xids.setdefault(device.index, []).append(xid)
                if xid not in self._application_xids and not device.fault:
                    device.fault = f"XID {xid}"
                    log.error(
                        "GPU %d (%s): XID %d, marked unhealthy", device.index, device.uuid, xid
                    )
            elif event.eventType & nvml.nvmlEventTypeDoubleBitEccError and not device.fault:
                device.fault = "double-bit ECC error"
                log.error("GPU %d (%s): double-bit ECC error", device.index, device.uuid)
        return xids

    def _read(self, device: _Device, function: str, *args: Any) -> Any:
        """One NVML query; None when unsupported or failing (logged once per field)."""
        if function in device.unsupported:
            return None
        nvml = self._nvml
        try:
            return getattr(nvml, function)(device.handle, *args)
        except self._lost as exc:
            raise _GPULost from exc
        except self._library_gone as exc:
            raise BackendUnavailable(f"NVML went away: {exc}") from exc
        except self._not_supported:
            device.unsupported.add(function)
            return None
        except nvml.NVMLError as exc:
            if function not in device.reported:
                device.reported.add(function)
                log.warning("GPU %d: %s failed: %s", device.index, function, exc)
            return None

    def sample(self, now: float) -> list[GPUSample]:
        if self._nvml is None:
            raise BackendUnavailable("NVML not initialized")
        xids = self._drain_events()
        return [self._sample(device, xids.get(device.index, [])) for device in self._devices]

    def _sample(self, device: _Device, xids: list[int]) -> GPUSample:
        nvml = self._nvml
        sample = GPUSample(
            index=device.index,
            uuid=device.uuid,
            product=device.product,
            memory_total_bytes=device.memory_total,
            xids=xids,
        )
        if not device.dead:
            try:
                self._fill(device, sample, nvml)
            except _GPULost:
                device.fault = "GPU is lost"
                device.dead = True
                log.error("GPU %d (%s): lost, marked unhealthy", device.index, device.uuid)
        if device.fault:
            sample.healthy = False
            sample.health_reason = device.fault
        elif sample.ecc_errors:
            sample.healthy = False
            sample.health_reason = f"{sample.ecc_errors} uncorrected ECC error(s)"
        return sample

    def _fill(self, device: _Device, sample: GPUSample, nvml: Any) -> None:
        rates = self._read(device, "nvmlDeviceGetUtilizationRates")
        if rates is not None:
            sample.utilization = float(rates.gpu)
        memory = self._read(device, "nvmlDeviceGetMemoryInfo")
        if memory is not None:
            sample.memory_used_bytes = int(memory.used)
            sample.memory_total_bytes = int(memory.total)
        temperature = self._read(device, "nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU)
        if temperature is not None:
            sample.temperature_c = float(temperature)
        milliwatts = self._read(device, "nvmlDeviceGetPowerUsage")
        if milliwatts is not None:
            sample.power_w = milliwatts / 1000.0
        ecc = self._read(
            device,
            "nvmlDeviceGetTotalEccErrors",
            nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nvml.NVML_VOLATILE_ECC,
        )
        if ecc is not None:
            sample.ecc_errors = int(ecc)
        processes = self._read(device, "nvmlDeviceGetComputeRunningProcesses") or []
        sample.processes = [
            GPUProcess(pid=int(p.pid), used_memory_bytes=p.usedGpuMemory) for p in processes
        ]

    def _shutdown_quietly(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            log.debug("nvmlShutdown: %s", exc)

    def shutdown(self) -> None:
        nvml = self._nvml
        if nvml is None:
            return
        if self._events is not None:
            try:
                nvml.nvmlEventSetFree(self._events)
            except nvml.NVMLError as exc:
                log.debug("nvmlEventSetFree: %s", exc)
            self._events = None
        self._shutdown_quietly()
        self._devices = []
        self._nvml = None
