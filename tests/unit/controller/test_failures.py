"""Failure detection: workers on NotReady/vanished nodes or unhealthy GPUs."""

from __future__ import annotations

from gpupool.controller.failures import job_faults, unhealthy_counts, unhealthy_gpu_users

from .builders import make_gpunode, make_node, make_pod

NODES = {"node-1": make_node("node-1"), "node-2": make_node("node-2", ready=False)}


def test_a_worker_on_a_notready_node_is_lost_and_force_deleted() -> None:
    pods = [make_pod("ml/a", index=0, node="node-1").running().obj()]
    pods.append(make_pod("ml/a", index=1, node="node-2").running().obj())
    faults = job_faults(pods, NODES, {})
    assert [(f.pod.index, f.node_down) for f in faults] == [(1, True)]
    assert "NotReady" in faults[0].message


def test_a_worker_on_a_vanished_node_is_lost() -> None:
    pods = [make_pod("ml/a", node="node-9").running().obj()]
    faults = job_faults(pods, NODES, {})
    assert faults[0].message == "node node-9 is gone"


def test_a_worker_on_an_unhealthy_gpu_is_lost_but_its_node_is_up() -> None:
    gpunode = make_gpunode("node-1", users={3: "ml/a-0-0"}, unhealthy={3: "XID 79"})
    users = unhealthy_gpu_users([gpunode])
    pods = [make_pod("ml/a", node="node-1").running().obj()]
    faults = job_faults(pods, NODES, users)
    assert [(f.node_down, f.message) for f in faults] == [(False, "GPU 3 on node node-1 is XID 79")]


def test_unhealthy_counts_leave_out_gpus_of_excluded_pods() -> None:
    gpunode = make_gpunode("node-1", users={3: "ml/a-0-0"}, unhealthy={3: "XID", 4: "ECC"})
    assert unhealthy_counts([gpunode]) == {"node-1": 2}
    assert unhealthy_counts([gpunode], exclude={("ml", "a-0-0")}) == {"node-1": 1}
