"""Can the API server create this job's worker pod? A server-side dry run says, naming the field.

gpupool never preempts anyone for a job before it has shown that its pods can be created:
a template the API server refuses (a 300 KiB annotation, a container without an image)
used to reclaim a borrower's GPUs on every retry, forever. The dry run goes through the
API server's whole validation and admission chain and stores nothing. The webhook asks
the same question at admission.

Jobs of one shape — namespace, team, spec — get the same pod but for its name: a reclaim
burst of 2,000 identical jobs dry-runs one pod, not 2,000 (`DryRuns`, answers kept for a
minute, one request in flight per shape).

A refusal that will not change by trying again — 400 Bad Request, 413 Request Entity
Too Large, 422 Invalid — is final for that spec; anything else (a quota, a webhook that
is down, overload) is worth another try.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from gpupool.api import GPUJobSpec
from gpupool.controller.manifests import GPU_RESOURCE, worker_pod
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


def probe_pod(
    job: Mapping[str, Any], spec: GPUJobSpec, team: str, gpu_resource: str = GPU_RESOURCE
) -> dict[str, Any]:
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
        gpu_resource=gpu_resource,
    )
    body["spec"].pop("nodeName", None)
    return body


async def dry_run_worker(
    client: KubeClient,
    job: Mapping[str, Any],
    spec: GPUJobSpec,
    team: str,
    gpu_resource: str = GPU_RESOURCE,
) -> str | None:
    """None if the API server would create the worker pod; else why not (final).

    Raises `ApiError` when the answer is not final (see the module docstring).
    """
    namespace = str(job["metadata"]["namespace"])
    try:
        await client.create(PODS, probe_pod(job, spec, team, gpu_resource), namespace, dry_run=True)
    except ApiError as error:
        if refused_for_good(error):
            return describe_refusal(error)
        if error.conflict:
            # A pod of that name exists: the name is all the dry run could not check.
            return None
        raise
    return None


def shape_of(namespace: str, team: str, spec: GPUJobSpec) -> bytes:
    """What a dry run's answer depends on, besides the job's name."""
    document = orjson.dumps([namespace, team, spec.to_k8s()], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(document).digest()


class DryRuns:
    """Dry-run answers by job shape: shared while in flight, kept for `ttl_seconds`."""

    def __init__(self, monotonic: Callable[[], float], ttl_seconds: float = 60.0) -> None:
        self._monotonic = monotonic
        self._ttl = ttl_seconds
        self._answers: dict[bytes, tuple[float, str | None]] = {}
        self._flying: dict[bytes, asyncio.Future[str | None]] = {}

    async def answer(self, shape: bytes, ask: Callable[[], Awaitable[str | None]]) -> str | None:
        """`ask()`'s answer for this shape (raises what it raises; errors are not kept)."""
        now = self._monotonic()
        known = self._answers.get(shape)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        flying = self._flying.get(shape)
        if flying is not None:
            return await asyncio.shield(flying)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._flying[shape] = future
        try:
            result = await ask()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(result)
            self._answers = {
                key: value for key, value in self._answers.items() if now - value[0] < self._ttl
            }
            self._answers[shape] = (now, result)
            return result
        finally:
            del self._flying[shape]
