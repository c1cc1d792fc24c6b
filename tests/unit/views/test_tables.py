"""The CLI's tables, rendered from a hand-built cluster state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console, RenderableType

from gpupool.api import (
    EstimatedStart,
    GPUJobSpec,
    GPUJobStatus,
    GPUNodeStatus,
    TeamQuotaSpec,
    TeamQuotaStatus,
)
from gpupool.views.output import Listing
from gpupool.views.state import ClusterState, Job, Node, Team
from gpupool.views.tables import (
    queue_listing,
    status_listing,
    team_namespaces,
    team_utilization,
    top_listing,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "c", "image": "i"}]}}


def render(renderable: RenderableType | Listing[Any], wide: bool = False) -> str:
    console = Console(record=True, width=220)
    if isinstance(renderable, Listing):
        console.print(renderable.table(wide))
        if renderable.footer is not None:
            console.print(renderable.footer)
    else:
        console.print(renderable)
    return console.export_text()


def job(name: str, team: str, phase: str, position: int | None, detail: str) -> Job:
    return Job(
        namespace=f"{team}-ns",
        name=name,
        spec=GPUJobSpec.model_validate({"gpusPerWorker": 8, "workers": 2, "template": TEMPLATE}),
        status=GPUJobStatus(phase=phase, team=team, queue_position=position, detail=detail),  # type: ignore[arg-type]
        created="2026-11-24T11:30:00Z",
        uid=name,
    )


def state() -> ClusterState:
    node = GPUNodeStatus.model_validate(
        {
            "gpuCount": 2,
            "healthyGPUs": 1,
            "reporting": True,
            "gpus": [
                {
                    "index": 0,
                    "product": "H100",
                    "utilization": 90,
                    "utilization5m": 80,
                    "memoryUsedMiB": 40960,
                    "memoryTotalMiB": 81920,
                    "pod": {"namespace": "vision-ns", "name": "train-0-0"},
                },
                {"index": 1, "product": "H100", "healthy": False, "healthReason": "XID 79"},
            ],
        }
    )
    return ClusterState(
        teams=[
            Team(
                "vision",
                TeamQuotaSpec(namespaces=["vision-ns"], guaranteed_gpus=8, max_gpus=16),
                TeamQuotaStatus(allocated_gpus=12, borrowed_gpus=4, fair_share_gpus=12.5),
            ),
            Team("nlp", TeamQuotaSpec(namespaces=["nlp-ns"], guaranteed_gpus=4), TeamQuotaStatus()),
        ],
        jobs=[
            job("b", "nlp", "Pending", 2, "queued behind nlp/a"),
            job("a", "nlp", "Pending", 1, "waiting for 8 GPUs held by vision (borrowed)"),
            job("train", "vision", "Running", None, "node-1, node-2"),
        ],
        nodes=[
            Node("node-1", node),
            Node("node-9", GPUNodeStatus(message="NVML: driver not loaded")),
        ],
    )


def test_status_shows_each_team_and_cluster_totals() -> None:
    text = render(status_listing(state()))
    assert "vision" in text and "nlp" in text and "∞" in text
    assert "12.5" in text
    assert "2 GPUs on 2 nodes" in text and "healthy 1" in text
    assert team_utilization(state()) == {"vision": 80.0}


def test_queue_lists_pending_jobs_in_order_with_reasons() -> None:
    text = render(queue_listing(state(), team=None, namespace=None, now=NOW))
    assert text.index(" a ") < text.index(" b ")
    assert "waiting for 8 GPUs held by vision (borrowed)" in text
    assert "train" not in text
    assert "30m" in text
    assert "nlp-ns" not in render(queue_listing(state(), team="vision", namespace=None, now=NOW))


def test_top_shows_gpus_pods_health_and_silent_nodes() -> None:
    text = render(top_listing(state().nodes))
    assert "vision-ns/train-0-0" in text
    assert "XID 79" in text
    assert "40.0/80 GiB" in text
    assert "not reporting" in text and "driver not loaded" in text
    assert "H100" not in text and "H100" in render(top_listing(state().nodes), wide=True)
    held = top_listing(state().nodes, namespace="vision-ns")
    assert [(row.node.name, row.gpu.index if row.gpu else None) for row in held.rows] == [
        ("node-1", 0)
    ]


def test_queue_of_a_team_includes_jobs_the_operator_has_not_seen_yet() -> None:
    unseen = job("fresh", "nlp", "Pending", None, "")
    unseen.status.team = ""
    cluster = state()
    cluster.jobs.append(unseen)
    text = render(queue_listing(cluster, team="nlp", namespace="nlp-ns", now=NOW))
    assert "fresh" in text and "not yet seen by the scheduler" in text


def with_serving_pod() -> ClusterState:
    """state() plus a GPU used by a pod in a namespace outside every team."""
    cluster = state()
    cluster.nodes.append(
        Node(
            "gpu-9",
            GPUNodeStatus.model_validate(
                {
                    "gpuCount": 1,
                    "healthyGPUs": 1,
                    "reporting": True,
                    "gpus": [{"index": 0, "pod": {"namespace": "serving", "name": "llm-0"}}],
                }
            ),
        )
    )
    return cluster


def test_top_says_which_pods_are_not_managed_by_any_team() -> None:
    cluster = with_serving_pod()
    listing = top_listing(cluster.nodes, teams=team_namespaces(cluster))
    text = render(listing)
    assert "serving/llm-0 (not managed)" in text
    assert "vision-ns/train-0-0 (not managed)" not in text
    marked = {
        row["pod"]["name"]: row["managed"] for row in listing.document()["items"] if "pod" in row
    }
    assert marked == {"train-0-0": True, "llm-0": False}
    assert "(not managed)" not in render(top_listing(cluster.nodes))  # TeamQuotas unknown


def test_status_shows_unmanaged_gpus_per_team_and_outside_every_team() -> None:
    cluster = with_serving_pod()
    cluster.teams[0].status.unmanaged_gpus = 2
    listing = status_listing(cluster)
    text = render(listing)
    assert "Unmanaged" in text
    assert "not managed 1" in text
    assert listing.document()["cluster"]["notManagedGPUs"] == 1


def test_queue_shows_each_job_s_forecast_start() -> None:
    cluster = state()
    cluster.jobs[1].status.estimated_start = EstimatedStart(
        time=datetime(2026, 11, 24, 14, 0, tzinfo=UTC), confidence="high", basis="after 1 job end"
    )
    cluster.jobs[0].status.estimated_start = EstimatedStart(basis="not within the 6.0 h")
    listing = queue_listing(cluster, team=None, namespace=None, now=NOW)
    text = render(listing)
    assert "in 2.0h (2026-11-24 14:00 UTC, high confidence)" in text
    assert "unknown" in text
    records = {row["name"]: row["estimatedStart"] for row in listing.document()["items"]}
    assert records["a"]["confidence"] == "high"
