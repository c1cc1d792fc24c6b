"""Kubeflow's training-operator (v1, PyTorchJob `kubeflow.org/v1`) on the local control
plane: a PyTorchJob's master and worker pods run on kwok GPU nodes and it succeeds when
its master does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gpupool.devcluster import FAKE_DURATION, Cluster, KubectlError
from gpupool.devcluster.controllers import RunningController

from .workloads import pod_spec, pods, wait_condition, wait_phases

pytestmark = pytest.mark.controllers("training-operator")


def replica(gpus: int, *, replicas: int, duration: str) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "restartPolicy": "Never",
        "template": {
            "metadata": {"annotations": {FAKE_DURATION: duration}},
            "spec": pod_spec(gpus, container="pytorch"),
        },
    }


def pytorchjob(name: str, *, masters: int, workers: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": replica(2, replicas=masters, duration="4s"),
                "Worker": replica(2, replicas=workers, duration="4s"),
            }
        },
    }


def create(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))


def test_a_pytorchjob_runs_its_master_and_workers_and_succeeds(
    cluster: Cluster, namespace: str, workload_controllers: list[RunningController]
) -> None:
    create(cluster, namespace, pytorchjob("ddp", masters=1, workers=2))

    selector = "training.kubeflow.org/job-name=ddp"
    wait_condition(cluster, "pytorchjob", "ddp", namespace, "Running")
    types = sorted(
        p["metadata"]["labels"]["training.kubeflow.org/replica-type"]
        for p in pods(cluster, namespace, selector)
    )
    assert types == ["master", "worker", "worker"]
    wait_condition(cluster, "pytorchjob", "ddp", namespace, "Succeeded")
    wait_phases(cluster, namespace, selector, ["Succeeded"] * 3)
    # The operator wires the workers to the master (its own env, not the manifest's).
    env = {
        e["name"]: e.get("value")
        for p in pods(cluster, namespace, f"{selector},training.kubeflow.org/replica-type=worker")
        for e in p["spec"]["containers"][0].get("env") or ()
    }
    assert env["MASTER_ADDR"] == "ddp-master-0"
    assert env["WORLD_SIZE"] == "3"


def test_the_validating_webhook_refuses_two_masters(
    cluster: Cluster, namespace: str, workload_controllers: list[RunningController]
) -> None:
    with pytest.raises(KubectlError, match=r"Master.*replicas.*must be 1"):
        create(cluster, namespace, pytorchjob("two", masters=2, workers=1))
