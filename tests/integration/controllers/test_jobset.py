"""The JobSet controller (sigs.k8s.io/jobset) on the local control plane: a JobSet
becomes its Jobs, their pods run on kwok GPU nodes, and it completes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gpupool.devcluster import Cluster, KubectlError
from gpupool.devcluster.controllers import RunningController

from .workloads import gpu_nodes, pod_spec, pods, wait_condition, wait_phases

pytestmark = pytest.mark.controllers("jobset")


def jobset(name: str, *, replicas: int, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {
            "replicatedJobs": [
                {
                    "name": "workers",
                    "replicas": replicas,
                    "template": {
                        "spec": {
                            "parallelism": 1,
                            "completions": 1,
                            "backoffLimit": 0,
                            "template": {"spec": {**pod_spec(gpus), "restartPolicy": "Never"}},
                        }
                    },
                }
            ]
        },
    }


def create(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(obj))


def test_a_jobset_runs_its_jobs_pods_and_completes(
    cluster: Cluster, namespace: str, workload_controllers: list[RunningController]
) -> None:
    create(cluster, namespace, jobset("ddp", replicas=2, gpus=4))

    done = wait_condition(cluster, "jobset", "ddp", namespace, "Completed")

    selector = "jobset.sigs.k8s.io/jobset-name=ddp"
    jobs = cluster.kubectl_json("get", "jobs", "-n", namespace, "-l", selector)["items"]
    assert sorted(j["metadata"]["name"] for j in jobs) == ["ddp-workers-0", "ddp-workers-1"]
    wait_phases(cluster, namespace, selector, ["Succeeded", "Succeeded"])
    assert done["status"]["replicatedJobsStatus"][0]["succeeded"] == 2
    # The defaulting webhook ran (the CRD itself defaults neither).
    template = done["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert template["completionMode"] == "Indexed"
    assert done["spec"]["successPolicy"]["operator"] == "All"
    assert {p["spec"]["nodeName"] for p in pods(cluster, namespace, selector)} <= gpu_nodes(cluster)


def test_the_validating_webhook_refuses_a_success_policy_naming_no_replicated_job(
    cluster: Cluster, namespace: str, workload_controllers: list[RunningController]
) -> None:
    invalid = jobset("bad", replicas=1, gpus=1)
    invalid["spec"]["successPolicy"] = {"operator": "All", "targetReplicatedJobs": ["missing"]}
    with pytest.raises(KubectlError, match=r"'missing' does not appear in \.spec\.ReplicatedJobs"):
        create(cluster, namespace, invalid)
