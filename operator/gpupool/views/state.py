"""The objects the CLI reads, fetched once per command and parsed into the models."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gpupool.api import GPUJobSpec, GPUJobStatus, GPUNodeStatus, TeamQuotaSpec, TeamQuotaStatus
from gpupool.k8s import GPUJOBS, GPUNODES, TEAMQUOTAS, ApiError, KubeClient, Resource
from gpupool.k8s.listing import list_items


class CliError(Exception):
    """A failure the user can act on; the message says how."""


@dataclass
class Team:
    name: str
    spec: TeamQuotaSpec
    status: TeamQuotaStatus


@dataclass
class Job:
    namespace: str
    name: str
    spec: GPUJobSpec
    status: GPUJobStatus
    created: str
    uid: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Node:
    name: str
    status: GPUNodeStatus


@dataclass
class ClusterState:
    teams: list[Team] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)


CLUSTER_VIEWER = "<release>-cluster-viewer (Helm value rbac.clusterViewers)"


def explain_api_error(error: ApiError, resource: Resource) -> CliError:
    if error.not_found:
        return CliError(
            f"the {resource.plural}.{resource.group} resource is not installed on this cluster: "
            "install gpupool (helm install gpupool helm/gpupool) or apply its CRDs "
            "(kubectl apply -f crds/)"
        )
    if error.forbidden and resource.group == GPUJOBS.group:
        return CliError(
            f"forbidden: your credentials may not list {resource.plural}.{resource.group} "
            f"({error.message}); ask for the gpupool viewer role, or for the whole cluster "
            f"the {CLUSTER_VIEWER} ClusterRole"
        )
    if error.forbidden:
        return CliError(
            f"forbidden: your credentials may not list {resource.plural} ({error.message}); "
            "explain and snapshot read what the operator reads: Nodes, and gpupool's Pods "
            f"in every namespace; the chart's {CLUSTER_VIEWER} ClusterRole grants it"
        )
    return CliError(f"the API server refused to list {resource.plural}: {error}")


async def list_objects(
    client: KubeClient,
    resource: Resource,
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
) -> list[dict[str, Any]]:
    """Every object of `resource`; a missing CRD or a refusal becomes a `CliError`."""
    try:
        return await list_items(client, resource, namespace, label_selector=label_selector)
    except ApiError as error:
        raise explain_api_error(error, resource) from error


def _job(item: dict[str, Any]) -> Job:
    meta = item["metadata"]
    return Job(
        namespace=meta["namespace"],
        name=meta["name"],
        spec=GPUJobSpec.model_validate(item["spec"]),
        status=GPUJobStatus.model_validate(item.get("status") or {}),
        created=meta.get("creationTimestamp", ""),
        uid=meta.get("uid", ""),
    )


async def load_state(
    client: KubeClient, namespace: str | None = None, *, nodes: bool = True
) -> ClusterState:
    teams, jobs, gpunodes = await asyncio.gather(
        list_objects(client, TEAMQUOTAS),
        list_objects(client, GPUJOBS, namespace),
        list_objects(client, GPUNODES) if nodes else asyncio.sleep(0, result=[]),
    )
    return ClusterState(
        teams=sorted(
            (
                Team(
                    t["metadata"]["name"],
                    TeamQuotaSpec.model_validate(t["spec"]),
                    TeamQuotaStatus.model_validate(t.get("status") or {}),
                )
                for t in teams
            ),
            key=lambda team: team.name,
        ),
        jobs=sorted((_job(j) for j in jobs), key=lambda job: job.key),
        nodes=sorted(
            (
                Node(n["metadata"]["name"], GPUNodeStatus.model_validate(n.get("status") or {}))
                for n in gpunodes
            ),
            key=lambda node: node.name,
        ),
    )
