"""Kueue (sigs.k8s.io/kueue, cmd/kueue) on the local control plane: a suspended batch/v1
Job in a LocalQueue is admitted within its ClusterQueue's quota and runs; one over the
quota stays suspended until the first has finished."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gpupool.devcluster import FAKE_DURATION, GPU_RESOURCE, Cluster, wait_until
from gpupool.devcluster.controllers import RunningController

from .workloads import WAIT, condition, phases, pod_spec

pytestmark = pytest.mark.controllers("kueue")

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


@pytest.fixture
def queue(
    cluster: Cluster, namespace: str, workload_controllers: list[RunningController]
) -> Iterator[str]:
    """A LocalQueue `team` in the namespace, on a ClusterQueue of 8 GPUs of its own."""
    name = f"cq-{namespace}"
    cluster.apply(
        [
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ResourceFlavor",
                "metadata": {"name": name},
            },
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ClusterQueue",
                "metadata": {"name": name},
                "spec": {
                    "namespaceSelector": {},
                    "resourceGroups": [
                        {
                            "coveredResources": [GPU_RESOURCE],
                            "flavors": [
                                {
                                    "name": name,
                                    "resources": [{"name": GPU_RESOURCE, "nominalQuota": 8}],
                                }
                            ],
                        }
                    ],
                },
            },
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": "team", "namespace": namespace},
                "spec": {"clusterQueue": name},
            },
        ]
    )
    yield "team"
    cluster.kubectl("delete", "localqueue", "team", "-n", namespace, "--ignore-not-found")
    cluster.kubectl("delete", "clusterqueue", name, "--ignore-not-found", "--wait=false")
    cluster.kubectl("delete", "resourceflavor", name, "--ignore-not-found", "--wait=false")


def job(name: str, queue: str, *, gpus: int, duration: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {QUEUE_LABEL: queue}},
        "spec": {
            "suspend": True,
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {FAKE_DURATION: duration}},
                "spec": {**pod_spec(gpus), "restartPolicy": "Never"},
            },
        },
    }


def workload_of(cluster: Cluster, namespace: str, job_name: str) -> dict[str, Any] | None:
    for item in cluster.kubectl_json("get", "workloads", "-n", namespace)["items"]:
        owners = item["metadata"].get("ownerReferences") or ()
        if any(o["kind"] == "Job" and o["name"] == job_name for o in owners):
            found: dict[str, Any] = item
            return found
    return None


def evaluated(workload: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Workload once Kueue has tried to admit it (it has conditions)."""
    return workload if workload and workload.get("status", {}).get("conditions") else None


def suspended(cluster: Cluster, namespace: str, name: str) -> bool:
    spec = cluster.kubectl_json("get", "job", name, "-n", namespace)["spec"]
    return bool(spec.get("suspend"))


def test_kueue_admits_a_suspended_job_within_quota_and_holds_one_over_it(
    cluster: Cluster, namespace: str, queue: str
) -> None:
    cluster.kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(job("first", queue, gpus=6, duration="8s")),
    )
    wait_until(
        "the first Job's pod running",
        lambda: phases(cluster, namespace, "job-name=first") == ["Running"],
        timeout=WAIT,
    )
    first = workload_of(cluster, namespace, "first")
    assert first is not None and condition(first, "Admitted") == "True"
    assert not suspended(cluster, namespace, "first")

    cluster.kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(job("second", queue, gpus=6, duration="1s")),
    )
    pending = wait_until(
        "the second Job's Workload, evaluated",
        lambda: evaluated(workload_of(cluster, namespace, "second")),
        timeout=WAIT,
    )
    assert condition(pending, "QuotaReserved") == "False"
    assert suspended(cluster, namespace, "second")
    assert phases(cluster, namespace, "job-name=second") == []

    # When the first ends, its quota goes to the second.
    wait_until(
        "the second Job's pod succeeded",
        lambda: phases(cluster, namespace, "job-name=second") == ["Succeeded"],
        timeout=WAIT,
    )
    assert phases(cluster, namespace, "job-name=first") == ["Succeeded"]
    second = workload_of(cluster, namespace, "second")
    assert second is not None and condition(second, "Admitted") == "True"
