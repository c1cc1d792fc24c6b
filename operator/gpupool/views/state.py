"""The objects the CLI reads, fetched once per command and parsed into the models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from gpupool.api import GPUJobSpec, GPUJobStatus, GPUNodeStatus, TeamQuotaSpec, TeamQuotaStatus
from gpupool.k8s import GPUJOBS, GPUNODES, TEAMQUOTAS, ApiError, KubeClient, Resource
from gpupool.k8s.listing import list_items
from gpupool.views.failures import CliError, listing_failure


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


async def list_objects(
    client: KubeClient,
    resource: Resource,
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
) -> list[dict[str, Any]]:
    """Every object of `resource`; a missing CRD or an RBAC refusal becomes a `CliError`
    (other errors, e.g. no answer or expired credentials, are the caller's to explain)."""
    try:
        return await list_items(client, resource, namespace, label_selector=label_selector)
    except ApiError as error:
        failure = listing_failure(error, resource, namespace)
        if failure is None:
            raise
        raise failure from error


async def list_together(
    *listings: Awaitable[list[dict[str, Any]]],
) -> list[list[dict[str, Any]]]:
    """Run the listings at once. When several are refused, say all of it in one error
    (in the order asked), so one round of RBAC changes fixes the command."""
    results = await asyncio.gather(*listings, return_exceptions=True)
    refused = [result for result in results if isinstance(result, CliError)]
    if refused:
        messages = list(dict.fromkeys(str(error) for error in refused))
        raise CliError("\n".join(messages)) from refused[0]
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if not isinstance(result, BaseException)]


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
    client: KubeClient,
    namespace: str | None = None,
    *,
    teams: bool = True,
    jobs: bool = True,
    nodes: bool = True,
) -> ClusterState:
    """What a command shows: TeamQuotas, the GPUJobs of `namespace` (None: all) and
    GPUNodes, each only when asked for (every list needs its own RBAC grant)."""
    nothing: list[dict[str, Any]] = []
    quotas, gpujobs, gpunodes = await list_together(
        list_objects(client, TEAMQUOTAS) if teams else asyncio.sleep(0, result=nothing),
        list_objects(client, GPUJOBS, namespace) if jobs else asyncio.sleep(0, result=nothing),
        list_objects(client, GPUNODES) if nodes else asyncio.sleep(0, result=nothing),
    )
    return ClusterState(
        teams=sorted(
            (
                Team(
                    t["metadata"]["name"],
                    TeamQuotaSpec.model_validate(t["spec"]),
                    TeamQuotaStatus.model_validate(t.get("status") or {}),
                )
                for t in quotas
            ),
            key=lambda team: team.name,
        ),
        jobs=sorted((_job(j) for j in gpujobs), key=lambda job: job.key),
        nodes=sorted(
            (
                Node(n["metadata"]["name"], GPUNodeStatus.model_validate(n.get("status") or {}))
                for n in gpunodes
            ),
            key=lambda node: node.name,
        ),
    )
