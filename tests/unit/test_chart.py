"""The Helm chart: `helm lint` and `helm template` over value combinations, and what the
rendered objects must say (hardening, RBAC, webhook wiring, monitoring).

Uses the helm the control plane's build caches (tests/cluster/build.sh); CI builds it.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from typer.main import get_command

from gpupool.agent.command import agent
from gpupool.devcluster import binaries
from gpupool.generate import WORKLOAD_SOURCE
from gpupool.k8s import EVENTS, GPUJOBS, GPUNODES, NODES, PODS, TEAMQUOTAS
from gpupool.k8s.peering import PEERING_CRD
from gpupool.webhook.config import CERT_FILE, KEY_FILE
from gpupool.webhook.handlers import WEBHOOK_IDS
from gpupool.webhook.leader import SERVING, SERVING_LABEL

JSON = dict[str, Any]
CHART = Path(__file__).resolve().parents[2] / "helm" / "gpupool"
KUBE_VERSION = "v1.36.3"
RELEASE, NAMESPACE = "gp", "gpupool-system"

COMBINATIONS: dict[str, list[str]] = {
    "defaults": [],
    "cert-manager": ["webhook.certManager.enabled=true"],
    "cert-manager-issuer": [
        "webhook.certManager.enabled=true",
        "webhook.certManager.issuerRef.name=corp-ca",
        "webhook.certManager.issuerRef.kind=ClusterIssuer",
    ],
    "monitoring": ["monitoring.serviceMonitor.enabled=true"],
    "no-webhook": ["webhook.enabled=false", "webhook.failurePolicy=Ignore"],
    "operator-only": ["agent.enabled=false", "operator.replicas=1"],
    "pull-secrets": ["imagePullSecrets[0].name=registry", "operator.gpuNodeSelector=pool=a"],
    "agent-only": ["operator.enabled=false"],
    "no-aggregation": ["rbac.aggregateToDefaultRoles=false", "agent.restrictToOwnNode=false"],
    "workload-helper": ["workload.namespaces[0]=vision-train", "workload.namespaces[1]=nlp"],
    "cluster-viewers": [
        "rbac.clusterViewers[0].kind=Group",
        "rbac.clusterViewers[0].name=platform-oncall",
        "rbac.clusterViewers[0].apiGroup=rbac.authorization.k8s.io",
    ],
}


@pytest.fixture(scope="module")
def helm() -> str:
    try:
        return str(binaries.helm())
    except (FileNotFoundError, binaries.BinariesError) as error:
        pytest.skip(f"no helm binary ({error}); `make bins` builds it, as CI does")


def run(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


def render(helm: str, sets: list[str], chart: Path = CHART) -> list[JSON]:
    args = ["template", RELEASE, str(chart), "-n", NAMESPACE, "--kube-version", KUBE_VERSION]
    for value in sets:
        args += ["--set", value]
    completed = run(helm, *args)
    assert completed.returncode == 0, completed.stderr
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc]


def only(docs: list[JSON], kind: str, name_suffix: str = "") -> JSON:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def kinds(docs: list[JSON]) -> set[str]:
    return {doc["kind"] for doc in docs}


@pytest.mark.parametrize("name", COMBINATIONS)
def test_lint_and_template_pass(helm: str, name: str) -> None:
    sets = COMBINATIONS[name]
    lint = run(helm, "lint", str(CHART), "--kube-version", KUBE_VERSION, *_sets(sets))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    for doc in render(helm, sets):
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, doc["kind"]


def _sets(sets: list[str]) -> Iterator[str]:
    for value in sets:
        yield from ("--set", value)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("webhook.failurePolicy=Sometimes", "value must be one of 'Fail', 'Ignore'"),
        ("operator.replicas=0", "/operator/replicas"),
        ("operatr.replicas=2", "additional properties 'operatr' not allowed"),
        ("webhook.certManager.issuerRef.kind=Vault", "/webhook/certManager/issuerRef/kind"),
    ],
)
def test_the_schema_refuses_bad_values(helm: str, value: str, complaint: str) -> None:
    completed = run(helm, "template", str(CHART), "--kube-version", KUBE_VERSION, "--set", value)
    assert completed.returncode != 0
    assert complaint in completed.stderr


# --- the operator ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defaults(helm: str) -> list[JSON]:
    return render(helm, [])


def test_operator_runs_hardened_with_peering_and_kopf_probes(defaults: list[JSON]) -> None:
    deployment = only(defaults, "Deployment", "-operator")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["args"][:2] == ["operator", f"--peering={RELEASE}-gpupool"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["healthz"] == 8080
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    # The only writable path: an emptyDir at /tmp (HOME of the image).
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/tmp"] == "tmp"
    assert pod["serviceAccountName"] == f"{RELEASE}-gpupool-operator"
    budget = only(defaults, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1


def test_a_single_operator_replica_has_no_disruption_budget(helm: str) -> None:
    assert "PodDisruptionBudget" not in kinds(render(helm, COMBINATIONS["operator-only"]))


def rules_of(role: JSON) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_operator_rbac_is_exactly_what_it_calls(defaults: list[JSON]) -> None:
    role = only(defaults, "ClusterRole", "-operator")
    expected = {
        *(
            ("gpupool.io", r, v)
            for r in ("gpujobs", "teamquotas", "gpunodes")
            for v in ("list", "watch")
        ),
        ("gpupool.io", "gpujobs/status", "patch"),
        ("gpupool.io", "teamquotas/status", "patch"),
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        *(("", "pods", v) for v in ("list", "watch", "create", "delete", "patch")),
        ("", "services", "create"),
        ("events.k8s.io", "events", "create"),
        *(
            ("kopf.dev", "clusterkopfpeerings", v)
            for v in ("get", "list", "watch", "create", "patch")
        ),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    }
    assert rules_of(role) == expected
    binding = only(defaults, "ClusterRoleBinding", "-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-gpupool-operator", "namespace": NAMESPACE}
    ]


def aggregation(role: JSON) -> set[str]:
    prefix = "rbac.authorization.k8s.io/aggregate-to-"
    return {k.removeprefix(prefix) for k in role["metadata"]["labels"] if k.startswith(prefix)}


def test_editor_and_viewer_roles_per_crd(helm: str, defaults: list[JSON]) -> None:
    expected = {
        "gpujob-editor": {"edit", "admin"},
        "gpujob-viewer": {"view"},
        "teamquota-editor": set(),
        "teamquota-viewer": {"view"},
        "gpunode-editor": set(),
        "gpunode-viewer": {"view"},
    }
    for suffix, aggregated in expected.items():
        role = only(defaults, "ClusterRole", suffix)
        assert aggregation(role) == aggregated, suffix
        verbs = {verb for _, _, verb in rules_of(role)}
        assert ("create" in verbs) == suffix.endswith("editor")
    plain = render(helm, COMBINATIONS["no-aggregation"])
    assert all(not aggregation(d) for d in plain if d["kind"] == "ClusterRole")


def test_the_cluster_viewer_reads_what_explain_and_snapshot_read(helm: str) -> None:
    defaults = render(helm, [])
    role = only(defaults, "ClusterRole", "-cluster-viewer")
    assert not aggregation(role)
    rules = rules_of(role)
    assert {verb for _, _, verb in rules} == {"get", "list", "watch"}
    for resource in (GPUJOBS, TEAMQUOTAS, GPUNODES, NODES, PODS, EVENTS):
        assert (resource.group, resource.plural, "list") in rules, resource.plural
    assert not [d for d in defaults if d["kind"] == "ClusterRoleBinding" and "viewer" in str(d)]
    bound = render(helm, COMBINATIONS["cluster-viewers"])
    binding = only(bound, "ClusterRoleBinding", "-cluster-viewer")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "Group", "name": "platform-oncall", "apiGroup": "rbac.authorization.k8s.io"}
    ]


# --- the agent ------------------------------------------------------------------------------


def test_the_agent_runs_its_own_command_with_options_it_has(defaults: list[JSON]) -> None:
    daemonset = only(defaults, "DaemonSet", "-agent")
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["gpupool-agent"]  # not the whole CLI (test_dockerfile.py)
    alone = typer.Typer()
    alone.command()(agent)
    options = {opt for param in get_command(alone).params for opt in param.opts}
    assert container["args"] and {arg.split("=")[0] for arg in container["args"]} <= options


def test_the_agent_reads_pod_logs_read_only_unless_turned_off(
    helm: str, defaults: list[JSON]
) -> None:
    """Running pods' checkpoint reports come from /var/log/pods (gpupool.agent.checkpoints)."""
    spec = only(defaults, "DaemonSet", "-agent")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert "--pod-logs=/var/log/pods" in container["args"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "pod-logs"]
    assert (mount["mountPath"], mount["readOnly"]) == ("/var/log/pods", True)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "pod-logs"]
    assert volume["hostPath"] == {"path": "/var/log/pods", "type": "Directory"}

    off = only(render(helm, ["agent.podLogsPath="]), "DaemonSet", "-agent")["spec"]["template"]
    (container,) = off["spec"]["containers"]
    assert "--pod-logs=" in container["args"]
    assert all(v["name"] != "pod-logs" for v in off["spec"]["volumes"])


# --- the webhook ----------------------------------------------------------------------------


def test_webhook_reaches_the_leaders_handlers(defaults: list[JSON]) -> None:
    configuration = only(defaults, "ValidatingWebhookConfiguration")
    service = only(defaults, "Service", "-webhook")
    deployment = only(defaults, "Deployment", "-operator")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}

    paths = []
    for webhook in configuration["webhooks"]:
        assert webhook["failurePolicy"] == "Fail"
        assert webhook["sideEffects"] == "None"
        (rule,) = webhook["rules"]
        assert rule["operations"] == ["CREATE", "UPDATE"], "deletions never wait on the webhook"
        client = webhook["clientConfig"]["service"]
        assert (client["name"], client["namespace"]) == (service["metadata"]["name"], NAMESPACE)
        assert client["path"] == f"/{rule['resources'][0]}"
        paths.append(client["path"])
    assert paths == [f"/{handler}" for handler in WEBHOOK_IDS]

    # The Service selects the operator pods, and only the one labelled as serving.
    selector = service["spec"]["selector"]
    assert selector.pop(SERVING_LABEL) == SERVING
    assert selector.items() <= pod_labels.items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    assert env["GPUPOOL_WEBHOOK_PORT"] == str(ports["webhook"])
    assert {"POD_NAME", "POD_NAMESPACE"} <= env.keys()


def test_chart_generated_certificate_is_trusted_through_the_ca_bundle(
    defaults: list[JSON],
) -> None:
    configuration = only(defaults, "ValidatingWebhookConfiguration")
    secret = only(defaults, "Secret", "-webhook-tls")
    deployment = only(defaults, "Deployment", "-operator")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-tls"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert {CERT_FILE, KEY_FILE} <= secret["data"].keys()

    bundles = {w["clientConfig"]["caBundle"] for w in configuration["webhooks"]}
    assert bundles == {secret["data"]["ca.crt"]}
    ca = x509.load_pem_x509_certificate(base64.b64decode(bundles.pop()))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"][CERT_FILE]))
    public_key = ca.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    public_key.verify(
        cert.signature,
        cert.tbs_certificate_bytes,
        padding.PKCS1v15(),
        cert.signature_hash_algorithm,
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{RELEASE}-gpupool-webhook.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    assert cert.not_valid_after_utc > datetime.now(UTC)


@pytest.mark.parametrize("name", ["cert-manager", "cert-manager-issuer"])
def test_cert_manager_issues_the_certificate_instead(helm: str, name: str) -> None:
    docs = render(helm, COMBINATIONS[name])
    assert not [d for d in docs if d["kind"] == "Secret"]
    certificate = only(docs, "Certificate")
    configuration = only(docs, "ValidatingWebhookConfiguration")
    annotation = configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert annotation == f"{NAMESPACE}/{certificate['metadata']['name']}"
    assert all("caBundle" not in w["clientConfig"] for w in configuration["webhooks"])
    assert certificate["spec"]["secretName"] == f"{RELEASE}-gpupool-webhook-tls"
    issuers = [d for d in docs if d["kind"] == "Issuer"]
    if name == "cert-manager":
        assert certificate["spec"]["issuerRef"]["name"] == issuers[0]["metadata"]["name"]
    else:
        assert not issuers
        assert certificate["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer"}


def test_without_the_webhook_nothing_admission_related_renders(helm: str) -> None:
    docs = render(helm, COMBINATIONS["no-webhook"])
    assert not kinds(docs) & {"ValidatingWebhookConfiguration", "Secret"}
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "GPUPOOL_WEBHOOK_PORT" not in {e["name"] for e in container["env"]}
    agent_only = render(helm, COMBINATIONS["agent-only"])
    assert "ValidatingWebhookConfiguration" not in kinds(agent_only)
    assert "Deployment" not in kinds(agent_only)


# --- monitoring -----------------------------------------------------------------------------


def test_service_monitors_are_off_by_default_and_select_the_metrics_services(
    helm: str, defaults: list[JSON]
) -> None:
    assert "ServiceMonitor" not in kinds(defaults)
    docs = render(helm, COMBINATIONS["monitoring"])
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors:
        wanted = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        assert monitor["spec"]["endpoints"][0]["port"] in {
            p["name"] for p in service["spec"]["ports"]
        }


def test_dashboard_configmap_renders_once_the_dashboard_exists(
    helm: str, defaults: list[JSON], tmp_path: Path
) -> None:
    chart = tmp_path / "gpupool"
    shutil.copytree(CHART, chart)
    dashboard = chart / "dashboards" / "gpupool.json"
    dashboard.unlink(missing_ok=True)
    assert "ConfigMap" not in kinds(render(helm, [], chart))
    dashboard.parent.mkdir(exist_ok=True)
    dashboard.write_text('{"title": "gpupool", "panels": []}\n')
    configmap = only(render(helm, [], chart), "ConfigMap", "-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert yaml.safe_load(configmap["data"]["gpupool.json"])["title"] == "gpupool"
    off = render(helm, ["monitoring.dashboard.enabled=false"], chart)
    assert "ConfigMap" not in kinds(off)


def test_the_chart_ships_kopfs_peering_crd_as_the_operator_defines_it() -> None:
    shipped = yaml.safe_load(
        (CHART / "files" / "crds" / "kopf.dev_clusterkopfpeerings.yaml").read_text()
    )
    assert shipped == PEERING_CRD


def test_the_workload_helper_is_a_configmap_in_each_listed_namespace(
    helm: str, defaults: list[JSON]
) -> None:
    def helpers(docs: list[JSON]) -> list[JSON]:
        return [
            doc
            for doc in docs
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "gpupool-workload"
        ]

    assert helpers(defaults) == []
    shipped = helpers(render(helm, COMBINATIONS["workload-helper"]))
    assert sorted(doc["metadata"]["namespace"] for doc in shipped) == ["nlp", "vision-train"]
    for doc in shipped:
        # Byte for byte the module: what the examples mount is what the tests ran.
        assert doc["data"] == {"workload.py": WORKLOAD_SOURCE.read_text()}


def test_the_crds_are_templates_that_helm_upgrade_applies(helm: str) -> None:
    """Helm installs a chart's crds/ once and never upgrades them: the CRDs are rendered
    as templates (spec exactly as generated), kept by `helm uninstall`."""
    assert not (CHART / "crds").exists(), "crds/ would never be upgraded: use files/crds/"
    rendered = {
        doc["metadata"]["name"]: doc
        for doc in render(helm, [])
        if doc["kind"] == "CustomResourceDefinition"
    }
    generated = {
        crd["metadata"]["name"]: crd
        for crd in (yaml.safe_load(p.read_text()) for p in (CHART / "files" / "crds").glob("*"))
    }
    assert set(rendered) == set(generated) >= {"gpujobs.gpupool.io", "clusterkopfpeerings.kopf.dev"}
    for name, crd in rendered.items():
        assert crd["spec"] == generated[name]["spec"], name
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    unkept = [
        d for d in render(helm, ["crds.keep=false"]) if d["kind"] == "CustomResourceDefinition"
    ]
    assert unkept and all("annotations" not in d["metadata"] for d in unkept)
    assert "CustomResourceDefinition" not in kinds(render(helm, ["crds.install=false"]))
