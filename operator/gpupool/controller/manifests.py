"""The objects gpupool creates for a GPUJob: worker pods and the headless Service.

Pure builders (no I/O), called once per worker in admission bursts of thousands of
pods, so they copy only what they change: the returned pod is a fresh dict at every
level gpupool writes (metadata, spec, containers, their env, resources and
terminationMessagePath, tolerations); every other nested value of the template
(volumes, affinity, securityContext, ...) is shared with `spec.template` and must be
treated as read-only by callers.

Naming. A worker pod is `<job>-<incarnation>-<index>`, also its `hostname`; its
`subdomain` is the job's headless Service, so every worker resolves as
`<pod>.<service>.<namespace>.svc`. The incarnation is part of the hostname on
purpose: the Service publishes not-ready (and so terminating) pods, and a worker of
the previous incarnation may still be terminating inside its checkpoint grace period
when the next one starts; with a shared hostname, `MASTER_ADDR` could resolve to the
dying rank 0. Names stay valid DNS labels (at most 63 characters): a job name that is
too long or not a label is cut and suffixed with a short hash of the full name, so
distinct jobs keep distinct names.

A job that can never have more than one worker gets no Service (no worker needs to
find rank 0; `MASTER_ADDR` is `localhost`): a Service also makes the control plane
write an Endpoints and an EndpointSlice object, writes that single-GPU jobs, the bulk
of a busy queue, do not need.

GPUs. Only the first container gets `nvidia.com/gpu` (limits and requests =
`gpusPerWorker`); it is removed from every other container, init containers included.
The admission webhook rejects templates that set `nvidia.com/gpu` at all; the builder
enforces the same rule for objects admitted without it, because a pod asking for more
GPUs than the planner counted would be bound to a node that cannot run it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gpupool.api import GROUP_VERSION, GPUJobSpec

GPU_RESOURCE = "nvidia.com/gpu"

LABEL_JOB = "gpupool.io/job"
LABEL_TEAM = "gpupool.io/team"
LABEL_WORKER_INDEX = "gpupool.io/worker-index"
LABEL_INCARNATION = "gpupool.io/incarnation"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "gpupool"

DEFAULT_MASTER_PORT = 29500
# A job that can only ever have one worker has no Service: its rank 0 is itself.
SINGLE_WORKER_MASTER_ADDR = "localhost"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


def gpu_toleration(resource: str = GPU_RESOURCE) -> dict[str, str]:
    """GPU nodes are commonly tainted with their GPU resource's name (NoSchedule)."""
    return {"key": resource, "operator": "Exists", "effect": "NoSchedule"}


# Variables gpupool owns: a template entry with the same name is replaced, so ranks
# can never disagree with the placement. MASTER_PORT is deliberately not here: the
# template may choose the rendezvous port.
_OWNED_ENV = frozenset(
    {
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "GPUPOOL_JOB",
        "GPUPOOL_NAMESPACE",
        "GPUPOOL_TEAM",
        "GPUPOOL_WORKER_INDEX",
        "GPUPOOL_INCARNATION",
        "GPUPOOL_RESTART_COUNT",
        "GPUPOOL_RESUME_FROM",
        "GPUPOOL_CHECKPOINT_MODE",
        "GPUPOOL_CHECKPOINT_TIMEOUT",
        "GPUPOOL_CHECKPOINT_PORT",
        "GPUPOOL_CHECKPOINT_PATH",
        "GPUPOOL_TERMINATION_LOG",
    }
)

_MAX_NAME = 63
_HASH_CHARS = 8
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NOT_LABEL_CHARS = re.compile(r"[^a-z0-9-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]


def dns_label(base: str, suffix: str = "", *, letter_first: bool = False) -> str:
    """`base + suffix` as a DNS label of at most 63 characters.

    `suffix` must already be label characters (e.g. `-3-0`). When `base + suffix` is
    not a valid label as is, `base` is cleaned, cut and followed by a hash of the
    original. `letter_first` gives an RFC 1035 label (what Service names must be).
    """
    candidate = base + suffix
    if (
        len(candidate) <= _MAX_NAME
        and _DNS_LABEL.fullmatch(candidate)
        and (not letter_first or candidate[0].isalpha())
    ):
        return candidate
    prefix = "g" if letter_first else ""
    room = _MAX_NAME - len(prefix) - len(suffix) - _HASH_CHARS - 1
    clean = _NOT_LABEL_CHARS.sub("-", base.lower())[: max(room, 0)].strip("-")
    if letter_first and clean[:1].isalpha():
        prefix = ""
    head = f"{prefix}{clean}-{_digest(base)}" if clean else f"g{_digest(base)}"
    return head + suffix


def label_value(text: str) -> str:
    """`text` as a label value (at most 63 characters; cut + hash when longer)."""
    if len(text) <= _MAX_NAME:
        return text
    return f"{text[: _MAX_NAME - _HASH_CHARS - 1].rstrip('-._')}-{_digest(text)}"


def pod_name(job_name: str, incarnation: int, index: int) -> str:
    """Worker pod name (and hostname): `<job>-<incarnation>-<index>`."""
    return dns_label(job_name, f"-{incarnation}-{index}")


def service_name(job_name: str) -> str:
    """The job's headless Service; the workers' `subdomain`."""
    return dns_label(job_name, letter_first=True)


def job_selector(job_name: str) -> str:
    """Label selector for every pod of the job (all incarnations)."""
    return f"{LABEL_JOB}={label_value(job_name)}"


def needs_service(spec: GPUJobSpec) -> bool:
    """Whether the job's workers must find each other: it may ever have two or more."""
    return spec.worker_range[1] > 1


def master_addr(job_name: str, namespace: str, incarnation: int) -> str:
    """DNS name of rank 0 of this incarnation, through the headless Service."""
    return f"{pod_name(job_name, incarnation, 0)}.{service_name(job_name)}.{namespace}.svc"


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    """Controller reference to the GPUJob: garbage collection deletes what it owns."""
    metadata = job["metadata"]
    return {
        "apiVersion": job.get("apiVersion", GROUP_VERSION),
        "kind": "GPUJob",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _job_labels(job_name: str, team: str) -> dict[str, str]:
    return {
        LABEL_JOB: label_value(job_name),
        LABEL_TEAM: label_value(team),
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def rendezvous_port(spec: GPUJobSpec) -> int:
    """MASTER_PORT: the first literal value the template's containers set, else 29500."""
    for container in spec.template["spec"]["containers"]:
        for variable in container.get("env") or ():
            if variable.get("name") == "MASTER_PORT" and "value" in variable:
                try:
                    return int(variable["value"])
                except (TypeError, ValueError):
                    continue
    return DEFAULT_MASTER_PORT


def worker_pod(
    job: Mapping[str, Any],
    spec: GPUJobSpec,
    *,
    team: str,
    index: int,
    world_size: int,
    node: str,
    incarnation: int,
    resume_from: str | None,
    extra_tolerations: Sequence[Mapping[str, Any]] = (),
    gpu_resource: str = GPU_RESOURCE,
) -> dict[str, Any]:
    """Worker `index` of `world_size` of the job's `incarnation`, bound to `node`.

    `job` is the GPUJob object (metadata name, namespace and uid are used); `spec`
    its parsed spec; `resume_from` the checkpoint location to resume from, if any;
    `gpu_resource` the extended resource the GPUs are requested as.
    """
    metadata = job["metadata"]
    job_name: str = metadata["name"]
    namespace: str = metadata["namespace"]
    name = pod_name(job_name, incarnation, index)
    template_meta: Mapping[str, Any] = spec.template.get("metadata") or {}
    template_spec: Mapping[str, Any] = spec.template["spec"]
    hook = spec.checkpoint

    labels = {
        **(template_meta.get("labels") or {}),
        **_job_labels(job_name, team),
        LABEL_WORKER_INDEX: str(index),
        LABEL_INCARNATION: str(incarnation),
    }
    pod_metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner_reference(job)],
    }
    if template_meta.get("annotations"):
        pod_metadata["annotations"] = dict(template_meta["annotations"])

    port = rendezvous_port(spec)
    service = needs_service(spec)
    values = {
        "WORLD_SIZE": str(world_size),
        "RANK": str(index),
        "LOCAL_RANK": "0",
        "MASTER_ADDR": (
            master_addr(job_name, namespace, incarnation) if service else SINGLE_WORKER_MASTER_ADDR
        ),
        "GPUPOOL_JOB": job_name,
        "GPUPOOL_NAMESPACE": namespace,
        "GPUPOOL_TEAM": team,
        "GPUPOOL_WORKER_INDEX": str(index),
        "GPUPOOL_INCARNATION": str(incarnation),
        "GPUPOOL_RESTART_COUNT": str(incarnation),
    }
    if resume_from is not None:
        values["GPUPOOL_RESUME_FROM"] = resume_from
    if hook is not None:
        values["GPUPOOL_CHECKPOINT_MODE"] = hook.mode
        values["GPUPOOL_CHECKPOINT_TIMEOUT"] = str(hook.timeout_seconds)
        if hook.mode == "httpPost" and hook.http_post is not None:
            values["GPUPOOL_CHECKPOINT_PORT"] = str(hook.http_post.port)
            values["GPUPOOL_CHECKPOINT_PATH"] = hook.http_post.path
    shared_env = [{"name": key, "value": value} for key, value in values.items()]

    containers = [
        _worker_container(
            container,
            gpus=spec.gpus_per_worker if position == 0 else 0,
            shared_env=shared_env,
            master_port=port,
            resource=gpu_resource,
        )
        for position, container in enumerate(template_spec["containers"])
    ]

    pod_spec = dict(template_spec)
    pod_spec["containers"] = containers
    if template_spec.get("initContainers"):
        pod_spec["initContainers"] = [
            _without_gpus(container, gpu_resource) for container in template_spec["initContainers"]
        ]
    pod_spec["nodeName"] = node
    pod_spec["hostname"] = name
    if service:
        pod_spec["subdomain"] = service_name(job_name)
    else:
        pod_spec.pop("subdomain", None)
    pod_spec["restartPolicy"] = "Never"
    pod_spec["tolerations"] = _merge_tolerations(
        template_spec.get("tolerations") or (), [gpu_toleration(gpu_resource)], extra_tolerations
    )
    if hook is not None and hook.mode == "signal":
        pod_spec["terminationGracePeriodSeconds"] = hook.timeout_seconds

    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_metadata, "spec": pod_spec}


def _with_gpus(
    resources: Mapping[str, Any] | None, gpus: int, resource: str
) -> dict[str, Any] | None:
    """`resources` with exactly `gpus` of `resource` (none when 0); None if left empty."""
    result: dict[str, Any] = dict(resources or {})
    for kind in ("limits", "requests"):
        amounts = dict(result.get(kind) or {})
        if gpus:
            amounts[resource] = str(gpus)
        else:
            amounts.pop(resource, None)
        if amounts:
            result[kind] = amounts
        else:
            result.pop(kind, None)
    return result or None


def _without_gpus(container: Mapping[str, Any], resource: str) -> dict[str, Any]:
    result = dict(container)
    resources = _with_gpus(container.get("resources"), 0, resource)
    if resources is None:
        result.pop("resources", None)
    else:
        result["resources"] = resources
    return result


def _worker_container(
    container: Mapping[str, Any],
    *,
    gpus: int,
    shared_env: list[dict[str, str]],
    master_port: int,
    resource: str,
) -> dict[str, Any]:
    result = _without_gpus(container, resource) if gpus == 0 else dict(container)
    if gpus:
        result["resources"] = _with_gpus(container.get("resources"), gpus, resource)
    log_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_LOG
    result["terminationMessagePath"] = log_path

    own = [
        variable
        for variable in container.get("env") or ()
        if variable.get("name") not in _OWNED_ENV
    ]
    # gpupool's variables come first so the template's own can refer to them ($(RANK)).
    env = [dict(variable) for variable in shared_env]
    if not any(variable.get("name") == "MASTER_PORT" for variable in own):
        env.append({"name": "MASTER_PORT", "value": str(master_port)})
    env.append({"name": "GPUPOOL_TERMINATION_LOG", "value": log_path})
    env.extend(own)
    result["env"] = env
    return result


def _merge_tolerations(*groups: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for group in groups:
        for toleration in group:
            if toleration not in merged:
                merged.append(dict(toleration))
    return merged


def headless_service(job: Mapping[str, Any], spec: GPUJobSpec, *, team: str) -> dict[str, Any]:
    """The headless Service that gives every worker its DNS name (for MASTER_ADDR).

    It publishes not-ready addresses because rank 0 must be resolvable while the
    workers are still starting (they rendezvous before any readiness probe passes).
    """
    metadata = job["metadata"]
    job_name: str = metadata["name"]
    port = rendezvous_port(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(job_name),
            "namespace": metadata["namespace"],
            "labels": _job_labels(job_name, team),
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_JOB: label_value(job_name)},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
