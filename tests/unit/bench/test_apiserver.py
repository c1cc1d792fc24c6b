"""Counting the API server's writes per phase from its /metrics page."""

from __future__ import annotations

from collections import Counter

from gpupool.bench.apiserver import parse_writes, phase_writes


def _line(name: str, value: float, **labels: str) -> str:
    base = {"component": "apiserver", "dry_run": "", "group": "", "scope": "resource"}
    base |= {"subresource": "", "version": "v1"} | labels
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in base.items()) + "}" + f" {value}"


COUNTER = "apiserver_request_total"
HISTOGRAM = "apiserver_request_duration_seconds"
METRICS = "\n".join(
    [
        f"# HELP {COUNTER} [STABLE] Counter of apiserver requests.",
        f"# TYPE {COUNTER} counter",
        _line(COUNTER, 4000, code="201", resource="pods", verb="POST"),
        _line(COUNTER, 3, code="409", resource="pods", verb="POST"),
        _line(
            COUNTER,
            4100,
            code="200",
            group="gpupool.io",
            resource="gpujobs",
            subresource="status",
            verb="PATCH",
            version="v1alpha1",
        ),
        _line(COUNTER, 12, code="200", resource="pods", scope="namespace", verb="LIST"),
        _line(COUNTER, 9, code="200", resource="pods", scope="namespace", verb="WATCH"),
        f"# HELP {HISTOGRAM} [STABLE] Response latency distribution.",
        f"# TYPE {HISTOGRAM} histogram",
        _line(f"{HISTOGRAM}_bucket", 7, resource="pods", verb="POST", le="0.005"),
        _line(f"{HISTOGRAM}_count", 4003, resource="pods", verb="POST"),
        _line(f"{HISTOGRAM}_sum", 12.5, resource="pods", verb="POST"),
    ]
)


def test_only_writes_count_by_resource_and_subresource() -> None:
    assert parse_writes(METRICS) == Counter({"pods": 4003, "gpujobs/status": 4100})


def test_a_phase_is_the_difference_with_its_rate() -> None:
    before = Counter({"pods": 3, "gpujobs/status": 100, "leases": 50})
    after = parse_writes(METRICS) + Counter({"leases": 60})
    figures = phase_writes(before, after, 20.0)
    assert figures == {
        "total": 8010,
        "per_second": 400.5,
        "pods": 4000,
        "gpujobs/status": 4000,
        "leases": 10,
    }
    assert "per_second" not in phase_writes(before, after, None)
