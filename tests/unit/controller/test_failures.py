"""Failure detection: workers on NotReady/vanished nodes or unhealthy GPUs."""

from __future__ import annotations

from gpupool.controller.failures import (
    NodeHealth,
    job_faults,
    node_health,
    unhealthy_gpu_users,
)

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


def test_gpus_of_excluded_pods_are_left_out() -> None:
    gpunode = make_gpunode("node-1", users={3: "ml/a-0-0"}, unhealthy={3: "XID", 4: "ECC"})
    node = make_node("node-1")
    assert node_health(node, gpunode).unhealthy == 2
    assert node_health(node, gpunode, exclude={("ml", "a-0-0")}).unhealthy == 1


def test_a_gpu_the_device_plugin_already_withholds_is_not_subtracted_twice() -> None:
    """The agent and the NVIDIA device plugin both saw XID 79 on GPU 4: allocatable is 7
    of a capacity of 8, and one GPU is out, not two."""
    gpunode = make_gpunode("node-1", unhealthy={4: "XID 79"})
    node = make_node("node-1", withheld=1)
    assert (node.capacity_gpus, node.gpus) == (8, 7)
    assert node_health(node, gpunode) == NodeHealth(unhealthy=1, handed_out=False)


def test_a_gpu_only_the_device_plugin_withholds_is_out() -> None:
    """No agent on the node (or it sees nothing): the device plugin's word counts."""
    node = make_node("node-1", withheld=2)
    assert node_health(node, None) == NodeHealth(unhealthy=2, handed_out=False)
    assert node_health(node, make_gpunode("node-1")) == NodeHealth(unhealthy=2, handed_out=False)


def test_a_bad_gpu_the_device_plugin_still_advertises_closes_the_node_to_new_pods() -> None:
    """The kubelet would hand GPU 4 to the next pod placed here: no new workers."""
    gpunode = make_gpunode("node-1", unhealthy={4: "XID 79"})
    assert node_health(make_node("node-1"), gpunode) == NodeHealth(unhealthy=1, handed_out=True)


def test_a_bad_gpu_a_pod_holds_is_not_handed_out_again() -> None:
    gpunode = make_gpunode("node-1", users={4: "ml/a-0-0"}, unhealthy={4: "XID 79"})
    assert node_health(make_node("node-1"), gpunode) == NodeHealth(unhealthy=1, handed_out=False)
