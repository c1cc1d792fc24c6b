"""Index records: what the operator keeps of pods, nodes and GPUNodes."""

from __future__ import annotations

from gpupool.controller.records import (
    GPUPodRecord,
    gpu_pod_record,
    job_record,
    node_record,
    pod_record,
)

from .builders import make_gpunode, make_job, make_node, make_pod, other_pod_body


def test_worker_pod_record_reads_owner_index_incarnation_and_gpus() -> None:
    pod = make_pod("vision/resnet", index=3, node="node-2", incarnation=4).gpus(8).running().obj()
    assert pod.job_key == ("vision", "resnet")
    assert (pod.index, pod.incarnation, pod.node, pod.gpus) == (3, 4, "node-2", 8)
    assert pod.occupies_gpus and not pod.terminal


def test_terminal_pods_hold_no_gpus_and_carry_their_checkpoint() -> None:
    done = make_pod("vision/resnet").terminated(
        "Failed", exit_code=143, message='{"checkpoint": "s3://ckpt/step-100"}'
    )
    pod = done.obj()
    assert not pod.occupies_gpus
    assert pod.checkpoint == "s3://ckpt/step-100"
    assert "exited 143" in pod.message


def test_terminating_pods_still_hold_their_gpus() -> None:
    pod = make_pod("vision/resnet").running().deleting().obj()
    assert pod.deleting and pod.occupies_gpus


def test_a_pod_without_a_gpujob_owner_is_not_a_worker() -> None:
    body = make_pod("vision/resnet").raw()
    body["metadata"]["ownerReferences"] = []
    assert pod_record(body) is None


def test_node_readiness_and_capacity() -> None:
    assert make_node("node-1", 8).ready
    down = make_node("node-2", 8, ready=False)
    assert not down.ready and down.not_ready_reason == "NodeStatusUnknown"
    assert make_node("node-3", 4, rack="r1").rack == "r1"


def test_gpunode_devices_with_attribution_and_health() -> None:
    gpunode = make_gpunode(
        "node-1", users={0: "vision/resnet-0-0"}, utilization=42, unhealthy={5: "XID 79"}
    )
    assert gpunode.devices[0].pod == ("vision", "resnet-0-0")
    assert gpunode.devices[0].utilization_1m == 42
    assert [d.index for d in gpunode.unhealthy] == [5]


def test_job_record_keeps_a_spec_error_instead_of_failing() -> None:
    record = make_job("vision/bad").spec(gpusPerWorker=0).obj()
    assert record.spec is None
    assert record.spec_error.startswith("spec.gpusPerWorker")


def test_job_record_holds_its_status_as_json_not_the_watched_dicts() -> None:
    body = make_job("vision/a").status(phase="Pending", detail="needs 8 GPUs").raw()
    record = job_record(body)
    assert record.raw_status == body["status"]
    assert b" " not in record.status_json.replace(b"needs 8 GPUs", b"")  # compact
    body["status"]["phase"] = "Running"  # the watched object is not kept alive
    assert record.raw_status["phase"] == "Pending"
    record.raw_status["phase"] = "Failed"  # every read is a fresh copy
    assert record.parsed_status().phase == "Pending"


def test_any_pod_holding_gpus_on_a_node_is_recorded_whoever_made_it() -> None:
    record = gpu_pod_record(other_pod_body("serving/llm-0", node="node-1", gpus=2))
    assert record == GPUPodRecord("serving", "llm-0", "node-1", 2, 0)
    # requests alone count (extended resources: requests equal limits)
    alone = gpu_pod_record(other_pod_body("serving/llm-1", gpus=1, requests_only=True))
    assert alone is not None and alone.gpus == 1
    # not bound yet, finished, or no GPUs: nothing held
    assert gpu_pod_record(other_pod_body("serving/llm-2", node=None)) is None
    assert gpu_pod_record(other_pod_body("serving/llm-3", phase="Succeeded")) is None
    assert gpu_pod_record(other_pod_body("serving/cpu", gpus=0)) is None
    # gpupool's own workers have their own records
    worker = make_pod("vision/resnet").gpus(8).running().raw()
    assert gpu_pod_record(worker) is None and pod_record(worker) is not None


def test_init_containers_and_sidecars_count_as_kube_scheduler_counts_them() -> None:
    body = other_pod_body("serving/llm-0", gpus=1)
    body["spec"]["initContainers"] = [
        {"name": "warm", "resources": {"limits": {"nvidia.com/gpu": "4"}}},
        {
            "name": "proxy",
            "restartPolicy": "Always",
            "resources": {"limits": {"nvidia.com/gpu": "1"}},
        },
    ]
    record = gpu_pod_record(body)
    assert record is not None and record.gpus == 4  # max(4 alone, 1 sidecar + 1 main)
    body["spec"]["initContainers"].reverse()  # the sidecar runs beside the init container
    record = gpu_pod_record(body)
    assert record is not None and record.gpus == 5


def test_the_gpu_resource_name_is_the_operators_setting() -> None:
    body = other_pod_body("serving/llm-0", gpus=2)
    limits = body["spec"]["containers"][0]["resources"]["limits"]
    limits["amd.com/gpu"] = limits.pop("nvidia.com/gpu")
    assert gpu_pod_record(body) is None
    record = gpu_pod_record(body, "amd.com/gpu")
    assert record is not None and record.gpus == 2
    node = {"metadata": {"name": "n"}, "status": {"allocatable": {"amd.com/gpu": "8"}}}
    assert node_record(node, "amd.com/gpu").gpus == 8 and node_record(node).gpus == 0


def test_a_worker_its_kubelet_refused_says_why() -> None:
    body = make_pod("vision/resnet").raw()
    body["status"] = {"phase": "Failed", "reason": "OutOfnvidia.com/gpu", "message": "no"}
    refused = pod_record(body)
    assert refused is not None and refused.refused == "OutOfnvidia.com/gpu"
    body["status"]["reason"] = "Evicted"
    evicted = pod_record(body)
    assert evicted is not None and evicted.refused == ""
