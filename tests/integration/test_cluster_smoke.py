"""The test control plane is real Kubernetes: CRDs with CEL validation, RBAC with real
tokens, fake GPU nodes whose pods run, finish and terminate gracefully, loopback only.

Runs on the session's cluster (tests/conftest.py); the kwok tests skip on a cluster
without gpupool's kwok Stages, the process tests on one this session did not start.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupool.devcluster import (
    FAKE_CHECKPOINT,
    FAKE_DURATION,
    FAKE_EXIT_CODE,
    FAKE_IGNORE_SIGTERM,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    NVLINK_DOMAIN_LABEL,
    RACK_LABEL,
    ZONE_LABEL,
    Cluster,
    DevCluster,
    KubectlError,
    wait_until,
)
from gpupool.devcluster import components as processes
from gpupool.devcluster.local import KWOK_POD_PARALLELISM
from gpupool.devcluster.stages import STAGE_NAMES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]


# --- helpers ------------------------------------------------------------------------------


def get(cluster: Cluster, *args: str) -> JSON:
    result: JSON = cluster.kubectl_json("get", *args)
    return result


def pod_manifest(name: str, node: str, gpus: int, annotations: dict[str, str]) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "trainer",
                    "image": "registry.invalid/trainer:1",
                    "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
                }
            ],
        },
    }


def run_pod(
    cluster: Cluster, namespace: str, node: str, annotations: dict[str, str], gpus: int = 8
) -> str:
    name = f"pod-{uuid.uuid4().hex[:6]}"
    cluster.kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(pod_manifest(name, node, gpus, annotations)),
    )
    return name


def phase(cluster: Cluster, namespace: str, pod: str) -> str:
    return str(get(cluster, "pod", pod, "-n", namespace).get("status", {}).get("phase"))


def pod_exists(cluster: Cluster, namespace: str, pod: str) -> bool:
    out = cluster.kubectl("get", "pod", pod, "-n", namespace, "--ignore-not-found", "-o", "name")
    return bool(out.strip())


@pytest.fixture(scope="module")
def kwok(cluster: Cluster) -> Cluster:
    """The session cluster, if gpupool's kwok Stages drive its fake nodes."""
    try:
        found = cluster.kubectl("get", "stages.kwok.x-k8s.io", "-o", "name").split()
    except KubectlError:
        found = []
    missing = {f"stage.kwok.x-k8s.io/{name}" for name in STAGE_NAMES} - set(found)
    if missing:
        pytest.skip(f"no gpupool kwok Stages on this cluster (missing {sorted(missing)})")
    return cluster


@pytest.fixture(scope="module")
def gpu_node(kwok: Cluster) -> Iterator[str]:
    """A fake node of this module's own with 8 GPUs."""
    prefix = f"smoke-{uuid.uuid4().hex[:6]}"
    names = kwok.add_gpu_nodes(1, 8, racks=1, prefix=prefix, product="NVIDIA-A100-SXM4-80GB")
    yield names[0]
    kwok.delete_nodes(names)


# --- CRDs and CEL -------------------------------------------------------------------------

WIDGET_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.gpupool.io"},
    "spec": {
        "group": "smoke.gpupool.io",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "minGPUs": {"type": "integer"},
                                    "maxGPUs": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.minGPUs <= self.maxGPUs",
                                        "message": "minGPUs must not exceed maxGPUs",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, min_gpus: int, max_gpus: int) -> str:
    return json.dumps(
        {
            "apiVersion": "smoke.gpupool.io/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"minGPUs": min_gpus, "maxGPUs": max_gpus},
        }
    )


def test_a_crd_installs_and_its_cel_rule_rejects_an_invalid_object(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    crd = tmp_path / "widgets.yaml"
    crd.write_text(yaml.safe_dump(WIDGET_CRD), encoding="utf-8")
    assert cluster.apply_crds([crd]) == ["widgets.smoke.gpupool.io"]
    try:
        cluster.kubectl("create", "-n", namespace, "-f", "-", input=widget("ok", 1, 8))
        with pytest.raises(KubectlError) as rejected:
            cluster.kubectl("create", "-n", namespace, "-f", "-", input=widget("bad", 8, 1))
        assert "minGPUs must not exceed maxGPUs" in rejected.value.stderr
        assert "Invalid value" in rejected.value.stderr
        listed = cluster.kubectl("get", "widgets", "-n", namespace, "-o", "name").split()
        assert listed == ["widget.smoke.gpupool.io/ok"]
        # The garbage collector knows the new resource: the owner's dependents go with it.
        uid = get(cluster, "widget", "ok", "-n", namespace)["metadata"]["uid"]
        owner = {"apiVersion": "smoke.gpupool.io/v1", "kind": "Widget", "name": "ok", "uid": uid}
        dependent = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "part", "ownerReferences": [owner]},
        }
        cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(dependent))
        cluster.kubectl("delete", "widget", "ok", "-n", namespace)
        wait_until(
            "the garbage collector",
            lambda: (
                not cluster.kubectl(
                    "get", "configmap", "part", "-n", namespace, "--ignore-not-found", "-o", "name"
                )
            ),
            timeout=20,
        )
    finally:
        cluster.kubectl("delete", "crd", "widgets.smoke.gpupool.io", "--wait=false")


def test_the_projects_crds_are_established_and_enforce_their_cel_rules(cluster: Cluster) -> None:
    files = sorted((ROOT / "crds").glob("*.yaml"))
    if not files:
        pytest.skip("crds/ is empty")
    documents = [d for f in files for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]
    for crd in documents:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        conditions = get(cluster, "crd", crd["metadata"]["name"])["status"]["conditions"]
        assert {"type": "Established", "status": "True"}.items() <= next(
            c for c in conditions if c["type"] == "Established"
        ).items()
    teamquotas = [
        d for d in documents if d.get("metadata", {}).get("name") == "teamquotas.gpupool.io"
    ]
    rules = [
        rule
        for crd in teamquotas
        for version in crd["spec"]["versions"]
        for rule in version["schema"]["openAPIV3Schema"]["properties"]["spec"].get(
            "x-kubernetes-validations", ()
        )
        if "guaranteedGPUs" in rule["rule"] and "maxGPUs" in rule["rule"]
    ]
    if not rules:
        pytest.skip("no TeamQuota rule relating guaranteedGPUs and maxGPUs in crds/")

    def teamquota(guaranteed: int, most: int) -> str:
        return json.dumps(
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "TeamQuota",
                "metadata": {"name": f"smoke-{uuid.uuid4().hex[:6]}"},
                "spec": {"namespaces": ["smoke"], "guaranteedGPUs": guaranteed, "maxGPUs": most},
            }
        )

    cluster.kubectl("create", "--dry-run=server", "-f", "-", input=teamquota(4, 8))
    with pytest.raises(KubectlError) as rejected:
        cluster.kubectl("create", "--dry-run=server", "-f", "-", input=teamquota(8, 4))
    assert rules[0]["message"] in rejected.value.stderr


# --- fake GPU nodes and pods -----------------------------------------------------------------


def test_a_fake_gpu_node_advertises_8_gpus_with_its_topology(kwok: Cluster, gpu_node: str) -> None:
    node = get(kwok, "node", gpu_node)
    assert node["status"]["allocatable"][GPU_RESOURCE] == "8"
    assert node["status"]["capacity"][GPU_RESOURCE] == "8"
    labels = node["metadata"]["labels"]
    assert labels[GPU_PRODUCT_LABEL] == "NVIDIA-A100-SXM4-80GB"
    assert {labels[RACK_LABEL], labels[ZONE_LABEL], labels[NVLINK_DOMAIN_LABEL]} == {
        "rack-0",
        "zone-0",
        "rack-0-nvl-0",
    }
    assert kwok.node_ready(gpu_node) is True


def test_the_session_nodes_carry_gpus(cluster: Cluster) -> None:
    if not isinstance(cluster, DevCluster):
        pytest.skip("the session cluster's nodes are not ours")
    nodes = get(cluster, "nodes", "-l", "gpupool.io/gpu-node=true")["items"]
    assert len(nodes) >= 2
    assert all(n["status"]["allocatable"][GPU_RESOURCE] == "8" for n in nodes)


def test_a_pod_on_a_gpu_node_runs_then_succeeds_after_its_fake_duration(
    kwok: Cluster, gpu_node: str, namespace: str
) -> None:
    pod = run_pod(kwok, namespace, gpu_node, {FAKE_DURATION: "3s"})
    wait_until("Running", lambda: phase(kwok, namespace, pod) == "Running", timeout=30)
    running_at = time.monotonic()
    wait_until("Succeeded", lambda: phase(kwok, namespace, pod) == "Succeeded", timeout=30)
    assert time.monotonic() - running_at >= 2.0
    status = get(kwok, "pod", pod, "-n", namespace)["status"]
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")


def test_a_fake_exit_code_fails_the_pod(kwok: Cluster, gpu_node: str, namespace: str) -> None:
    pod = run_pod(kwok, namespace, gpu_node, {FAKE_DURATION: "1s", FAKE_EXIT_CODE: "3"})
    wait_until("Failed", lambda: phase(kwok, namespace, pod) == "Failed", timeout=30)
    status = get(kwok, "pod", pod, "-n", namespace)["status"]
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_a_pod_that_ignores_sigterm_goes_when_its_grace_period_ends(
    kwok: Cluster, gpu_node: str, namespace: str
) -> None:
    pod = run_pod(kwok, namespace, gpu_node, {FAKE_IGNORE_SIGTERM: "true"})
    wait_until("Running", lambda: phase(kwok, namespace, pod) == "Running", timeout=30)
    deleted_at = time.monotonic()
    kwok.kubectl("delete", "pod", pod, "-n", namespace, "--grace-period=6", "--wait=false")
    time.sleep(3)
    assert phase(kwok, namespace, pod) == "Running", "stopped before its grace period ended"
    wait_until("the pod gone", lambda: not pod_exists(kwok, namespace, pod), timeout=30)
    assert time.monotonic() - deleted_at >= 5.0


def test_a_pod_exits_on_sigterm_and_then_goes(kwok: Cluster, gpu_node: str, namespace: str) -> None:
    pod = run_pod(kwok, namespace, gpu_node, {})
    wait_until("Running", lambda: phase(kwok, namespace, pod) == "Running", timeout=30)
    deleted_at = time.monotonic()
    kwok.kubectl("delete", "pod", pod, "-n", namespace, "--grace-period=60", "--wait=false")
    wait_until("the pod gone", lambda: not pod_exists(kwok, namespace, pod), timeout=30)
    assert time.monotonic() - deleted_at < 30


def test_a_checkpointing_pod_reports_its_checkpoint_and_goes_before_the_grace_period(
    kwok: Cluster, gpu_node: str, namespace: str
) -> None:
    pod = run_pod(kwok, namespace, gpu_node, {FAKE_CHECKPOINT: "s3://ckpt/smoke/step-9"})
    wait_until("Running", lambda: phase(kwok, namespace, pod) == "Running", timeout=30)
    template = '{.status.containerStatuses[0].state.terminated.message}{"\\n"}'
    args = ["get", "pod", pod, "-n", namespace, "--watch-only", "--request-timeout=40s"]
    watch = subprocess.Popen(
        [
            str(kwok.kubectl_binary),
            "--kubeconfig",
            str(kwok.kubeconfig),
            *args,
            f"-o=jsonpath={template}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # the watch is established
        deleted_at = time.monotonic()
        kwok.kubectl("delete", "pod", pod, "-n", namespace, "--grace-period=60", "--wait=false")
        assert watch.stdout is not None
        message = next((line.strip() for line in watch.stdout if line.strip()), None)
    finally:
        watch.kill()
        watch.wait(timeout=10)
    assert message == "s3://ckpt/smoke/step-9"
    wait_until("the pod gone", lambda: not pod_exists(kwok, namespace, pod), timeout=30)
    assert time.monotonic() - deleted_at < 30


def test_a_node_can_be_made_not_ready_and_ready_again(kwok: Cluster) -> None:
    names = kwok.add_gpu_nodes(1, 4, prefix=f"flaky-{uuid.uuid4().hex[:6]}")
    try:
        kwok.set_node_ready(names[0], False)
        assert kwok.node_ready(names[0]) is False
        kwok.set_node_ready(names[0], True)
        assert kwok.node_ready(names[0]) is True
    finally:
        kwok.delete_nodes(names)


# --- RBAC ------------------------------------------------------------------------------------


def test_rbac_refuses_a_service_account_without_rights(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    who = f"system:serviceaccount:{namespace}:nobody"
    answer = cluster.kubectl(
        "auth", "can-i", "list", "pods", "-n", namespace, f"--as={who}", check=False
    )
    assert answer.strip() == "no"

    as_nobody = Cluster(
        cluster.service_account_kubeconfig(namespace, "nobody", tmp_path / "kc"),
        kubectl_binary=cluster.kubectl_binary,
    )
    with pytest.raises(KubectlError) as refused:
        as_nobody.kubectl("get", "pods", "-n", namespace)
    assert "Forbidden" in refused.value.stderr
    assert who in refused.value.stderr

    cluster.kubectl(
        "create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "nobody-reads-pods",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:nobody",
        "-n",
        namespace,
    )
    wait_until(
        "the RoleBinding to take effect",
        lambda: (
            as_nobody.kubectl("auth", "can-i", "list", "pods", "-n", namespace, check=False).strip()
            == "yes"
        ),
        timeout=10,
    )
    as_nobody.kubectl("get", "pods", "-n", namespace)
    with pytest.raises(KubectlError):
        as_nobody.kubectl("get", "secrets", "-n", namespace)


# --- the local control plane's processes -------------------------------------------------------


@pytest.fixture
def local(cluster: Cluster) -> DevCluster:
    if not isinstance(cluster, DevCluster):
        pytest.skip("the session's cluster was not started by this session")
    return cluster


def test_the_binaries_report_their_versions(local: DevCluster) -> None:
    version = json.loads(local.kubectl("version", "-o", "json"))
    client, server = version["clientVersion"], version["serverVersion"]
    assert client["gitVersion"].startswith("v1.36.")
    assert server["gitVersion"] == client["gitVersion"]
    assert (server["major"], server["minor"]) == ("1", "36")


def test_kwok_plays_many_kubelets_at_once(local: DevCluster) -> None:
    """kwok-controller reads the options gpupool gives it (not only its 4 defaults)."""
    pid = processes.running_pid(local.components()["kwok-controller"])
    command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    [config] = [arg.removeprefix("--config=") for arg in command if arg.startswith("--config=")]
    documents = list(yaml.safe_load_all(Path(config).read_text(encoding="utf-8")))
    [kwok] = [doc for doc in documents if doc and doc.get("kind") == "KwokConfiguration"]
    assert kwok["options"]["podPlayStageParallelism"] == KWOK_POD_PARALLELISM


def listening_addresses(pid: int) -> set[str]:
    """The local addresses of the TCP sockets `pid` listens on (hex, as in /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = fd.readlink().as_posix() if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    addresses = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                addresses.add(fields[1].rpartition(":")[0])
    return addresses


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}


def test_every_component_listens_on_loopback_only(local: DevCluster) -> None:
    parts = local.components()
    assert {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok-controller",
    } <= set(parts)
    for name, component in parts.items():
        pid = processes.running_pid(component)
        assert pid is not None, f"{name} is not running"
        addresses = listening_addresses(pid)
        assert addresses, f"{name} listens nowhere"
        assert addresses <= LOOPBACK, f"{name} listens on {addresses}"


def test_the_api_server_restarts_and_keeps_its_data(local: DevCluster, namespace: str) -> None:
    local.kubectl("create", "configmap", "survivor", "-n", namespace, "--from-literal=k=v")
    before = processes.running_pid(local.components()["kube-apiserver"])
    asyncio.run(local.restart_apiserver(downtime=1.0))
    after = processes.running_pid(local.components()["kube-apiserver"])
    assert before is not None and after is not None and after != before
    data = get(local, "configmap", "survivor", "-n", namespace)["data"]
    assert data == {"k": "v"}
    assert all(processes.running_pid(c) for c in local.components().values())
    # The controller-manager still works: a new namespace gets its ServiceAccount.
    again = f"{namespace}-after"
    local.create_namespace(again)
    local.delete_namespace(again)
