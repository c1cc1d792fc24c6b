"""The kopf validators: indexed TeamQuotas and Nodes in, an admission answer out.

Indexes are plain mappings of key -> [record], the shape kopf hands to handlers.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from gpupool.controller.records import NodeRecord, TeamRecord, node_record, team_record
from gpupool.k8s import ApiError
from gpupool.k8s.decoding import UNDECODABLE
from gpupool.webhook.handlers import answer, review_gpujob, review_teamquota, validate_gpujob

CONTAINERS = [{"name": "train", "image": "pytorch:2"}]


def team(
    name: str, namespaces: list[str], guaranteed: int, maximum: int | None = None
) -> TeamRecord:
    spec: dict[str, Any] = {"namespaces": namespaces, "guaranteedGPUs": guaranteed}
    if maximum is not None:
        spec["maxGPUs"] = maximum
    return team_record({"metadata": {"name": name, "uid": name}, "spec": spec})


def node(name: str, gpus: int) -> NodeRecord:
    return node_record(
        {"metadata": {"name": name}, "status": {"allocatable": {"nvidia.com/gpu": str(gpus)}}}
    )


def cluster(*nodes: NodeRecord) -> dict[str, list[NodeRecord]]:
    return {n.name: [n] for n in nodes}


def teams(*records: TeamRecord) -> dict[str, list[TeamRecord]]:
    return {t.name: [t] for t in records}


# 2 nodes × 8 GPUs; team vision owns vision-train (16 guaranteed, borrows up to 24).
NODES = cluster(node("gpu-1", 8), node("gpu-2", 8), node("cpu-1", 0))
TEAMS = teams(team("vision", ["vision-train"], 8, 24), team("nlp", ["nlp"], 4))


DEEP: dict[str, Any] = {}
_level = DEEP
for _ in range(40):
    _level["a"] = {}
    _level = _level["a"]


def gpujob(namespace: str = "vision-train", **spec: Any) -> kopf.Body:
    return kopf.Body(
        {
            "metadata": {"name": "resnet", "namespace": namespace},
            "spec": {
                "gpusPerWorker": 8,
                "workers": 2,
                "template": {"spec": {"containers": CONTAINERS}},
            }
            | spec,
        }
    )


async def admit_job(body: kopf.Body, *, old: kopf.Body | None = None) -> list[str]:
    """Through the kopf handler, as kopf calls it: warnings returned, refusals raised."""
    warnings: list[str] = []
    await validate_gpujob(
        body=body,
        warnings=warnings,
        old=old,
        operation="UPDATE" if old is not None else "CREATE",
        teamquota_index=TEAMS,
        node_index=NODES,
    )
    return warnings


async def test_a_job_of_the_namespaces_team_that_fits_is_admitted() -> None:
    assert await admit_job(gpujob()) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (gpujob("default"), "spec.team: namespace 'default' belongs to no TeamQuota"),
        (gpujob("nlp", team="vision"), "spec.team: namespace 'nlp' is not one of TeamQuota"),
        (gpujob(workers=4), "spec.gpusPerWorker: 4 worker(s) × 8 GPUs = 32 exceeds"),
        (gpujob(gpusPerWorker=16, workers=1), "but the largest node has 8; split the job"),
        (
            gpujob(template={"spec": {"nodeName": "gpu-1", "containers": CONTAINERS}}),
            "spec.template.spec.nodeName: must be empty",
        ),
        (
            gpujob(template={"metadata": DEEP, "spec": {"containers": CONTAINERS}}),
            "spec.template.metadata.a.a.a… (35 levels): nested deeper than 32 levels",
        ),
        (
            gpujob(template={"spec": {"containers": CONTAINERS * 10_000}}),
            "spec.template.spec.containers: 10000 items, more than 64",
        ),
        (
            gpujob(
                template={
                    "metadata": {"annotations": {"big": "x" * (1024 * 1024)}},
                    "spec": {"containers": CONTAINERS},
                }
            ),
            "spec.template: 1024 KiB as JSON, more than the 512 KiB",
        ),
        (
            gpujob(
                template={
                    "metadata": {"annotations": {"gpupool.io/checkpoint-address": "evil:80"}},
                    "spec": {"containers": CONTAINERS},
                }
            ),
            "spec.template.metadata.annotations[gpupool.io/checkpoint-address]: not allowed",
        ),
    ],
)
async def test_a_bad_job_is_refused_naming_the_field_and_the_fix(
    body: kopf.Body, expected: str
) -> None:
    with pytest.raises(kopf.AdmissionError) as refused:
        await admit_job(body)
    assert expected in str(refused.value)
    assert refused.value.code == 422


async def test_every_problem_is_reported_at_once() -> None:
    body = gpujob(
        gpusPerWorker=16, workers=2, template={"spec": {"nodeName": "n", "containers": CONTAINERS}}
    )
    with pytest.raises(kopf.AdmissionError) as refused:
        await admit_job(body)
    message = str(refused.value)
    assert "spec.template.spec.nodeName" in message
    assert "exceeds TeamQuota 'vision' maxGPUs 24" in message
    assert "the largest node has 8" in message


async def test_an_update_that_leaves_the_spec_alone_is_not_checked() -> None:
    # The team lost the namespace after the job was admitted; removing a finalizer or
    # adding a label must still work.
    orphan = gpujob("gone")
    assert await admit_job(orphan, old=orphan) == []
    with pytest.raises(kopf.AdmissionError):
        await admit_job(gpujob("gone", workers=1), old=orphan)


def test_without_gpu_nodes_sizes_are_not_checked() -> None:
    body = gpujob(gpusPerWorker=16, workers=1)
    verdict = review_gpujob(body, None, "CREATE", TEAMS, cluster(node("cpu-1", 0)))
    assert verdict.allowed, verdict.errors


def admit_team(name: str, spec: dict[str, Any], index: Any = TEAMS) -> list[str]:
    warnings: list[str] = []
    body = {"metadata": {"name": name}, "spec": spec}
    answer(review_teamquota(body, None, "CREATE", index, NODES), warnings)
    return warnings


def test_a_namespace_already_claimed_by_another_team_is_refused() -> None:
    with pytest.raises(kopf.AdmissionError) as refused:
        admit_team("speech", {"namespaces": ["speech", "nlp"], "guaranteedGPUs": 2})
    assert str(refused.value) == (
        "spec.namespaces: ['nlp'] already belong to TeamQuota 'nlp'; "
        "a namespace can belong to one team only"
    )


def test_guarantees_beyond_the_cluster_are_admitted_with_a_warning() -> None:
    # 16 GPUs in the cluster; vision 8 + nlp 4 + speech 6 = 18 guaranteed.
    warnings = admit_team("speech", {"namespaces": ["speech"], "guaranteedGPUs": 6})
    assert warnings == [
        "spec.guaranteedGPUs: guarantees across all teams add up to 18 GPUs but the "
        "cluster has 16; not every guarantee can be met"
    ]


def test_an_invalid_indexed_team_is_ignored() -> None:
    broken = team_record({"metadata": {"name": "broken"}, "spec": {"guaranteedGPUs": -1}})
    assert broken.spec is None
    assert admit_team("x", {"namespaces": ["x"], "guaranteedGPUs": 1}, teams(broken)) == []


async def test_an_object_the_decoder_had_to_cut_is_refused_naming_the_field() -> None:
    body = gpujob()
    marked = kopf.Body({**body, UNDECODABLE: "spec.template.metadata.a.a… (64 levels): too deep"})
    with pytest.raises(kopf.AdmissionError) as refused:
        await admit_job(marked)
    assert "spec.template.metadata.a.a… (64 levels)" in str(refused.value)


class DryRunClient:
    def __init__(self, error: ApiError | None) -> None:
        self.error = error
        self.created: list[tuple[str, str | None, bool]] = []

    async def create(
        self, resource: Any, body: dict[str, Any], namespace: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        self.created.append((body["metadata"]["name"], namespace, kwargs.get("dry_run", False)))
        if self.error is not None:
            raise self.error
        return body


def memo_with(client: DryRunClient) -> Any:
    return SimpleNamespace(gpupool=SimpleNamespace(client=client))


async def test_the_worker_pod_is_dry_run_and_a_refusal_names_the_template_field() -> None:
    refusal = ApiError(
        422,
        "Invalid",
        'Pod "resnet-0-0" is invalid',
        {"details": {"causes": [{"field": "metadata.annotations", "message": "Too long"}]}},
    )
    client = DryRunClient(refusal)
    with pytest.raises(kopf.AdmissionError) as refused:
        await validate_gpujob(
            body=gpujob(),
            warnings=[],
            operation="CREATE",
            teamquota_index=TEAMS,
            node_index=NODES,
            memo=memo_with(client),
        )
    assert "spec.template.metadata.annotations: Too long" in str(refused.value)
    assert client.created == [("resnet-0-0", "vision-train", True)]


async def test_an_api_server_that_cannot_answer_now_admits_with_a_warning() -> None:
    client = DryRunClient(ApiError(503, "ServiceUnavailable", "etcd is slow"))
    warnings: list[str] = []
    await validate_gpujob(
        body=gpujob(),
        warnings=warnings,
        operation="CREATE",
        teamquota_index=TEAMS,
        node_index=NODES,
        memo=memo_with(client),
    )
    assert warnings and "could not be checked now" in warnings[0]
