"""Kubeflow Trainer v2 (TrainJob, `trainer.kubeflow.org/v1alpha1`) on the local control
plane: a TrainJob on a torch ClusterTrainingRuntime becomes a JobSet (Trainer runs on
JobSet), whose pods run on kwok GPU nodes, and it completes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gpupool.devcluster import GPU_RESOURCE, Cluster
from gpupool.devcluster.controllers import RunningController

from .workloads import pod_spec, pods, wait_condition, wait_phases

pytestmark = pytest.mark.controllers("jobset", "trainer")


@pytest.fixture
def runtime(
    cluster: Cluster, namespace: str, workload_controllers: list[RunningController]
) -> Iterator[str]:
    """A torch ClusterTrainingRuntime like upstream's torch-distributed (no images)."""
    name = f"torch-{namespace}"
    job = {
        "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
        "spec": {"template": {"spec": pod_spec(1, container="node")}},
    }
    cluster.apply(
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "ClusterTrainingRuntime",
            "metadata": {"name": name},
            "spec": {
                "mlPolicy": {"numNodes": 1, "torch": {"numProcPerNode": "auto"}},
                "template": {"spec": {"replicatedJobs": [{"name": "node", "template": job}]}},
            },
        }
    )
    yield name
    cluster.kubectl("delete", "clustertrainingruntime", name, "--ignore-not-found", "--wait=false")


def test_a_trainjob_runs_as_a_jobset_and_completes(
    cluster: Cluster, namespace: str, runtime: str
) -> None:
    trainjob: dict[str, Any] = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "ddp"},
        "spec": {
            "runtimeRef": {"name": runtime},
            "trainer": {"numNodes": 2, "resourcesPerNode": {"limits": {GPU_RESOURCE: "4"}}},
        },
    }
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(trainjob))

    wait_condition(cluster, "trainjob", "ddp", namespace, "Complete")

    jobset = cluster.kubectl_json("get", "jobset", "ddp", "-n", namespace)
    assert jobset["metadata"]["ownerReferences"][0]["kind"] == "TrainJob"
    selector = "jobset.sigs.k8s.io/jobset-name=ddp"
    wait_phases(cluster, namespace, selector, ["Succeeded", "Succeeded"])
    limits = {
        p["spec"]["containers"][0]["resources"]["limits"][GPU_RESOURCE]
        for p in pods(cluster, namespace, selector)
    }
    assert limits == {"4"}
