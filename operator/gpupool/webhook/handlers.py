"""kopf validating handlers: the operator's indexes fed to the pure rules in `rules.py`.

Served at `/<handler id>` (`/gpujobs`, `/teamquotas`): the chart's
ValidatingWebhookConfiguration names these paths. Only CREATE and UPDATE are checked,
and an UPDATE only when the spec changes, so a dead webhook never blocks deletions and
a job whose team went away can still have its finalizers or labels edited.

The indexes follow the cluster through watches: a TeamQuota created a moment ago may
not be indexed yet, and a GPUJob for it is then refused as if the team did not exist;
submitting it again a moment later succeeds. A refusal shows in the operator's log as
kopf's "failed permanently" error line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import kopf

from gpupool.api import API_GROUP, API_VERSION, GPUJobSpec, TeamQuotaSpec
from gpupool.controller.manifests import GPU_RESOURCE
from gpupool.controller.podcheck import dry_run_worker
from gpupool.controller.records import NodeRecord, TeamRecord
from gpupool.k8s import ApiError, KubeClient
from gpupool.k8s.decoding import UNDECODABLE
from gpupool.webhook import rules
from gpupool.webhook.config import WebhookConfig
from gpupool.webhook.leader import ServingLabel
from gpupool.webhook.server import build_server

GPUJOBS_WEBHOOK = "gpujobs"
TEAMQUOTAS_WEBHOOK = "teamquotas"
WEBHOOK_IDS = (GPUJOBS_WEBHOOK, TEAMQUOTAS_WEBHOOK)
OPERATIONS: tuple[Literal["CREATE", "UPDATE"], ...] = ("CREATE", "UPDATE")

RecordIndex = Mapping[Any, Iterable[Any]]


async def configure(
    settings: kopf.OperatorSettings, client: KubeClient, serving: Callable[[], bool]
) -> WebhookConfig:
    """Serve the validators per GPUPOOL_WEBHOOK_* (nowhere without a port)."""
    config = WebhookConfig.from_env()
    label = ServingLabel.of_this_pod(client) if config.enabled else None
    if label is not None:
        await label.set(False)
    on_serving = None if label is None else functools.partial(label.set, True)
    settings.admission.server = build_server(config, serving, on_serving)
    # The chart owns the ValidatingWebhookConfiguration: the operator needs no RBAC on it.
    settings.admission.managed = None
    return config


def _latest(index: RecordIndex) -> list[Any]:
    return [list(store)[-1] for store in index.values() if store]


def team_specs(index: RecordIndex) -> dict[str, TeamQuotaSpec]:
    teams: list[TeamRecord] = _latest(index)
    return {team.name: team.spec for team in teams if team.spec is not None}


def node_gpus(index: RecordIndex) -> list[int]:
    """GPUs of every node gpupool schedules onto, ready or not (a node may come back).

    Empty while no GPU node is known (none joined yet, or scaled to zero): then sizes
    are not checked at all rather than every job refused.
    """
    nodes: list[NodeRecord] = _latest(index)
    return [node.gpus for node in nodes if node.gpus > 0]


def spec_unchanged(
    operation: str | None, body: Mapping[str, Any], old: Mapping[str, Any] | None
) -> bool:
    return operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec")


def review_gpujob(
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    operation: str | None,
    teams: RecordIndex,
    nodes: RecordIndex,
) -> rules.Verdict:
    undecodable = body.get(UNDECODABLE)
    if undecodable:
        return rules.Verdict(errors=[str(undecodable)])
    if spec_unchanged(operation, body, old):
        return rules.Verdict()
    sizes = node_gpus(nodes)
    return rules.validate_gpujob(
        str((body.get("metadata") or {}).get("namespace", "")),
        body.get("spec") or {},
        team_specs(teams),
        largest_node_gpus=max(sizes) if sizes else None,
    )


def review_teamquota(
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    operation: str | None,
    teams: RecordIndex,
    nodes: RecordIndex,
) -> rules.Verdict:
    undecodable = body.get(UNDECODABLE)
    if undecodable:
        return rules.Verdict(errors=[str(undecodable)])
    if spec_unchanged(operation, body, old):
        return rules.Verdict()
    sizes = node_gpus(nodes)
    return rules.validate_teamquota(
        str((body.get("metadata") or {}).get("name", "")),
        body.get("spec") or {},
        team_specs(teams),
        cluster_gpus=sum(sizes) if sizes else None,
    )


# The probe pod's owner: a GPUJob being created has no uid yet.
_PROBE_UID = "00000000-0000-0000-0000-000000000000"


async def dry_run_template(
    client: KubeClient | None,
    body: Mapping[str, Any],
    teams: RecordIndex,
    gpu_resource: str = GPU_RESOURCE,
) -> rules.Verdict:
    """Would the API server create this job's worker pod? Its answer names the field.

    Only a final refusal refuses the job: an API server that cannot answer now is no
    reason to refuse it (the operator dry-runs it again before preempting for it).
    """
    metadata = body.get("metadata") or {}
    namespace = str(metadata.get("namespace", ""))
    try:
        spec = GPUJobSpec.model_validate(body.get("spec") or {})
    except ValueError:
        return rules.Verdict()
    if client is None:
        return rules.Verdict()
    team = spec.team or rules.team_of_namespace(namespace, team_specs(teams)) or ""
    job = {
        "metadata": {
            "name": str(metadata.get("name") or metadata.get("generateName") or "probe"),
            "namespace": namespace,
            "uid": _PROBE_UID,
        }
    }
    try:
        problem = await dry_run_worker(client, job, spec, team, gpu_resource)
    except ApiError as error:
        return rules.Verdict(warnings=[f"the worker pod could not be checked now: {error}"])
    if problem is None:
        return rules.Verdict()
    return rules.Verdict(errors=[f"the API server refuses the worker pod: {problem}"])


def answer(verdict: rules.Verdict, warnings: list[str]) -> None:
    """Warnings go back to the client (kubectl prints them); errors refuse the request."""
    warnings.extend(verdict.warnings)
    if not verdict.allowed:
        raise kopf.AdmissionError("; ".join(verdict.errors), code=422)


# kopf passes the operator's indexes to every handler by their handler names.
@kopf.on.validate(API_GROUP, API_VERSION, "gpujobs", id=GPUJOBS_WEBHOOK, operations=OPERATIONS)
async def validate_gpujob(body: kopf.Body, warnings: list[str], **kwargs: Any) -> None:
    operation = kwargs.get("operation")
    verdict = review_gpujob(
        body,
        kwargs.get("old"),
        operation,
        kwargs["teamquota_index"],
        kwargs["node_index"],
    )
    if verdict.allowed and not spec_unchanged(operation, body, kwargs.get("old")):
        runtime = getattr(kwargs.get("memo"), "gpupool", None)
        client = getattr(runtime, "client", None)
        gpu_resource = getattr(getattr(runtime, "config", None), "gpu_resource", GPU_RESOURCE)
        checked = await dry_run_template(client, body, kwargs["teamquota_index"], str(gpu_resource))
        verdict.errors.extend(checked.errors)
        verdict.warnings.extend(checked.warnings)
    answer(verdict, warnings)


@kopf.on.validate(
    API_GROUP, API_VERSION, "teamquotas", id=TEAMQUOTAS_WEBHOOK, operations=OPERATIONS
)
async def validate_teamquota(body: kopf.Body, warnings: list[str], **kwargs: Any) -> None:
    verdict = review_teamquota(
        body,
        kwargs.get("old"),
        kwargs.get("operation"),
        kwargs["teamquota_index"],
        kwargs["node_index"],
    )
    answer(verdict, warnings)
