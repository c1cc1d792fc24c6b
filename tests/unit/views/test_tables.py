"""The CLI's tables, rendered from a hand-built cluster state."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console, RenderableType

from gpupool.api import GPUJobSpec, GPUJobStatus, GPUNodeStatus, TeamQuotaSpec, TeamQuotaStatus
from gpupool.views.state import ClusterState, Job, Node, Team
from gpupool.views.tables import (
    queue_table,
    status_table,
    team_namespaces,
    team_utilization,
    top_table,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "c", "image": "i"}]}}


def render(renderable: RenderableType) -> str:
    console = Console(record=True, width=220)
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
    text = render(status_table(state()))
    assert "vision" in text and "nlp" in text and "∞" in text
    assert "12.5" in text
    assert "2 GPUs on 2 nodes" in text and "healthy 1" in text
    assert team_utilization(state()) == {"vision": 80.0}


def test_queue_lists_pending_jobs_in_order_with_reasons() -> None:
    text = render(queue_table(state(), team=None, now=NOW))
    assert text.index("nlp-ns/a") < text.index("nlp-ns/b")
    assert "waiting for 8 GPUs held by vision (borrowed)" in text
    assert "vision-ns/train" not in text
    assert "30m" in text
    assert "nlp-ns/a" not in render(queue_table(state(), team="vision", now=NOW))


def test_top_shows_gpus_pods_health_and_silent_nodes() -> None:
    text = render(top_table(state().nodes))
    assert "vision-ns/train-0-0" in text
    assert "XID 79" in text
    assert "40.0/80 GiB" in text
    assert "not reporting" in text and "driver not loaded" in text


def test_queue_of_a_team_includes_jobs_the_operator_has_not_seen_yet() -> None:
    unseen = job("fresh", "nlp", "Pending", None, "")
    unseen.status.team = ""
    cluster = state()
    cluster.jobs.append(unseen)
    text = render(queue_table(cluster, team="nlp", now=NOW))
    assert "nlp-ns/fresh" in text and "not yet seen by the scheduler" in text


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
    text = render(top_table(cluster.nodes, team_namespaces(cluster)))
    assert "serving/llm-0 (not managed)" in text
    assert "vision-ns/train-0-0 (not managed)" not in text


def test_status_shows_unmanaged_gpus_per_team_and_outside_every_team() -> None:
    cluster = with_serving_pod()
    cluster.teams[0].status.unmanaged_gpus = 2
    text = render(status_table(cluster))
    assert "Unmanaged" in text
    assert "not managed 1" in text
