"""Admission rules that the CRD schema cannot express (they need other objects).

Pure functions: the webhook handlers feed them the indexed TeamQuotas and node sizes.
Every message names the field and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gpupool.api import GPUJobSpec, TeamQuotaSpec
from gpupool.api.bounds import template_problem
from gpupool.api.podtemplate import CHECKPOINT_ADDRESS_ANNOTATION


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.errors


def _schema_errors(error: ValidationError) -> list[str]:
    messages = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        messages.append(f"spec.{where}: {item['msg']}" if where else item["msg"])
    return messages


def team_of_namespace(namespace: str, teams: Mapping[str, TeamQuotaSpec]) -> str | None:
    for name in sorted(teams):
        if namespace in teams[name].namespaces:
            return name
    return None


GPU_RESOURCE = "nvidia.com/gpu"


def _template_errors(spec: GPUJobSpec) -> list[str]:
    problem = template_problem(spec.template)
    if problem is not None:
        return [problem]
    errors = []
    annotations = (spec.template.get("metadata") or {}).get("annotations") or {}
    if CHECKPOINT_ADDRESS_ANNOTATION in annotations:
        errors.append(
            f"spec.template.metadata.annotations[{CHECKPOINT_ADDRESS_ANNOTATION}]: not "
            "allowed; the checkpoint hook is sent to the job's own pods, at "
            "spec.checkpoint.httpPost.port"
        )
    pod_spec = spec.template.get("spec") or {}
    if pod_spec.get("nodeName"):
        errors.append(
            "spec.template.spec.nodeName: must be empty; gpupool chooses the nodes "
            "(use spec.placement.preferredNodes for data locality)"
        )
    for i, container in enumerate(pod_spec.get("containers") or []):
        if not container.get("image"):
            errors.append(f"spec.template.spec.containers[{i}].image: required")
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            if GPU_RESOURCE in (resources.get(kind) or {}):
                errors.append(
                    f"spec.template.spec.containers[{i}].resources.{kind}: remove "
                    f"{GPU_RESOURCE}; set spec.gpusPerWorker instead"
                )
    return errors


def validate_gpujob(
    namespace: str,
    raw_spec: Mapping[str, Any],
    teams: Mapping[str, TeamQuotaSpec],
    largest_node_gpus: int | None,
) -> Verdict:
    """Does this GPUJob belong to a team it may use, and can it ever fit?"""
    verdict = Verdict()
    try:
        spec = GPUJobSpec.model_validate(raw_spec)
    except ValidationError as error:
        verdict.errors.extend(_schema_errors(error))
        return verdict
    verdict.errors.extend(_template_errors(spec))
    team = spec.team or team_of_namespace(namespace, teams)
    if team is None:
        verdict.errors.append(
            f"spec.team: namespace {namespace!r} belongs to no TeamQuota; set spec.team or "
            "ask an administrator to add the namespace to a TeamQuota's spec.namespaces"
        )
        return verdict
    quota = teams.get(team)
    if quota is None:
        verdict.errors.append(f"spec.team: TeamQuota {team!r} does not exist")
        return verdict
    if namespace not in quota.namespaces:
        verdict.errors.append(
            f"spec.team: namespace {namespace!r} is not one of TeamQuota {team!r}'s "
            f"spec.namespaces {list(quota.namespaces)}; submit from one of those"
        )
    minimum, _ = spec.worker_range
    smallest_ask = minimum * spec.gpus_per_worker
    if quota.max_gpus is not None and smallest_ask > quota.max_gpus:
        verdict.errors.append(
            f"spec.gpusPerWorker: {minimum} worker(s) × {spec.gpus_per_worker} GPUs = "
            f"{smallest_ask} exceeds TeamQuota {team!r} maxGPUs {quota.max_gpus}; "
            "ask for fewer GPUs or a higher maxGPUs"
        )
    if largest_node_gpus is not None and spec.gpus_per_worker > largest_node_gpus:
        verdict.errors.append(
            f"spec.gpusPerWorker: {spec.gpus_per_worker} GPUs per worker, but the largest "
            f"node has {largest_node_gpus}; split the job into more workers"
        )
    if spec.priority_class_name is not None:
        names = [pc.name for pc in quota.priority_classes or ()]
        if spec.priority_class_name not in names:
            verdict.errors.append(
                f"spec.priorityClassName: {spec.priority_class_name!r} is not defined in "
                f"TeamQuota {team!r} (defined: {names or 'none'})"
            )
    return verdict


def validate_teamquota(
    name: str,
    raw_spec: Mapping[str, Any],
    others: Mapping[str, TeamQuotaSpec],
    cluster_gpus: int | None,
) -> Verdict:
    """No namespace claimed twice; warn when guarantees exceed the cluster."""
    verdict = Verdict()
    try:
        spec = TeamQuotaSpec.model_validate(raw_spec)
    except ValidationError as error:
        verdict.errors.extend(_schema_errors(error))
        return verdict
    for other_name in sorted(others):
        if other_name == name:
            continue
        shared = sorted(set(spec.namespaces) & set(others[other_name].namespaces))
        if shared:
            verdict.errors.append(
                f"spec.namespaces: {shared} already belong to TeamQuota {other_name!r}; "
                "a namespace can belong to one team only"
            )
    if cluster_gpus is not None:
        guaranteed = spec.guaranteed_gpus + sum(
            quota.guaranteed_gpus for other, quota in others.items() if other != name
        )
        if guaranteed > cluster_gpus:
            verdict.warnings.append(
                f"spec.guaranteedGPUs: guarantees across all teams add up to {guaranteed} "
                f"GPUs but the cluster has {cluster_gpus}; not every guarantee can be met"
            )
    return verdict
