"""How the workload controllers' webhook configurations are rendered from their modules
(no cluster, no Go: a module directory laid out as upstream's)."""

from __future__ import annotations

import base64
import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from gpupool.devcluster import binaries, certificates, controller_specs, controllers, webhooks


def hook(name: str, group: str, resource: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {"name": "webhook-service", "namespace": "system", "path": path}
        },
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "rules": [
            {
                "apiGroups": [group],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": [resource],
            }
        ],
    }


def module(tmp_path: Path, webhooks: list[dict[str, Any]], kustomization: dict[str, Any]) -> Path:
    base = tmp_path / "config" / "webhook"
    base.mkdir(parents=True)
    (base / "manifests.yaml").write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": "MutatingWebhookConfiguration",
                    "metadata": {"name": "mutating-webhook-configuration"},
                    "webhooks": webhooks,
                }
            ]
        )
    )
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return base


def described(keep: Any = None) -> webhooks.Webhooks:
    return webhooks.Webhooks(
        manifest="config/webhook/manifests.yaml",
        kustomization="config/webhook/kustomization.yaml",
        name_prefix="demo-",
        **({"keep": keep} if keep else {}),
    )


def test_each_webhook_calls_the_process_on_loopback_with_our_ca(tmp_path: Path) -> None:
    module(tmp_path, [hook("mjob.kb.io", "batch", "jobs", "/mutate-batch-v1-job")], {})

    [config] = webhooks.render(described(), tmp_path, port=9443, ca_bundle=b"PEM")

    assert config["metadata"] == {"name": "demo-mutating-webhook-configuration"}
    [webhook] = config["webhooks"]
    assert webhook["clientConfig"] == {
        "url": "https://127.0.0.1:9443/mutate-batch-v1-job",
        "caBundle": base64.b64encode(b"PEM").decode(),
    }
    assert webhook["rules"][0]["resources"] == ["jobs"]


def test_json_6902_patches_of_the_kustomization_apply(tmp_path: Path) -> None:
    pod = hook("mpod.kb.io", "", "pods", "/mutate--v1-pod")
    selector = {
        "matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]
    }
    base = module(
        tmp_path,
        [hook("mjobset.kb.io", "jobset.x-k8s.io", "jobsets", "/mutate-jobset"), pod],
        {
            "patches": [
                {
                    "path": "patches/mutating.yaml",
                    "target": {
                        "kind": "MutatingWebhookConfiguration",
                        "name": "mutating-webhook-configuration",
                    },
                }
            ]
        },
    )
    (base / "patches").mkdir()
    (base / "patches" / "mutating.yaml").write_text(
        yaml.safe_dump(
            [{"op": "replace", "path": "/webhooks/1", "value": {**pod, "objectSelector": selector}}]
        )
    )

    [config] = webhooks.render(described(), tmp_path, port=1, ca_bundle=b"x")

    assert "objectSelector" not in config["webhooks"][0]
    assert config["webhooks"][1]["objectSelector"] == selector


def test_strategic_merge_patches_merge_webhooks_by_name(tmp_path: Path) -> None:
    selector = {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
        ]
    }
    patch = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "mutating-webhook-configuration"},
        "webhooks": [{"name": "mpod.kb.io", "namespaceSelector": selector}],
    }
    module(
        tmp_path,
        [hook("mjob.kb.io", "batch", "jobs", "/j"), hook("mpod.kb.io", "", "pods", "/p")],
        {"patches": [{"patch": yaml.safe_dump(patch)}]},
    )

    [config] = webhooks.render(described(), tmp_path, port=1, ca_bundle=b"x")

    by_name = {w["name"]: w for w in config["webhooks"]}
    assert by_name["mpod.kb.io"]["namespaceSelector"] == selector
    assert by_name["mpod.kb.io"]["clientConfig"]["url"] == "https://127.0.0.1:1/p"
    assert "namespaceSelector" not in by_name["mjob.kb.io"]


def test_kueue_registers_its_own_kinds_and_its_integrations_only(tmp_path: Path) -> None:
    module(
        tmp_path,
        [
            hook("mclusterqueue.kb.io", "kueue.x-k8s.io", "clusterqueues", "/cq"),
            hook("mjob.kb.io", "batch", "jobs", "/job"),
            hook("mrayjob.kb.io", "ray.io", "rayjobs", "/rayjob"),
            hook("mpod.kb.io", "", "pods", "/pod"),
            hook("mdeployment.kb.io", "apps", "deployments", "/deployment"),
            hook("mtfjob.kb.io", "kubeflow.org", "tfjobs", "/tfjob"),
        ],
        {},
    )
    kueue = controller_specs.spec("kueue")
    assert kueue.webhooks is not None

    [config] = webhooks.render(described(kueue.webhooks.keep), tmp_path, port=1, ca_bundle=b"x")

    assert [w["name"] for w in config["webhooks"]] == [
        "mclusterqueue.kb.io",
        "mjob.kb.io",
        "mrayjob.kb.io",
    ]


def test_a_patch_naming_no_document_is_an_error(tmp_path: Path) -> None:
    module(
        tmp_path,
        [hook("mjob.kb.io", "batch", "jobs", "/j")],
        {
            "patches": [
                {
                    "patch": yaml.safe_dump(
                        {"kind": "MutatingWebhookConfiguration", "metadata": {"name": "other"}}
                    )
                }
            ]
        },
    )
    with pytest.raises(webhooks.ManifestError, match="MutatingWebhookConfiguration/other"):
        webhooks.render(described(), tmp_path, port=1, ca_bundle=b"x")


def test_every_controller_has_a_pinned_binary_in_the_build_script() -> None:
    names = [s.binary for s in controller_specs.SPECS.values()]
    listed = subprocess.run(
        ["bash", str(binaries.BUILD_SCRIPT), "--list", "controllers"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert sorted(listed[0::2]) == sorted(names)
    assert all(
        Path(path).name.startswith(f"{name}-v")
        for name, path in zip(listed[0::2], listed[1::2], strict=True)
    )
    default = subprocess.run(
        ["bash", str(binaries.BUILD_SCRIPT), "--list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert not set(names) & {line.split()[0] for line in default.splitlines()}


def test_a_json_6902_target_without_a_name_patches_every_document_of_its_kind(
    tmp_path: Path,
) -> None:
    base = module(
        tmp_path,
        [hook("validator.pytorchjob", "kubeflow.org", "pytorchjobs", "/validate-pytorchjob")],
        {"patches": [{"path": "patch.yaml", "target": {"kind": "MutatingWebhookConfiguration"}}]},
    )
    (base / "patch.yaml").write_text(
        yaml.safe_dump([{"op": "replace", "path": "/metadata/name", "value": "validator.example"}])
    )

    [config] = webhooks.render(described(), tmp_path, port=1, ca_bundle=b"x")

    assert config["metadata"]["name"] == "demo-validator.example"


def test_the_rotator_secret_holds_our_pair_as_its_ca_and_serving_pair() -> None:
    pair = certificates.rsa_self_signed(controllers.ROTATOR_HOSTS)

    secret = controllers._rotator_secret("kubeflow", "training-operator-webhook-cert", pair)

    data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    assert data == {
        "ca.crt": pair.cert_pem,
        "ca.key": pair.key_pem,
        "tls.crt": pair.cert_pem,
        "tls.key": pair.key_pem,
    }
    # cert-controller parses the CA key as PKCS#1 RSA and checks the names.
    assert pair.key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    cert = x509.load_pem_x509_certificate(pair.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "training-operator-ca" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)


def test_a_shared_pair_is_written_once_and_read_back(tmp_path: Path) -> None:
    target = tmp_path / "certs"
    made: list[int] = []

    def make() -> certificates.ServingCertificate:
        made.append(1)
        return certificates.rsa_self_signed(["127.0.0.1"])

    first = certificates.shared_pair(target, make)
    second = certificates.shared_pair(target, make)

    assert made == [1]
    assert first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certs"]
