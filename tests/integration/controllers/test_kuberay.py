"""The KubeRay operator (ray-project/kuberay/ray-operator) on the local control plane: a
RayJob becomes a RayCluster whose head and worker pods run on kwok GPU nodes, and its
submitter Job is created once the cluster is ready.

Where this stops: KubeRay learns that the Ray job ended from the Ray dashboard (HTTP on
the head pod), which a kwok pod does not serve, so a RayJob here never reaches
Complete; its suspension, hold and release do not need the dashboard.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gpupool.devcluster import Cluster, wait_until
from gpupool.devcluster.controllers import RunningController

from .workloads import WAIT, phases, pod_spec

pytestmark = pytest.mark.controllers("kuberay")

RAY_IMAGE = "rayproject/ray:2.46.0"


def rayjob(name: str, *, workers: int, gpus: int) -> dict[str, Any]:
    head = pod_spec(0, container="ray-head")
    head["containers"][0]["resources"] = {}
    worker = pod_spec(gpus, container="ray-worker")
    for spec in (head, worker):
        spec["containers"][0]["image"] = RAY_IMAGE
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "python /train.py",
            "rayClusterSpec": {
                "rayVersion": "2.46.0",
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": head}},
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": workers,
                        "minReplicas": workers,
                        "maxReplicas": workers,
                        "rayStartParams": {},
                        "template": {"spec": worker},
                    }
                ],
            },
        },
    }


def test_a_rayjob_gets_a_ray_cluster_whose_pods_run_and_a_submitter(
    cluster: Cluster, namespace: str, workload_controllers: list[RunningController]
) -> None:
    manifest = rayjob("ddp", workers=2, gpus=4)
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def deployment_status() -> str:
        job = cluster.kubectl_json("get", "rayjob", "ddp", "-n", namespace)
        status: str = job.get("status", {}).get("jobDeploymentStatus", "")
        return status

    wait_until("the RayJob Running", lambda: deployment_status() == "Running", timeout=WAIT)

    job = cluster.kubectl_json("get", "rayjob", "ddp", "-n", namespace)
    ray_cluster = job["status"]["rayClusterName"]
    state = cluster.kubectl_json("get", "raycluster", ray_cluster, "-n", namespace)["status"]
    assert state["state"] == "ready"
    assert state["readyWorkerReplicas"] == 2
    selector = f"ray.io/cluster={ray_cluster}"
    assert phases(cluster, namespace, f"{selector},ray.io/node-type=head") == ["Running"]
    assert phases(cluster, namespace, f"{selector},ray.io/node-type=worker") == ["Running"] * 2
    submitter = cluster.kubectl_json("get", "job", "ddp", "-n", namespace)
    assert submitter["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
