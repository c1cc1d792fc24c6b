"""The Helm chart on a real API server, and the admission webhook answering it.

1. `helm install` of the whole chart: the API server accepts every object (CRDs, RBAC,
   the ValidatingAdmissionPolicy, the webhook configuration, the workloads), and with
   no operator instance serving, the documented failurePolicy (Fail) refuses a GPUJob.
   `helm upgrade` applies changed CRDs (from the crds/ layout of 0.1.0, after adopting
   them as the docs say, and between template releases); `helm uninstall` keeps them.
2. The operator, authenticated as the chart's operator ServiceAccount (so with exactly
   the chart's RBAC) and electing itself leader through kopf peering, serves its
   webhook on 127.0.0.1 with a certificate from gpupool.webhook.certs; a
   ValidatingWebhookConfiguration with
   url=https://127.0.0.1:PORT/... sends the API server there. Bad GPUJobs and
   TeamQuotas are refused with the webhook's messages. An API server that is not on
   this machine (kind: in a container) reaches it at GPUPOOL_TEST_WEBHOOK_HOST.

Every webhook configuration is deleted in teardown: a dead webhook would block every
later admission of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupool.devcluster import Cluster, binaries
from gpupool.devcluster.cluster import KubectlError
from gpupool.k8s import GPUJOBS, TEAMQUOTAS, ApiError, KubeClient, Resource
from gpupool.k8s.peering import CLUSTER_PEERINGS
from gpupool.webhook.certs import self_signed

from .operator.harness import (
    WEBHOOK_CONFIGURATIONS,
    CheckpointServer,
    OperatorProcess,
    Pool,
    gpupool_webhooks,
    wait_for,
)

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
CHART = Path(__file__).resolve().parents[2] / "helm" / "gpupool"
TEST_LABEL = "gpupool.io/webhook-test"
# Where the API server reaches this machine (tests/e2e/kind/run.sh: the kind network's
# gateway); the webhook then listens on every interface.
WEBHOOK_HOST = os.environ.get("GPUPOOL_TEST_WEBHOOK_HOST", "127.0.0.1")
CONTAINERS = [{"name": "train", "image": "train:latest"}]


@pytest.fixture(scope="module")
def helm() -> str:
    try:
        return str(binaries.helm())
    except FileNotFoundError as error:
        pytest.skip(f"no helm binary ({error}); `make bins` builds it")


def run_helm(helm: str, kubeconfig: Path, *args: str) -> str:
    completed = subprocess.run(
        [helm, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def chart_crds(chart: Path = CHART) -> list[str]:
    """The names of the CRDs a chart installs."""
    return sorted(
        yaml.safe_load(path.read_text())["metadata"]["name"]
        for path in (chart / "files" / "crds").glob("*.yaml")
    )


def adopt_crds(cluster: Cluster, name: str, namespace: str) -> None:
    """Hand the CRDs already in the cluster to release `name`, as the chart's docs say
    (CRDs applied with kubectl, by an older chart's crds/ or by another release)."""
    existing = [
        crd
        for crd in chart_crds()
        if cluster.kubectl("get", "crd", crd, "--ignore-not-found", "-o", "name").strip()
    ]
    if not existing:
        return
    cluster.kubectl("label", "crd", *existing, "app.kubernetes.io/managed-by=Helm", "--overwrite")
    cluster.kubectl(
        "annotate",
        "crd",
        *existing,
        f"meta.helm.sh/release-name={name}",
        f"meta.helm.sh/release-namespace={namespace}",
        "--overwrite",
    )


@contextlib.contextmanager
def release(
    helm: str, cluster: Cluster, *sets: str, name: str | None = None
) -> Iterator[tuple[str, str, str]]:
    """A release in a fresh namespace: (release, namespace, `helm install` output). The
    session's CRDs were applied with kubectl: the release adopts them."""
    name = name or f"r{uuid.uuid4().hex[:6]}"
    namespace = f"gpupool-{name}"
    cluster.create_namespace(namespace)
    adopt_crds(cluster, name, namespace)
    args = ["install", name, str(CHART), "-n", namespace]
    for value in sets:
        args += ["--set", value]
    try:
        yield name, namespace, run_helm(helm, cluster.kubeconfig, *args)
    finally:
        subprocess.run(
            [helm, "--kubeconfig", str(cluster.kubeconfig), "uninstall", name, "-n", namespace],
            capture_output=True,
            timeout=120,
        )
        # Cluster-scoped leftovers would outlive the namespace; the webhook above all.
        cluster.kubectl(
            "delete",
            "validatingwebhookconfiguration,clusterrole,clusterrolebinding,"
            "validatingadmissionpolicy,validatingadmissionpolicybinding",
            "-l",
            f"app.kubernetes.io/instance={name}",
            "--ignore-not-found",
        )
        cluster.delete_namespace(namespace)


def gpujob(namespace: str, name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "GPUJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gpusPerWorker": 4, "workers": 1, "template": {"spec": {"containers": CONTAINERS}}}
        | spec,
    }


def test_helm_install_is_accepted_whole(helm: str, cluster: Cluster) -> None:
    # No such image: the operator pods never start, wherever this runs.
    with release(helm, cluster, "image.repository=gpupool.invalid/none") as (
        name,
        namespace,
        output,
    ):
        assert "NOTES:" in output and "kubectl get gpunodes" in output
        manifest = run_helm(helm, cluster.kubeconfig, "get", "manifest", name, "-n", namespace)
        documents = [doc for doc in yaml.safe_load_all(manifest) if doc]
        expected = {f"{d['kind']}/{d['metadata']['name']}".lower() for d in documents}
        found = cluster.kubectl("get", "-f", "-", "-o", "name", input=manifest).split()
        assert {line.split(".", 1)[0].split("/", 1)[0] for line in found} >= {
            "validatingwebhookconfiguration",
            "deployment",
            "daemonset",
            "clusterrole",
            "validatingadmissionpolicy",
        }
        assert len(found) == len(expected), (sorted(found), sorted(expected))
        assert cluster.kubectl("get", "crd", "clusterkopfpeerings.kopf.dev", "-o", "name")

        # Nobody serves the webhook: failurePolicy Fail
        # refuses the GPUJob rather than admitting it unchecked.
        cluster.create_namespace(f"{namespace}-jobs")
        try:
            with pytest.raises(KubectlError, match="failed calling webhook") as refused:
                cluster.create(gpujob(f"{namespace}-jobs", "unchecked"))
            assert "gpujobs.gpupool.io" in refused.value.stderr
        finally:
            cluster.delete_namespace(f"{namespace}-jobs")


# --- upgrades: the CRDs follow the chart -------------------------------------------------

GPUJOB_CRD = "gpujobs.gpupool.io"


def chart_copy(tmp_path: Path, version: str) -> Path:
    chart = tmp_path / version / "gpupool"
    shutil.copytree(CHART, chart)
    metadata = yaml.safe_load((chart / "Chart.yaml").read_text())
    metadata["version"] = version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return chart


def edit_gpujob_crd(path: Path, edit: Any) -> None:
    crd = yaml.safe_load(path.read_text())
    edit(crd["spec"]["versions"][0])
    path.write_text(yaml.safe_dump(crd, sort_keys=False))


def old_chart(tmp_path: Path) -> Path:
    """The chart as 0.1.0 shipped it: the CRDs in crds/ (Helm installs those once and
    never upgrades them), and a GPUJob schema without spec.backoffLimit."""
    chart = chart_copy(tmp_path, "0.0.9")
    (chart / "templates" / "crds.yaml").unlink()
    shutil.move(chart / "files" / "crds", chart / "crds")

    def without_backoff_limit(version: JSON) -> None:
        del version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["backoffLimit"]

    edit_gpujob_crd(chart / "crds" / "gpupool.io_gpujobs.yaml", without_backoff_limit)
    return chart


def next_chart(tmp_path: Path) -> Path:
    """A later chart whose GPUJob CRD has one more printer column."""
    chart = chart_copy(tmp_path, "0.1.1")

    def with_backoff_column(version: JSON) -> None:
        column = {"name": "Backoff", "type": "integer", "jsonPath": ".spec.backoffLimit"}
        version["additionalPrinterColumns"].append({**column, "priority": 1})

    edit_gpujob_crd(chart / "files" / "crds" / "gpupool.io_gpujobs.yaml", with_backoff_column)
    return chart


def served_gpujob_crd(cluster: Cluster) -> JSON:
    crd: JSON = cluster.kubectl_json("get", "crd", GPUJOB_CRD)
    return crd


def test_helm_upgrade_applies_changed_crds_and_uninstall_keeps_them(
    helm: str, cluster: Cluster, tmp_path: Path
) -> None:
    """0.0.9 (CRDs in crds/) → adopt the CRDs as the docs say → upgrade to this chart:
    the GPUJob schema gains spec.backoffLimit → upgrade to 0.1.1: a printer column more
    → back to this chart → uninstall: the CRDs and a GPUJob stay."""
    name = f"u{uuid.uuid4().hex[:6]}"
    namespace = f"gpupool-{name}"
    jobs = f"{namespace}-jobs"
    old, later = old_chart(tmp_path), next_chart(tmp_path)
    values = ["--set", "image.repository=gpupool.invalid/none", "--set", "webhook.enabled=false"]
    cluster.create_namespace(namespace)
    cluster.create_namespace(jobs)
    try:
        # The cluster as 0.0.9 left it: its CRDs (Helm skips crds/ when they exist).
        cluster.kubectl("replace", "-f", str(old / "crds"))
        run_helm(helm, cluster.kubeconfig, "install", name, str(old), "-n", namespace, *values)
        spec = served_gpujob_crd(cluster)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert "backoffLimit" not in spec["properties"]["spec"]["properties"]

        adopt_crds(cluster, name, namespace)
        run_helm(helm, cluster.kubeconfig, "upgrade", name, str(CHART), "-n", namespace, *values)
        served = served_gpujob_crd(cluster)
        version = served["spec"]["versions"][0]
        assert (
            "backoffLimit"
            in version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        )
        assert served["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        cluster.create(gpujob(jobs, "survivor", backoffLimit=2))

        run_helm(helm, cluster.kubeconfig, "upgrade", name, str(later), "-n", namespace, *values)
        served = served_gpujob_crd(cluster)
        columns = [c["name"] for c in served["spec"]["versions"][0]["additionalPrinterColumns"]]
        assert columns[-1] == "Backoff"
        assert served["metadata"]["labels"]["helm.sh/chart"] == "gpupool-0.1.1"
        wide = cluster.kubectl("get", "gpujobs", "-n", jobs, "-o", "wide")
        assert "BACKOFF" in wide.splitlines()[0]

        run_helm(helm, cluster.kubeconfig, "upgrade", name, str(CHART), "-n", namespace, *values)
        columns = [
            c["name"]
            for c in served_gpujob_crd(cluster)["spec"]["versions"][0]["additionalPrinterColumns"]
        ]
        assert "Backoff" not in columns

        run_helm(helm, cluster.kubeconfig, "uninstall", name, "-n", namespace)
        for crd in chart_crds():
            assert cluster.kubectl("get", "crd", crd, "-o", "name").strip()
        survivor = cluster.kubectl_json("get", "gpujob", "survivor", "-n", jobs)
        assert survivor["spec"]["backoffLimit"] == 2
    finally:
        subprocess.run(
            [helm, "--kubeconfig", str(cluster.kubeconfig), "uninstall", name, "-n", namespace],
            capture_output=True,
            timeout=120,
        )
        # Whatever happened, the session's later tests get this chart's CRDs.
        cluster.kubectl("replace", "-f", str(CHART / "files" / "crds"))
        cluster.delete_namespace(jobs)
        cluster.delete_namespace(namespace)


# --- the webhook, served by the operator on loopback --------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def kube(kubeconfig: Path) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        yield client


@pytest.fixture
async def pool(kube: KubeClient) -> AsyncIterator[Pool]:
    slice_ = Pool(kube, CheckpointServer())
    yield slice_
    await slice_.cleanup()


async def refusal(kube: KubeClient, resource: Resource, body: JSON, namespace: str | None) -> str:
    """The API server's message when it refuses `body` (the webhook's, once it serves)."""
    try:
        await kube.create(resource, body, namespace)
    except ApiError as error:
        return error.message
    await kube.delete(resource, body["metadata"]["name"], namespace)
    return ""


async def test_the_webhook_refuses_bad_objects_with_its_messages(
    helm: str, cluster: Cluster, kube: KubeClient, pool: Pool, tmp_path: Path
) -> None:
    # 2 nodes × 4 GPUs; team vision owns its namespace; another namespace has no team.
    await pool.add_nodes(2, gpus=4)
    team, team_namespace = await pool.add_team("vision", guaranteed=4, max_gpus=6)
    stray = await pool.add_namespace("stray")
    vwc_name = f"gpupool-test-{pool.id}"

    with release(helm, cluster, "webhook.enabled=false", "agent.enabled=false") as (
        name,
        namespace,
        _,
    ):
        account_kubeconfig = cluster.service_account_kubeconfig(
            namespace, f"{name}-gpupool-operator", tmp_path / "operator.kubeconfig"
        )
        port = free_port()
        certificate = self_signed([WEBHOOK_HOST])
        certificate.write(tmp_path / "certs")
        operator = OperatorProcess(
            str(account_kubeconfig),
            pool.selector,
            tmp_path / "operator.log",
            # Leader election too: the webhook waits until this instance leads.
            peering=f"gpupool-{pool.id}",
            extra_env={
                "GPUPOOL_WEBHOOK_PORT": str(port),
                "GPUPOOL_WEBHOOK_HOST": WEBHOOK_HOST,
                "GPUPOOL_WEBHOOK_ADDR": "127.0.0.1" if WEBHOOK_HOST == "127.0.0.1" else "0.0.0.0",
                "GPUPOOL_WEBHOOK_CERT_DIR": str(tmp_path / "certs"),
            },
        )
        operator.start()
        try:
            await kube.create(
                WEBHOOK_CONFIGURATIONS,
                gpupool_webhooks(
                    vwc_name,
                    host=WEBHOOK_HOST,
                    port=port,
                    ca=certificate.cert_pem,
                    namespaces=[team_namespace, stray],
                    labels={TEST_LABEL: vwc_name},
                ),
            )
            await _check_refusals(kube, pool, team, team_namespace, stray, vwc_name)
            _check_capacity_warning(cluster, pool, vwc_name)
            assert operator.alive(), operator.tail()
        except BaseException:
            print(f"--- operator log (tail) ---\n{operator.tail(120)}")
            raise
        finally:
            with contextlib.suppress(ApiError):
                await kube.delete(WEBHOOK_CONFIGURATIONS, vwc_name)
            operator.stop()
            with contextlib.suppress(ApiError):
                await kube.delete(CLUSTER_PEERINGS, f"gpupool-{pool.id}")


async def _check_refusals(
    kube: KubeClient, pool: Pool, team: str, team_namespace: str, stray: str, vwc_name: str
) -> None:
    denied = 'admission webhook "gpujobs.gpupool.io" denied the request'

    async def served() -> str | None:
        message = await refusal(kube, GPUJOBS, gpujob(stray, "no-team"), stray)
        return message if denied in message else None

    # Until the operator leads with full indexes nothing listens: failurePolicy Fail.
    message = await wait_for("the webhook to answer", served, timeout=90, interval=1)
    assert f"spec.team: namespace {stray!r} belongs to no TeamQuota" in message

    too_big = gpujob(team_namespace, "too-big", gpusPerWorker=8)
    message = await refusal(kube, GPUJOBS, too_big, team_namespace)
    assert "spec.gpusPerWorker: 8 GPUs per worker, but the largest node has 4" in message
    over_max = gpujob(team_namespace, "over-max", workers=2)
    message = await refusal(kube, GPUJOBS, over_max, team_namespace)
    assert f"= 8 exceeds TeamQuota {team!r} maxGPUs 6" in message

    fits = gpujob(team_namespace, "fits")
    await kube.create(GPUJOBS, fits, team_namespace)

    grabber = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "TeamQuota",
        "metadata": {"name": pool.name("grabber"), "labels": {TEST_LABEL: vwc_name}},
        "spec": {"namespaces": [team_namespace], "guaranteedGPUs": 1},
    }
    message = await refusal(kube, TEAMQUOTAS, grabber, None)
    assert 'admission webhook "teamquotas.gpupool.io" denied the request' in message
    assert f"spec.namespaces: [{team_namespace!r}] already belong to TeamQuota {team!r}" in message


def _check_capacity_warning(cluster: Cluster, pool: Pool, vwc_name: str) -> None:
    """Guarantees beyond the cluster's 8 GPUs: admitted, and kubectl prints the warning."""
    name = pool.name("big")
    pool.teams.append(name)
    body = {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "TeamQuota",
        "metadata": {"name": name, "labels": {TEST_LABEL: vwc_name}},
        "spec": {"namespaces": [pool.name("big")], "guaranteedGPUs": 5},
    }
    completed = subprocess.run(
        [str(cluster.kubectl_binary), "--kubeconfig", str(cluster.kubeconfig), "create", "-f", "-"],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert (
        "Warning: spec.guaranteedGPUs: guarantees across all teams add up to 9 GPUs but the "
        "cluster has 8; not every guarantee can be met"
    ) in completed.stderr
