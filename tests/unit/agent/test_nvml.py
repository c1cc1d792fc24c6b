"""The real NVML backend against the stand-in pynvml module (same names and errors)."""

from __future__ import annotations

import sys

import pynvml
import pytest

from gpupool.agent import nvml_standin
from gpupool.agent.backend import BackendUnavailable
from gpupool.agent.nvml import NvmlBackend
from gpupool.agent.nvml_standin import ProcessInfo, StandInNVML


@pytest.fixture
def standin() -> StandInNVML:
    return StandInNVML.with_gpus(4)


@pytest.fixture
def backend(standin: StandInNVML) -> NvmlBackend:
    backend = NvmlBackend(standin)
    backend.init()
    return backend


def test_every_field_of_every_gpu(standin: StandInNVML, backend: NvmlBackend) -> None:
    device = standin.devices[2]
    device.utilization = 73
    device.memory_used = 10 * 1024**3
    device.temperature = 61
    device.power_mw = 312_500
    device.processes = [ProcessInfo(pid=4242, usedGpuMemory=123)]
    samples = backend.sample(0.0)
    assert [s.index for s in samples] == [0, 1, 2, 3]
    sample = samples[2]
    assert sample.uuid == device.uuid
    assert sample.product == "NVIDIA A100-SXM4-80GB"
    assert sample.utilization == 73.0
    assert sample.memory_used_bytes == 10 * 1024**3
    assert sample.memory_total_bytes == 80 * 1024**3
    assert sample.temperature_c == 61.0
    assert sample.power_w == 312.5
    assert sample.ecc_errors == 0
    assert [(p.pid, p.used_memory_bytes) for p in sample.processes] == [(4242, 123)]
    assert sample.healthy
    assert backend.driver_version == "550.54.15"


def test_a_lost_gpu_is_unhealthy_and_the_others_keep_reporting(
    standin: StandInNVML, backend: NvmlBackend
) -> None:
    standin.devices[1].lost = True
    standin.devices[0].utilization = 50
    samples = backend.sample(0.0)
    assert not samples[1].healthy
    assert samples[1].health_reason == "GPU is lost"
    assert samples[1].utilization is None
    assert samples[0].healthy and samples[0].utilization == 50.0
    assert all(s.healthy for s in samples[2:])
    # Lost stays lost: it is not queried again even if the driver answers.
    standin.devices[1].lost = False
    calls = standin.calls
    assert not backend.sample(1.0)[1].healthy
    # One event poll, then six queries for each of the three live GPUs.
    assert standin.calls - calls == 1 + 3 * 6


def test_an_unsupported_field_is_omitted_and_not_asked_again(
    standin: StandInNVML, backend: NvmlBackend
) -> None:
    standin.devices[0].unsupported = {"nvmlDeviceGetPowerUsage", "nvmlDeviceGetTotalEccErrors"}
    first = backend.sample(0.0)[0]
    assert first.power_w is None and first.ecc_errors is None
    assert first.healthy and first.temperature_c == 40.0
    calls = standin.calls
    backend.sample(1.0)
    assert standin.calls - calls == 1 + 4 * 6 - 2


def test_other_field_errors_are_omitted(standin: StandInNVML, backend: NvmlBackend) -> None:
    def denied(handle: object, sensor: int) -> int:
        raise nvml_standin.NVMLError_NoPermission()

    standin.nvmlDeviceGetTemperature = denied
    sample = backend.sample(0.0)[0]
    assert sample.temperature_c is None and sample.healthy


def test_critical_xid_marks_unhealthy_for_good(standin: StandInNVML, backend: NvmlBackend) -> None:
    standin.inject_xid(3, 79)
    samples = backend.sample(0.0)
    assert samples[3].xids == [79]
    assert (samples[3].healthy, samples[3].health_reason) == (False, "XID 79")
    assert samples[3].utilization == 0.0  # still sampled: an XID does not make it silent
    later = backend.sample(1.0)[3]
    assert later.xids == [] and not later.healthy


def test_application_xid_is_counted_but_not_a_fault(
    standin: StandInNVML, backend: NvmlBackend
) -> None:
    standin.inject_xid(0, 13)
    standin.inject_xid(0, 43)
    sample = backend.sample(0.0)[0]
    assert sample.xids == [13, 43]
    assert sample.healthy


def test_double_bit_ecc_event_and_ecc_counter(standin: StandInNVML, backend: NvmlBackend) -> None:
    standin.events.append(
        nvml_standin.EventData(standin.devices[1], nvml_standin.nvmlEventTypeDoubleBitEccError, 0)
    )
    standin.devices[2].ecc_uncorrected = 2
    samples = backend.sample(0.0)
    assert samples[1].health_reason == "double-bit ECC error"
    assert (samples[2].healthy, samples[2].ecc_errors) == (False, 2)
    assert "uncorrected ECC" in samples[2].health_reason


@pytest.mark.parametrize(
    "error", [nvml_standin.NVMLError_LibraryNotFound, nvml_standin.NVMLError_DriverNotLoaded]
)
def test_no_driver_is_backend_unavailable(error: type[nvml_standin.NVMLError]) -> None:
    backend = NvmlBackend(StandInNVML.with_gpus(1, init_error=error))
    with pytest.raises(BackendUnavailable, match="NVML init failed"):
        backend.init()


def test_no_gpu_visible_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match="no GPU"):
        NvmlBackend(StandInNVML([])).init()


def test_library_going_away_mid_run_is_backend_unavailable(
    standin: StandInNVML, backend: NvmlBackend
) -> None:
    standin.nvmlShutdown()
    with pytest.raises(BackendUnavailable, match="went away"):
        backend.sample(0.0)


def test_a_gpu_that_cannot_be_opened_is_reported_unhealthy() -> None:
    standin = StandInNVML.with_gpus(2)
    standin.devices[1].lost = True
    backend = NvmlBackend(standin)
    backend.init()
    samples = backend.sample(0.0)
    assert samples[0].healthy
    assert not samples[1].healthy and samples[1].health_reason.startswith("cannot open")


def test_gpus_without_event_support_still_sample(standin: StandInNVML) -> None:
    for device in standin.devices:
        device.supported_events = 0
    backend = NvmlBackend(standin)
    backend.init()
    standin.inject_xid(0, 79)  # not registered: never delivered
    assert backend.sample(0.0)[0].healthy


def test_shutdown_frees_events_and_the_library(standin: StandInNVML) -> None:
    backend = NvmlBackend(standin)
    backend.init()
    events = backend._events
    backend.shutdown()
    assert events.freed and not standin.initialized
    with pytest.raises(BackendUnavailable):
        backend.sample(0.0)


def test_pynvml_is_found_through_sys_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    standin = StandInNVML.with_gpus(2)
    monkeypatch.setitem(sys.modules, "pynvml", standin)
    backend = NvmlBackend()
    backend.init()
    assert len(backend.sample(0.0)) == 2


def test_the_real_module_without_a_driver_is_unavailable() -> None:
    backend = NvmlBackend(pynvml)
    try:
        backend.init()
    except BackendUnavailable as exc:
        assert "NVML init failed" in str(exc)
    else:  # a machine with a GPU: the real thing samples
        assert backend.sample(0.0)
        backend.shutdown()


def test_standin_mirrors_the_real_pynvml() -> None:
    """Every name the backend uses exists in pynvml with the same value or kind."""
    for name in dir(StandInNVML):
        if name.startswith("nvml") and callable(getattr(StandInNVML, name)):
            assert callable(getattr(pynvml, name)), name
        elif name.startswith(("NVML_", "nvmlEventType")):
            assert getattr(StandInNVML, name) == getattr(pynvml, name), name
        elif name.startswith("NVMLError_"):
            real = getattr(pynvml, name)
            assert issubclass(real, pynvml.NVMLError), name
            assert real().value == getattr(StandInNVML, name).code, name
            assert str(real()) == str(getattr(StandInNVML, name)()), name
    assert isinstance(nvml_standin.NVMLError(15), nvml_standin.NVMLError_GpuIsLost)
    assert isinstance(pynvml.NVMLError(15), pynvml.NVMLError_GpuIsLost)
