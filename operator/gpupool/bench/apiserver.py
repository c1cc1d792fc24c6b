"""The writes the API server served, from its own `apiserver_request_total` (benchmarks).

On a machine where the control plane and the operator share a few cores, a phase takes
as long as the API server needs for its writes: counting them per phase (GPUJob
creates by the client, pods and status by the operator, pod status by kwok, Events…)
tells what a phase costs and how fast the control plane went.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from gpupool.k8s import KubeClient

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
COUNTER = "apiserver_request_total"


def parse_writes(metrics: str) -> Counter[str]:
    """Writes by `resource` or `resource/subresource`, from the API server's /metrics."""
    # The API server's page runs to megabytes of histograms: only the counter is parsed.
    lines = [line for line in metrics.splitlines() if COUNTER in line]
    writes: Counter[str] = Counter()
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            labels = sample.labels
            if sample.name != COUNTER or labels.get("verb") not in WRITE_VERBS:
                continue
            resource = labels.get("resource") or "-"
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            writes[resource] += int(sample.value)
    return writes


async def write_counts(client: KubeClient) -> Counter[str]:
    """The API server's write counters now (they only grow while it runs)."""
    return parse_writes(await client.get_text("/metrics"))


def phase_writes(
    before: Counter[str], after: Counter[str], seconds: float | None
) -> dict[str, float]:
    """The writes between two readings: total, per second over `seconds`, top resources."""
    served = after - before
    total = sum(served.values())
    figures: dict[str, float] = {"total": total}
    if seconds is not None and seconds >= 1.0:
        figures["per_second"] = round(total / seconds, 1)
    figures.update(served.most_common(8))
    return figures
