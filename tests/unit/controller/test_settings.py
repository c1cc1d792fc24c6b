"""The operator's settings from its environment (what the Deployment sets)."""

from __future__ import annotations

from gpupool.controller.settings import OperatorConfig


def test_defaults_without_environment() -> None:
    config = OperatorConfig.from_env({})
    assert config == OperatorConfig(priority=config.priority, instance=config.instance)
    assert config.peering_name != ""


def test_every_tunable_is_read_with_its_type() -> None:
    config = OperatorConfig.from_env(
        {
            "GPUPOOL_STANDALONE": "true",
            "GPUPOOL_DEBOUNCE_SECONDS": "0.5",
            "GPUPOOL_CYCLE_YIELD_FACTOR": "2",
            "GPUPOOL_API_CONCURRENCY": "32",
            "GPUPOOL_MIN_RUNTIME_SECONDS": "0",
            "GPUPOOL_MAX_PREEMPTORS_PER_CYCLE": "100",
            "GPUPOOL_METRICS_PORT": "8080",
            "GPUPOOL_METRICS_ADDR": "127.0.0.1",
            "GPUPOOL_ADMITTED_STATUS_DELAY_SECONDS": "0",
            "GPUPOOL_NODE_SELECTOR": "pool=a",
        }
    )
    assert config.peering_name == ""
    assert (config.debounce_seconds, config.cycle_yield_factor) == (0.5, 2.0)
    assert (config.api_concurrency, config.max_preemptors_per_cycle) == (32, 100)
    assert (config.min_runtime_seconds, config.admitted_status_delay_seconds) == (0.0, 0.0)
    assert (config.metrics_port, config.metrics_address) == (8080, "127.0.0.1")
    assert config.node_selector == "pool=a"
