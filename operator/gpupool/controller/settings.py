"""The operator's knobs, and how kopf is configured for an index-driven operator."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpupool.planner import PlannerConfig

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gpupool"

PEERING_NAME = "gpupool"
# Peering priorities: kopf pauses every instance whose priority is not the highest, and
# pauses *all* of them on a tie. Each instance therefore takes a unique priority from its
# start time, older instances higher: the leader keeps leading through rolling updates and a
# new replica waits as the standby. Milliseconds make a tie practically impossible.
_PRIORITY_EPOCH_MS = 10**13


def instance_priority(started_at: float | None = None) -> int:
    """A unique peering priority: higher for an instance that started earlier."""
    started = time.time() if started_at is None else started_at
    return _PRIORITY_EPOCH_MS - int(started * 1000)


@dataclass(frozen=True)
class OperatorConfig:
    """Timings and limits of the scheduling loop and its executor."""

    # The loop runs after this much quiet following an index change, so a burst of
    # events (4,000 pods appearing) costs one planning pass rather than 4,000.
    debounce_seconds: float = 0.3
    # After a cycle that took T seconds the loop waits at least factor × T: under an
    # event storm it takes at most 1 / (1 + factor) of the operator's core, and its
    # executor and kopf's watches (the same event loop) get the rest. Measured with
    # `gpupool bench e2e` on 2 cores: 1 → reclaim burst 201 s, 2 → 160 s, 3 → 137 s
    # but the admission burst 109 → 128 s (each cycle then waits longer to say Running).
    cycle_yield_factor: float = 2.0
    # Time-driven work (idle tracking, hook deadlines, usage, retries) needs a tick even
    # when nothing changes.
    tick_seconds: float = 5.0
    # Concurrent API calls of the executor (pod creation, deletion, status patches).
    api_concurrency: int = 64
    # An admission is assumed to occupy its GPUs until its pods show up in the index; one
    # whose pods never appear (deleted at once by someone else) is forgotten this long
    # after they were created. Generous: forgetting it while the watch merely lags would
    # let the GPUs be given away twice.
    assume_ttl_seconds: float = 300.0
    # A job whose pods were just created says Admitted only if they have not all started
    # this long after its admission: usually the next write says Running, one write per
    # admission instead of two (writes are what bounds a burst of thousands).
    admitted_status_delay_seconds: float = 5.0
    # Grace for the pods of a job being deleted after a hook (the hook already had its time).
    eviction_grace_seconds: int = 5
    # Retry of a job whose worker failed: base * 2**(failures-1), capped.
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 300.0
    # A job whose workers a kubelet refused for want of GPUs (another pod took them
    # between the plan and the pod's arrival) is re-planned after this pause: long
    # enough for the pod that won to show in the index, so the re-plan avoids it.
    conflict_retry_seconds: float = 2.0
    # Anti-thrash: the planner never preempts a job younger than this.
    min_runtime_seconds: float = 300.0
    # At most this many pending jobs start new preemptions per cycle (bounds disruption).
    max_preemptors_per_cycle: int = 32
    # Half-life of the decayed usage that breaks fair-share ties.
    usage_half_life_hours: float = 24.0
    # Pending jobs' estimated start is forecast at most this often (0: never); one
    # forecast of 10,000 jobs costs up to about 2 s of CPU (`gpupool bench forecast`).
    forecast_interval_seconds: float = 120.0
    # Peering: "" runs standalone (one instance, no leader election).
    peering_name: str = PEERING_NAME
    priority: int = field(default_factory=instance_priority)
    # How long a dead peer's record blocks a standby (kopf's peer lifetime).
    peering_lifetime_seconds: int = 15
    instance: str = field(default_factory=lambda: os.environ.get("HOSTNAME", "gpupool-operator"))
    # The extended resource GPUs are advertised and requested as: what nodes' allocatable
    # and every pod's requests are read in, and what gpupool's workers request.
    gpu_resource: str = "nvidia.com/gpu"
    # Label selector of the Nodes gpupool schedules onto ("" = every node with GPUs), so
    # several pools (or several test runs) can share one cluster.
    node_selector: str = ""
    # Prometheus /metrics on this port (0: not served) and address.
    metrics_port: int = 0
    metrics_address: str = "0.0.0.0"
    # None: in-cluster credentials, else $KUBECONFIG / ~/.kube/config.
    kubeconfig: str | None = None
    # Test setups only (GPUPOOL_CHECKPOINT_ADDRESS=host:port): every httpPost hook goes
    # there instead of to the pod's IP and its spec's port. The cluster's operator sets
    # it, never a user: the hook otherwise goes to the job's own pods only.
    checkpoint_address: str | None = None

    @property
    def standalone(self) -> bool:
        return not self.peering_name

    def planner_config(self) -> PlannerConfig:
        return PlannerConfig(
            min_runtime_seconds=self.min_runtime_seconds,
            max_preemptors_per_cycle=self.max_preemptors_per_cycle,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorConfig:
        """The configuration of `kopf run -m gpupool.controller` (GPUPOOL_* variables)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("GPUPOOL_STANDALONE", "").lower() in ("1", "true", "yes"):
            values["peering_name"] = ""
        elif env.get("GPUPOOL_PEERING_NAME"):
            values["peering_name"] = env["GPUPOOL_PEERING_NAME"]
        for name, key, kind in (
            ("debounce_seconds", "GPUPOOL_DEBOUNCE_SECONDS", float),
            ("cycle_yield_factor", "GPUPOOL_CYCLE_YIELD_FACTOR", float),
            ("tick_seconds", "GPUPOOL_TICK_SECONDS", float),
            ("forecast_interval_seconds", "GPUPOOL_FORECAST_INTERVAL_SECONDS", float),
            ("api_concurrency", "GPUPOOL_API_CONCURRENCY", int),
            ("priority", "GPUPOOL_PEERING_PRIORITY", int),
            ("min_runtime_seconds", "GPUPOOL_MIN_RUNTIME_SECONDS", float),
            ("max_preemptors_per_cycle", "GPUPOOL_MAX_PREEMPTORS_PER_CYCLE", int),
            ("metrics_port", "GPUPOOL_METRICS_PORT", int),
            ("admitted_status_delay_seconds", "GPUPOOL_ADMITTED_STATUS_DELAY_SECONDS", float),
            ("conflict_retry_seconds", "GPUPOOL_CONFLICT_RETRY_SECONDS", float),
        ):
            if env.get(key):
                values[name] = kind(env[key])
        if env.get("GPUPOOL_METRICS_ADDR"):
            values["metrics_address"] = env["GPUPOOL_METRICS_ADDR"]
        if env.get("GPUPOOL_GPU_RESOURCE"):
            values["gpu_resource"] = env["GPUPOOL_GPU_RESOURCE"]
        if env.get("GPUPOOL_NODE_SELECTOR"):
            values["node_selector"] = env["GPUPOOL_NODE_SELECTOR"]
        if env.get("KUBECONFIG"):
            values["kubeconfig"] = env["KUBECONFIG"]
        if env.get("GPUPOOL_CHECKPOINT_ADDRESS"):
            values["checkpoint_address"] = env["GPUPOOL_CHECKPOINT_ADDRESS"]
        return cls(**values)


def configure_kopf(settings: Any, config: OperatorConfig) -> None:
    """Apply the settings every gpupool operator needs (`settings` is kopf.OperatorSettings).

    - No worker limit: with indexes, a limit below the number of indexed objects deadlocks
      start-up (each object's worker waits for every index to be complete).
    - Every pod is watched: any pod holding GPUs on a node of the pool counts, whoever
      created or placed it (there is no server-side selector for "requests GPUs").
    - kopf's own Events (handler chatter) are off: gpupool posts events.k8s.io/v1 Events
      that say what happened to the job.
    - Only index and event handlers are registered, so kopf writes no progress annotations
      and adds no finalizers to anyone's objects.
    """
    settings.queueing.worker_limit = None
    # A per-object worker (and the body it holds) goes soon after the object's last event.
    settings.queueing.idle_timeout = 1.0
    if config.node_selector:
        settings.watching.label_selectors["v1", "nodes"] = config.node_selector
    settings.posting.enabled = False
    # Paged listing: one 10,000-object LIST response held whole (bytes, text and parsed)
    # costs more memory than the objects themselves.
    settings.watching.chunk_size = 500
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # A restarting API server answers 5xx for a while; kopf gives a watch up (and the
    # operator stops) once these are exhausted, so they cover a minute and a half.
    settings.networking.error_backoffs = (0.5, 1, 2, 3, 5, 8, 13, 21, 34)
    settings.peering.clusterwide = True
    if config.standalone:
        settings.peering.standalone = True
    else:
        settings.peering.standalone = False
        settings.peering.mandatory = True
        settings.peering.name = config.peering_name
        settings.peering.priority = config.priority
        settings.peering.lifetime = config.peering_lifetime_seconds
