"""The reads behind `gpupool explain` and `gpupool snapshot` (through gpupool.k8s)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gpupool.controller.settings import OperatorConfig
from gpupool.k8s import ApiError, KubeClient
from gpupool.k8s.listing import events_about
from gpupool.planner import plan
from gpupool.views.explain import Explanation
from gpupool.views.failures import CliError, did_you_mean
from gpupool.views.snapshot import Offline, offline_snapshot, read_indexed


def operator_config(node_selector: str) -> OperatorConfig:
    """The operator's configuration as its GPUPOOL_* environment would set it."""
    return dataclasses.replace(OperatorConfig.from_env(), node_selector=node_selector)


async def load_offline(client: KubeClient, node_selector: str, now: float) -> Offline:
    config = operator_config(node_selector)
    indexed = await read_indexed(client, config.node_selector, config.gpu_resource)
    return offline_snapshot(indexed, config, now)


def not_found(namespace: str, name: str, jobs: Iterable[tuple[str, str]]) -> CliError:
    """GPUJob not found, with the names it may have meant: close names in its namespace,
    the same name in other namespaces."""
    keys = list(jobs)
    elsewhere = [f"{ns}/{other}" for ns, other in keys if other == name]
    close = did_you_mean(name, (other for ns, other in keys if ns == namespace))
    hint = close or (f" Did you mean {' or '.join(sorted(elsewhere))}?" if elsewhere else "")
    return CliError(
        f"GPUJob {namespace}/{name} not found.{hint} `gpupool queue -n {namespace}` or "
        f"`kubectl get gpujobs -n {namespace}` lists the jobs there."
    )


async def load_explanation(
    client: KubeClient, namespace: str, name: str, node_selector: str, now: float | None = None
) -> Explanation:
    now = time.time() if now is None else now
    offline = await load_offline(client, node_selector, now)
    key = (namespace, name)
    record = offline.indexed.jobs.get(key)
    if record is None:
        raise not_found(namespace, name, offline.indexed.jobs)
    events: list[dict[str, Any]] = []
    events_error = ""
    try:
        events = await events_about(client, namespace, "GPUJob", name)
    except ApiError as error:
        if error.retryable:
            raise
        # The explanation stands without them: say why they are missing.
        events_error = f"Events not readable: {error.reason or error.status} ({error.message})"
    return Explanation(
        record=record,
        view=offline.observation.views.get(key),
        plan=plan(offline.snapshot, now),
        events=events,
        now=datetime.fromtimestamp(now, UTC),
        events_error=events_error,
    )
