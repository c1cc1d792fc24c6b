"""Admission rules that need other objects: team membership, sizes, namespace ownership."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509

from gpupool.api import TeamQuotaSpec
from gpupool.webhook.certs import self_signed
from gpupool.webhook.rules import validate_gpujob, validate_teamquota

TEAMS = {
    "vision": TeamQuotaSpec.model_validate(
        {
            "namespaces": ["vision-train"],
            "guaranteedGPUs": 16,
            "maxGPUs": 32,
            "priorityClasses": [{"name": "prod", "value": 100}],
        }
    ),
    "nlp": TeamQuotaSpec.model_validate({"namespaces": ["nlp"], "guaranteedGPUs": 8}),
}


def job(**spec: Any) -> dict[str, Any]:
    container = {"name": "train", "image": "pytorch:2"}
    return {
        "gpusPerWorker": 8,
        "workers": 2,
        "template": {"spec": {"containers": [container]}},
        **spec,
    }


def test_job_in_its_teams_namespace_is_allowed() -> None:
    verdict = validate_gpujob("vision-train", job(), TEAMS, largest_node_gpus=8)
    assert verdict.allowed, verdict.errors


@pytest.mark.parametrize(
    ("namespace", "spec", "expected"),
    [
        ("default", job(), "namespace 'default' belongs to no TeamQuota"),
        ("nlp", job(team="vision"), "'nlp' is not one of TeamQuota 'vision'"),
        ("vision-train", job(team="ghost"), "TeamQuota 'ghost' does not exist"),
        ("vision-train", job(workers=5), "40 exceeds TeamQuota 'vision' maxGPUs 32"),
        ("vision-train", job(gpusPerWorker=16, workers=1), "the largest node has 8"),
        ("vision-train", job(priorityClassName="urgent"), "'urgent' is not defined"),
        ("vision-train", job(gpusPerWorker=0), "spec.gpusPerWorker"),
    ],
)
def test_job_rejections_name_the_field(namespace: str, spec: dict[str, Any], expected: str) -> None:
    verdict = validate_gpujob(namespace, spec, TEAMS, largest_node_gpus=8)
    assert not verdict.allowed
    assert any(expected in error for error in verdict.errors), verdict.errors
    assert all(error.startswith("spec.") for error in verdict.errors), verdict.errors


def test_template_may_not_pick_nodes_or_gpus() -> None:
    container = {"name": "t", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 8}}}
    spec = job(template={"spec": {"nodeName": "n1", "containers": [container]}})
    errors = validate_gpujob("vision-train", spec, TEAMS, largest_node_gpus=8).errors
    assert any("spec.template.spec.nodeName" in e for e in errors)
    assert any("set spec.gpusPerWorker instead" in e for e in errors)


def test_namespace_claimed_by_two_teams_is_rejected() -> None:
    verdict = validate_teamquota(
        "new", {"namespaces": ["nlp", "fresh"], "guaranteedGPUs": 1}, TEAMS, cluster_gpus=64
    )
    assert verdict.errors == [
        "spec.namespaces: ['nlp'] already belong to TeamQuota 'nlp'; "
        "a namespace can belong to one team only"
    ]


def test_updating_a_team_does_not_conflict_with_itself() -> None:
    spec = {"namespaces": ["nlp"], "guaranteedGPUs": 4}
    assert validate_teamquota("nlp", spec, TEAMS, cluster_gpus=64).allowed


def test_guarantees_above_capacity_warn_but_admit() -> None:
    verdict = validate_teamquota("big", {"namespaces": ["b"], "guaranteedGPUs": 50}, TEAMS, 64)
    assert verdict.allowed
    assert "add up to 74 GPUs but the cluster has 64" in verdict.warnings[0]


def test_self_signed_certificate_covers_ip_and_dns() -> None:
    cert = x509.load_pem_x509_certificate(self_signed(["127.0.0.1", "gpupool.svc"]).cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["gpupool.svc"]
