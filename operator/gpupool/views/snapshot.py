"""The scheduler's snapshot, built offline from listed objects by the operator's own code.

The objects go through the same record parsers as the operator's indexes and the same
`observe` / `build_snapshot` steps as its loop, with an empty cache and ledgers seeded
from status: exactly what a freshly started operator would plan on. Two inputs only the
running operator has are approximated: decayed usage is taken as last written to
TeamQuota status, and admissions whose pods do not exist yet are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.controller.cache import SchedulingCache
from gpupool.controller.ledger import Ledgers
from gpupool.controller.manifests import GPU_RESOURCE
from gpupool.controller.records import (
    GPUPodRecord,
    JobKey,
    PodRecord,
    gpu_pod_record,
    gpunode_record,
    job_record,
    node_record,
    pod_record,
    team_record,
)
from gpupool.controller.settings import OperatorConfig
from gpupool.controller.snapshot import Indexed, Observation, build_snapshot, observe
from gpupool.controller.usage import TeamUsage
from gpupool.k8s import GPUJOBS, GPUNODES, NODES, PODS, TEAMQUOTAS, KubeClient
from gpupool.planner import Snapshot
from gpupool.views.state import list_objects, list_together


@dataclass(frozen=True)
class Offline:
    """The operator's view of the cluster at `now`, and the snapshot it would plan on."""

    indexed: Indexed
    observation: Observation
    snapshot: Snapshot
    now: float


async def read_indexed(
    client: KubeClient, node_selector: str = "", gpu_resource: str = GPU_RESOURCE
) -> Indexed:
    """List what the operator indexes (the same objects, the same selectors)."""
    jobs, teams, nodes, gpunodes, pods = await list_together(
        list_objects(client, GPUJOBS),
        list_objects(client, TEAMQUOTAS),
        list_objects(client, NODES, label_selector=node_selector or None),
        list_objects(client, GPUNODES),
        list_objects(client, PODS),
    )
    by_job: dict[JobKey, list[PodRecord]] = {}
    by_node: dict[str, list[GPUPodRecord]] = {}
    for body in pods:
        record = pod_record(body, gpu_resource)
        if record is not None:
            by_job.setdefault(record.job_key, []).append(record)
        elif (other := gpu_pod_record(body, gpu_resource)) is not None:
            by_node.setdefault(other.node, []).append(other)
    return Indexed(
        jobs={r.key: r for r in map(job_record, jobs)},
        teams={r.name: r for r in map(team_record, teams)},
        nodes={r.name: r for r in (node_record(body, gpu_resource) for body in nodes)},
        gpunodes={r.node: r for r in map(gpunode_record, gpunodes)},
        pods={key: tuple(records) for key, records in by_job.items()},
        gpu_pods={node: tuple(records) for node, records in by_node.items()},
    )


def offline_snapshot(indexed: Indexed, config: OperatorConfig, now: float) -> Offline:
    """Steps 1–2 of the operator's cycle on `indexed` (pure)."""
    cache = SchedulingCache(ttl_seconds=config.assume_ttl_seconds)
    observation = observe(indexed, Ledgers(), cache, now=now, busy=set())
    usage = {name: TeamUsage.from_status(record.status) for name, record in indexed.teams.items()}
    snapshot = build_snapshot(indexed, observation, usage, config.planner_config())
    return Offline(indexed, observation, snapshot, now)
