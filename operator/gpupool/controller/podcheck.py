"""Can the API server create this job's worker pod? A server-side dry run says, naming the field.

gpupool never preempts anyone for a job before it has shown that its pods can be created:
a template the API server refuses (a 300 KiB annotation, a container without an image)
used to reclaim a borrower's GPUs on every retry, forever. The dry run goes through the
API server's whole validation and admission chain and stores nothing. The webhook asks
the same question at admission.

A refusal that will not change by trying again — 400 Bad Request, 413 Request Entity
Too Large, 422 Invalid — is final for that spec; anything else (a quota, a webhook that
is down, overload) is worth another try.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpupool.api import GPUJobSpec
from gpupool.controller.manifests import worker_pod
from gpupool.k8s import PODS, ApiError, KubeClient

PERMANENT_STATUSES = frozenset({400, 413, 422})
# Refusals of the real pods a job may meet (with back-off) before it is failed.
MAX_POD_REFUSALS = 3


def refused_for_good(error: ApiError) -> bool:
    return error.status in PERMANENT_STATUSES


def template_field(pod_field: str) -> str:
    """A worker pod's field as the GPUJob's: `spec.containers[0].image` ->
    `spec.template.spec.containers[0].image`."""
    return f"spec.template.{pod_field}" if pod_field else "spec.template"


def describe_refusal(error: ApiError) -> str:
    """What the API server found wrong, each cause under the GPUJob field it comes from."""
    body = error.body if isinstance(error.body, Mapping) else {}
    details = body.get("details") if isinstance(body.get("details"), Mapping) else {}
    causes = details.get("causes") if isinstance(details, Mapping) else None
    found = [
        f"{template_field(str(cause.get('field') or ''))}: {cause.get('message', '')}".strip()
        for cause in causes or ()
        if isinstance(cause, Mapping)
    ]
    reason = error.reason or str(error.status)
    if found:
        return f"{reason}: " + "; ".join(found[:5])
    return f"{reason}: {error.message[:300]}"


def probe_pod(job: Mapping[str, Any], spec: GPUJobSpec, team: str) -> dict[str, Any]:
    """Worker 0 as the job would get it (not bound: a dry run needs no node)."""
    body = worker_pod(
        job,
        spec,
        team=team,
        index=0,
        world_size=spec.worker_range[1],
        node="",
        incarnation=0,
        resume_from=None,
    )
    body["spec"].pop("nodeName", None)
    return body


async def dry_run_worker(
    client: KubeClient, job: Mapping[str, Any], spec: GPUJobSpec, team: str
) -> str | None:
    """None if the API server would create the worker pod; else why not (final).

    Raises `ApiError` when the answer is not final (see the module docstring).
    """
    namespace = str(job["metadata"]["namespace"])
    try:
        await client.create(PODS, probe_pod(job, spec, team), namespace, dry_run=True)
    except ApiError as error:
        if refused_for_good(error):
            return describe_refusal(error)
        if error.conflict:
            # A pod of that name exists: the name is all the dry run could not check.
            return None
        raise
    return None
