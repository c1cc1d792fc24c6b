"""A stand-in for the `pynvml` module: same function names, constants and errors.

The real backend (`nvml.NvmlBackend`) is exercised against this in the unit tests
and the overhead benchmark, on machines without a GPU. Errors mirror pynvml's
hierarchy: one `NVMLError_<Name>` subclass per NVML return code, and
`NVMLError(code)` builds the matching subclass. Devices are scripted: utilization
and memory are plain attributes a test changes between samples, and faults
(`lost`, fields in `unsupported`, queued XID events) are injected the same way.
The agent itself never imports this module.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

NVML_TEMPERATURE_GPU = 0
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
nvmlEventTypeSingleBitEccError = 0x1
nvmlEventTypeDoubleBitEccError = 0x2
nvmlEventTypeXidCriticalError = 0x8

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999


class NVMLError(Exception):
    """Base of every NVML error; `NVMLError(code)` returns the code's subclass."""

    _by_value: ClassVar[dict[int, type[NVMLError]]] = {}
    code: ClassVar[int] = NVML_ERROR_UNKNOWN
    text: ClassVar[str] = "Unknown Error"
    """What str() of the real pynvml error says."""
    value: int

    def __new__(cls, value: int | None = None) -> Self:
        target: type[NVMLError] = cls
        if cls is NVMLError and value is not None:
            target = NVMLError._by_value.get(value, NVMLError)
        instance = Exception.__new__(target)
        instance.value = target.code if value is None else value
        return instance  # type: ignore[return-value]

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        NVMLError._by_value[cls.code] = cls

    def __str__(self) -> str:
        return self.text


# pynvml spells its error classes NVMLError_<Name>; the stand-in keeps the names.
class NVMLError_Uninitialized(NVMLError):
    code = NVML_ERROR_UNINITIALIZED
    text = "Uninitialized"


class NVMLError_NotSupported(NVMLError):
    code = NVML_ERROR_NOT_SUPPORTED
    text = "Not Supported"


class NVMLError_NoPermission(NVMLError):
    code = NVML_ERROR_NO_PERMISSION
    text = "Insufficient Permissions"


class NVMLError_DriverNotLoaded(NVMLError):
    code = NVML_ERROR_DRIVER_NOT_LOADED
    text = "Driver Not Loaded"


class NVMLError_Timeout(NVMLError):
    code = NVML_ERROR_TIMEOUT
    text = "Timeout"


class NVMLError_LibraryNotFound(NVMLError):
    code = NVML_ERROR_LIBRARY_NOT_FOUND
    text = "NVML Shared Library Not Found"


class NVMLError_GpuIsLost(NVMLError):
    code = NVML_ERROR_GPU_IS_LOST
    text = "GPU is lost"


class NVMLError_Unknown(NVMLError):
    code = NVML_ERROR_UNKNOWN
    text = "Unknown Error"


# The module-like class below re-exports the error classes as attributes, which
# shadows their names inside its body; annotations there use this alias.
_Error = NVMLError


@dataclass
class Utilization:
    gpu: int
    memory: int


@dataclass
class Memory:
    total: int
    free: int
    used: int


@dataclass
class ProcessInfo:
    pid: int
    usedGpuMemory: int | None


@dataclass
class EventData:
    device: StandInDevice
    eventType: int
    eventData: int


@dataclass(eq=False)
class StandInDevice:
    """One scripted GPU; change the attributes between samples."""

    uuid: str
    name: str = "NVIDIA A100-SXM4-80GB"
    memory_total: int = 80 * 1024**3
    memory_used: int = 0
    utilization: int = 0
    temperature: int = 40
    power_mw: int = 90_000
    ecc_uncorrected: int = 0
    processes: list[ProcessInfo] = field(default_factory=list)
    lost: bool = False
    unsupported: set[str] = field(default_factory=set)
    """pynvml function names that raise NVMLError_NotSupported on this device."""
    supported_events: int = (
        nvmlEventTypeXidCriticalError
        | nvmlEventTypeDoubleBitEccError
        | nvmlEventTypeSingleBitEccError
    )


@dataclass(eq=False)
class EventSet:
    devices: list[StandInDevice] = field(default_factory=list)
    freed: bool = False


class StandInNVML:
    """Module-like object: put it in sys.modules["pynvml"] or pass it to NvmlBackend."""

    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_VOLATILE_ECC = NVML_VOLATILE_ECC
    NVML_AGGREGATE_ECC = NVML_AGGREGATE_ECC
    NVML_MEMORY_ERROR_TYPE_CORRECTED = NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    nvmlEventTypeSingleBitEccError = nvmlEventTypeSingleBitEccError
    nvmlEventTypeDoubleBitEccError = nvmlEventTypeDoubleBitEccError
    nvmlEventTypeXidCriticalError = nvmlEventTypeXidCriticalError
    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_Timeout = NVMLError_Timeout
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost
    NVMLError_Unknown = NVMLError_Unknown

    def __init__(
        self,
        devices: list[StandInDevice] | None = None,
        *,
        driver_version: str = "550.54.15",
        init_error: type[_Error] | None = None,
    ) -> None:
        self.devices = devices if devices is not None else []
        self.driver_version = driver_version
        self.init_error = init_error
        """Raised by nvmlInit (e.g. NVMLError_LibraryNotFound: no driver on the node)."""
        self.initialized = False
        self.events: deque[EventData] = deque()
        self.calls = 0

    @classmethod
    def with_gpus(cls, count: int, **kwargs: Any) -> StandInNVML:
        devices = [
            StandInDevice(uuid=f"GPU-{i:08d}-0000-0000-0000-000000000000") for i in range(count)
        ]
        return cls(devices, **kwargs)

    def inject_xid(self, index: int, xid: int) -> None:
        self.events.append(EventData(self.devices[index], nvmlEventTypeXidCriticalError, xid))

    def _device(self, handle: StandInDevice, function: str) -> StandInDevice:
        self.calls += 1
        if not self.initialized:
            raise NVMLError_Uninitialized()
        if handle.lost:
            raise NVMLError_GpuIsLost()
        if function in handle.unsupported:
            raise NVMLError_NotSupported()
        return handle

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error()
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        if not self.initialized:
            raise NVMLError_Uninitialized()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> StandInDevice:
        return self._device(self.devices[index], "nvmlDeviceGetHandleByIndex")

    def nvmlDeviceGetUUID(self, handle: StandInDevice) -> str:
        return self._device(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, handle: StandInDevice) -> str:
        return self._device(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUtilizationRates(self, handle: StandInDevice) -> Utilization:
        device = self._device(handle, "nvmlDeviceGetUtilizationRates")
        return Utilization(gpu=device.utilization, memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: StandInDevice) -> Memory:
        device = self._device(handle, "nvmlDeviceGetMemoryInfo")
        free = device.memory_total - device.memory_used
        return Memory(total=device.memory_total, free=free, used=device.memory_used)

    def nvmlDeviceGetTemperature(self, handle: StandInDevice, sensor: int) -> int:
        return self._device(handle, "nvmlDeviceGetTemperature").temperature

    def nvmlDeviceGetPowerUsage(self, handle: StandInDevice) -> int:
        return self._device(handle, "nvmlDeviceGetPowerUsage").power_mw

    def nvmlDeviceGetTotalEccErrors(
        self, handle: StandInDevice, error_type: int, counter_type: int
    ) -> int:
        return self._device(handle, "nvmlDeviceGetTotalEccErrors").ecc_uncorrected

    def nvmlDeviceGetComputeRunningProcesses(self, handle: StandInDevice) -> list[ProcessInfo]:
        return list(self._device(handle, "nvmlDeviceGetComputeRunningProcesses").processes)

    def nvmlDeviceGetSupportedEventTypes(self, handle: StandInDevice) -> int:
        return self._device(handle, "nvmlDeviceGetSupportedEventTypes").supported_events

    def nvmlEventSetCreate(self) -> EventSet:
        if not self.initialized:
            raise NVMLError_Uninitialized()
        return EventSet()

    def nvmlDeviceRegisterEvents(
        self, handle: StandInDevice, event_types: int, event_set: EventSet
    ) -> None:
        event_set.devices.append(self._device(handle, "nvmlDeviceRegisterEvents"))

    def nvmlEventSetWait_v2(self, event_set: EventSet, timeout_ms: int) -> EventData:
        self.calls += 1
        while self.events:
            event = self.events.popleft()
            if event.device in event_set.devices:
                return event
        raise NVMLError_Timeout()

    def nvmlEventSetFree(self, event_set: EventSet) -> None:
        event_set.freed = True
