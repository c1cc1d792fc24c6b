"""Unhealthy GPUs as the node agent and the NVIDIA device plugin report them, through
the snapshot into the planner: each bad GPU is out once, and never handed to a new pod."""

from __future__ import annotations

from gpupool.controller.ledger import Ledgers
from gpupool.controller.records import JobRecord, PodRecord
from gpupool.controller.snapshot import Indexed, build_snapshot, observe
from gpupool.planner import Plan, PlannerConfig, plan

from .builders import T0, cache, indexed, make_gpunode, make_job, make_node, make_pod, make_team

VISION = make_team("vision", namespaces=["vision"], guaranteed=16)


def cycle(world: Indexed) -> Plan:
    observation = observe(world, Ledgers(), cache(), now=T0.timestamp(), busy=set())
    return plan(build_snapshot(world, observation, {}, PlannerConfig()), T0.timestamp())


def running_jobs(count: int) -> tuple[list[JobRecord], list[PodRecord]]:
    """`count` 1-GPU jobs running on node-1."""
    jobs = [make_job(f"vision/j{i}").gpus(1).obj() for i in range(count)]
    pods = [make_pod(f"vision/j{i}", node="node-1").gpus(1).running().obj() for i in range(count)]
    return jobs, pods


def test_the_device_plugin_lowered_allocatable_the_gpu_is_out_once() -> None:
    """node-1: 8 GPUs, GPU 7 hit XID 79. The agent marks it unhealthy and the device
    plugin withholds it (allocatable 7). Seven 1-GPU jobs on the seven good GPUs all
    keep running; an eighth waits."""
    jobs, pods = running_jobs(7)
    extra = make_job("vision/extra").gpus(1).obj()
    world = indexed(
        jobs=[*jobs, extra],
        teams=[VISION],
        nodes=[make_node("node-1", withheld=1)],
        gpunodes=[make_gpunode("node-1", unhealthy={7: "XID 79"})],
        pods=pods,
    )
    decided = cycle(world)
    assert decided.preemptions == ()
    assert decided.admissions == ()
    assert decided.pending_for("vision/extra") is not None


def test_the_device_plugin_still_advertises_the_bad_gpu_no_new_pod_goes_there() -> None:
    """The device plugin has not (yet) withheld GPU 7: the kubelet could give it to the
    next pod on node-1. Six jobs run there; a resumed job goes to node-2, not to the
    one good GPU left on node-1 (which best fit would pick)."""
    jobs, pods = running_jobs(6)
    resumed = (
        make_job("vision/resumed")
        .gpus(1)
        .status(phase="Pending", preemptions=1, lastCheckpoint={"location": "s3://c/1"})
        .obj()
    )
    world = indexed(
        jobs=[*jobs, resumed],
        teams=[VISION],
        nodes=[make_node("node-1"), make_node("node-2")],
        gpunodes=[make_gpunode("node-1", unhealthy={7: "XID 79"}), make_gpunode("node-2")],
        pods=pods,
    )
    decided = cycle(world)
    assert decided.preemptions == ()
    admission = decided.admission_for("vision/resumed")
    assert admission is not None
    assert [worker.node for worker in admission.workers] == ["node-2"]


def test_with_only_that_node_the_job_waits_rather_than_risk_the_bad_gpu() -> None:
    jobs, pods = running_jobs(6)
    extra = make_job("vision/extra").gpus(1).obj()
    world = indexed(
        jobs=[*jobs, extra],
        teams=[VISION],
        nodes=[make_node("node-1")],
        gpunodes=[make_gpunode("node-1", unhealthy={7: "XID 79"})],
        pods=pods,
    )
    decided = cycle(world)
    assert decided.admissions == ()
    assert decided.preemptions == ()
    assert decided.pending_for("vision/extra") is not None
