"""Index records: what the operator keeps of pods, nodes and GPUNodes."""

from __future__ import annotations

from gpupool.controller.records import job_record, pod_record

from .builders import make_gpunode, make_job, make_node, make_pod


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
