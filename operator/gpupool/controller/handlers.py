"""kopf handlers: the indexes, the kicks that trigger the loop, and start-up/shut-down.

Handlers only keep the indexes and wake the loop; they never call the API server, and
they are all `async def` (a sync handler would take a thread each). Scheduling happens
in the one loop (`loop.Scheduler`), started at start-up and running only on the leader.

kopf invokes resource handlers other than indexers only once every index has been
filled by its initial listing, so the first kick also tells the loop that its view of
the cluster is complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from prometheus_client import start_http_server

from gpupool.api import API_GROUP, API_VERSION
from gpupool.controller import kopf_fixes
from gpupool.controller.kopf_diffbase import NoDiffBase, check_no_change_handlers
from gpupool.controller.leadership import is_leader
from gpupool.controller.login import connection_info
from gpupool.controller.loop import LeadershipLost, Scheduler
from gpupool.controller.metrics import METRICS, REGISTRY
from gpupool.controller.records import (
    GPUNodeRecord,
    GPUPodRecord,
    JobKey,
    JobRecord,
    NodeRecord,
    PodRecord,
    TeamRecord,
    gpu_pod_record,
    gpunode_record,
    job_record,
    node_record,
    pod_record,
    team_record,
)
from gpupool.controller.settings import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OperatorConfig,
    configure_kopf,
)
from gpupool.controller.snapshot import Indexed
from gpupool.k8s import ClientSettings, KubeClient
from gpupool.k8s.events import EventRecorder
from gpupool.k8s.peering import ensure_peering, read_peers
from gpupool.webhook import handlers as webhook

logger = logging.getLogger(__name__)

kopf_fixes.apply()

_config: OperatorConfig | None = None


def use_config(config: OperatorConfig) -> None:
    """Set the configuration before kopf starts (`gpupool operator` does)."""
    global _config
    _config = config


def current_config() -> OperatorConfig:
    """The configuration set by `use_config`, else from the environment (`kopf run`),
    read once."""
    global _config
    if _config is None:
        _config = OperatorConfig.from_env()
    return _config


# --- indexes -------------------------------------------------------------------------------


@kopf.index(API_GROUP, API_VERSION, "gpujobs")
async def gpujob_index(body: kopf.Body, **_: Any) -> dict[JobKey, JobRecord]:
    record = job_record(body)
    return {record.key: record}


@kopf.index(API_GROUP, API_VERSION, "teamquotas")
async def teamquota_index(body: kopf.Body, **_: Any) -> dict[str, TeamRecord]:
    record = team_record(body)
    return {record.name: record}


@kopf.index(API_GROUP, API_VERSION, "gpunodes")
async def gpunode_index(body: kopf.Body, **_: Any) -> dict[str, GPUNodeRecord]:
    record = gpunode_record(body)
    return {record.node: record}


@kopf.index("", "v1", "nodes")
async def node_index(body: kopf.Body, **_: Any) -> dict[str, NodeRecord]:
    record = node_record(body, current_config().gpu_resource)
    return {record.name: record}


@kopf.index("", "v1", "pods")
async def pod_index(body: kopf.Body, **_: Any) -> dict[JobKey, PodRecord]:
    record = pod_record(body, current_config().gpu_resource)
    return {} if record is None else {record.job_key: record}


@kopf.index("", "v1", "pods")
async def gpu_pod_index(body: kopf.Body, **_: Any) -> dict[str, GPUPodRecord]:
    """Every other pod holding GPUs, by node: they share the nodes with gpupool's."""
    record = gpu_pod_record(body, current_config().gpu_resource)
    return {} if record is None else {record.node: record}


class KopfSources:
    """The loop's read-only view of kopf's indexes."""

    def __init__(self, indices: Mapping[str, Any]) -> None:
        self._jobs: kopf.Index[JobKey, JobRecord] = indices["gpujob_index"]
        self._teams: kopf.Index[str, TeamRecord] = indices["teamquota_index"]
        self._gpunodes: kopf.Index[str, GPUNodeRecord] = indices["gpunode_index"]
        self._nodes: kopf.Index[str, NodeRecord] = indices["node_index"]
        self._pods: kopf.Index[JobKey, PodRecord] = indices["pod_index"]
        self._gpu_pods: kopf.Index[str, GPUPodRecord] = indices["gpu_pod_index"]

    @staticmethod
    def _one(index: kopf.Index[Any, Any], key: Any) -> Any:
        store = index.get(key)
        if not store:
            return None
        # Briefly two objects share a name (deleted and created again): the newest wins.
        return list(store)[-1]

    def read(self) -> Indexed:
        return Indexed(
            jobs={key: list(store)[-1] for key, store in self._jobs.items() if store},
            teams={key: list(store)[-1] for key, store in self._teams.items() if store},
            nodes={key: list(store)[-1] for key, store in self._nodes.items() if store},
            gpunodes={key: list(store)[-1] for key, store in self._gpunodes.items() if store},
            pods={key: tuple(store) for key, store in self._pods.items() if store},
            gpu_pods={key: tuple(store) for key, store in self._gpu_pods.items() if store},
        )

    def job(self, key: JobKey) -> JobRecord | None:
        record: JobRecord | None = self._one(self._jobs, key)
        return record

    def team(self, name: str) -> TeamRecord | None:
        record: TeamRecord | None = self._one(self._teams, name)
        return record

    def pods(self, key: JobKey) -> tuple[PodRecord, ...]:
        store = self._pods.get(key)
        return tuple(store) if store else ()

    def node(self, name: str) -> NodeRecord | None:
        record: NodeRecord | None = self._one(self._nodes, name)
        return record


# --- kicks: which changes are worth a cycle ------------------------------------------------


class Fingerprints:
    """The scheduling-relevant part of objects that change for other reasons too.

    Nodes heartbeat and agents publish utilization every few seconds; only readiness,
    capacity and GPU health should wake the loop (the periodic tick picks up the rest).
    Our own status writes change GPUJobs; only spec changes and deletions matter.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], object] = {}

    def changed(self, kind: str, key: str, fingerprint: object) -> bool:
        if self._seen.get((kind, key)) == fingerprint:
            return False
        self._seen[(kind, key)] = fingerprint
        return True

    def forget(self, kind: str, key: str) -> None:
        self._seen.pop((kind, key), None)


def _runtime(memo: Any) -> Runtime | None:
    runtime: Runtime | None = getattr(memo, "gpupool", None)
    return runtime


def _kick(memo: Any, event: Mapping[str, Any], kind: str, key: str, fingerprint: object) -> None:
    runtime = _runtime(memo)
    if runtime is None:
        return
    runtime.scheduler.ready.set()
    if event.get("type") == "DELETED":
        runtime.fingerprints.forget(kind, key)
        runtime.scheduler.kick()
    elif runtime.fingerprints.changed(kind, key, fingerprint):
        runtime.scheduler.kick()


@kopf.on.event(API_GROUP, API_VERSION, "gpujobs")
async def gpujob_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    metadata = body.get("metadata") or {}
    fingerprint = (metadata.get("uid"), metadata.get("generation"), "deletionTimestamp" in metadata)
    _kick(memo, event, "job", f"{metadata.get('namespace')}/{metadata.get('name')}", fingerprint)


@kopf.on.event(API_GROUP, API_VERSION, "teamquotas")
async def teamquota_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    metadata = body.get("metadata") or {}
    _kick(memo, event, "team", str(metadata.get("name")), metadata.get("generation"))


@kopf.on.event(API_GROUP, API_VERSION, "gpunodes")
async def gpunode_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    record = gpunode_record(body)
    fingerprint = tuple((d.index, d.healthy, d.pod) for d in record.unhealthy)
    _kick(memo, event, "gpunode", record.node, fingerprint)


@kopf.on.event("", "v1", "nodes")
async def node_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    record = node_record(body, current_config().gpu_resource)
    _kick(memo, event, "node", record.name, record)


@kopf.on.event("", "v1", "pods")
async def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """gpupool's workers always wake the loop; other pods only when the GPUs they hold
    change (most pods of a cluster hold none and never do)."""
    runtime = _runtime(memo)
    if runtime is None:
        return
    runtime.scheduler.ready.set()
    metadata = body.get("metadata") or {}
    if (metadata.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
        runtime.scheduler.kick()
        return
    uid = str(metadata.get("uid"))
    deleted = event.get("type") == "DELETED"
    record = None if deleted else gpu_pod_record(body, current_config().gpu_resource)
    if runtime.fingerprints.changed("pod", uid, record):
        runtime.scheduler.kick()
    if record is None:
        runtime.fingerprints.forget("pod", uid)


# --- start-up and shut-down ----------------------------------------------------------------


class Runtime:
    """What the operator runs besides kopf: the API client, Event poster and the loop."""

    def __init__(self, config: OperatorConfig, indices: Mapping[str, Any]) -> None:
        self.config = config
        self.client = KubeClient.from_kubeconfig(
            config.kubeconfig, settings=ClientSettings(on_error=METRICS.count_api_error)
        )
        self.recorder = EventRecorder(self.client, instance=config.instance)
        self.fingerprints = Fingerprints()
        self.stop = asyncio.Event()
        leading = None if config.standalone else self._leading
        self.scheduler = Scheduler(
            self.client, KopfSources(indices), self.recorder, config=config, leading=leading
        )
        self.recorder.defer_while(self.scheduler.behind)
        self.task: asyncio.Task[None] | None = None

    async def _leading(self) -> bool:
        peers = await read_peers(self.client, self.config.peering_name)
        return is_leader(peers, self.config.priority, datetime.now(UTC))

    def start(self) -> None:
        if self.config.metrics_port:
            # prometheus_client serves from its own thread: nothing blocks the event loop.
            start_http_server(
                self.config.metrics_port, addr=self.config.metrics_address, registry=REGISTRY
            )
        self.task = asyncio.create_task(self._run(), name="gpupool scheduling loop")

    async def _run(self) -> None:
        try:
            await self.scheduler.run(self.stop)
        except LeadershipLost as lost:
            # The indexes froze when kopf paused this instance; a fresh start is the
            # only way to trust them again. SIGTERM lets kopf shut down cleanly.
            logger.warning("%s: restarting as a standby", lost)
            os.kill(os.getpid(), signal.SIGTERM)

    async def close(self) -> None:
        self.stop.set()
        self.scheduler.kick()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.close()


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    return await connection_info(current_config().kubeconfig)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    config = current_config()
    configure_kopf(settings, config)
    check_no_change_handlers(kopf.get_default_registry())
    settings.persistence.diffbase_storage = NoDiffBase()
    runtime = Runtime(config, kwargs)
    if not config.standalone:
        await ensure_peering(runtime.client, config.peering_name)
    memo.gpupool = runtime
    # Validators answer from the indexes, so only the leading instance may serve them.
    webhook_config = await webhook.configure(
        settings, runtime.client, serving=lambda: runtime.scheduler.led
    )
    runtime.start()
    logger.info(
        "gpupool operator started (%s)",
        "standalone"
        if config.standalone
        else f"peering {config.peering_name} priority {config.priority}",
    )
    if webhook_config.enabled:
        logger.info("admission webhooks on %s:%d", webhook_config.addr, webhook_config.port)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = _runtime(memo)
    if runtime is not None:
        await runtime.close()
