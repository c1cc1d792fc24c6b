"""The operator's Prometheus metrics: the seam the scheduler-metrics work builds on.

A registry of its own, so importing the module twice (tests, the in-process bench)
never collides with another component's metrics in the default registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


@dataclass(frozen=True)
class Metrics:
    cycles: Counter = field(
        default_factory=lambda: _counter("gpupool_scheduling_cycles", "Scheduling cycles run.")
    )
    cycle_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_scheduling_cycle_seconds",
            "Duration of one scheduling cycle (observe, plan, record, dispatch).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=REGISTRY,
        )
    )
    admissions: Counter = field(
        default_factory=lambda: _counter("gpupool_admissions", "Jobs admitted (or resumed).")
    )
    admission_failures: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_admission_failures", "Admissions the API server refused."
        )
    )
    admission_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_admission_seconds",
            "Time to create one admission's Service and pods.",
            registry=REGISTRY,
        )
    )
    preemptions: Counter = field(
        default_factory=lambda: _counter(
            "gpupool_preemptions", "Preemptions and shrinks completed, by reason.", ("reason",)
        )
    )
    hook_seconds: Histogram = field(
        default_factory=lambda: Histogram(
            "gpupool_checkpoint_hook_seconds",
            "Checkpoint hook duration, by outcome.",
            ("outcome",),
            registry=REGISTRY,
        )
    )
    finished: Counter = field(
        default_factory=lambda: _counter("gpupool_jobs_finished", "Jobs finished.", ("outcome",))
    )
    idle_jobs: Gauge = field(
        default_factory=lambda: Gauge(
            "gpupool_idle_jobs",
            "Running jobs idle per their team's idleReclaim, by team and mode.",
            ("team", "mode"),
            registry=REGISTRY,
        )
    )
    pending_jobs: Gauge = field(
        default_factory=lambda: Gauge(
            "gpupool_pending_jobs", "Jobs waiting, by team.", ("team",), registry=REGISTRY
        )
    )


METRICS = Metrics()
