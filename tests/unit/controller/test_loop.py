"""The scheduling loop end to end against an in-memory API server (fake clock, no cluster).

The same scenarios run on the real control plane in tests/integration/operator/; these
pin the loop's bookkeeping: assume → create → settle, checkpoint → evict → requeue,
finish, retry, and what a restarted operator picks up from status and pods.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gpupool.controller.clock import as_datetime
from gpupool.controller.preemption import EvictionRecord
from gpupool.k8s import EVENTS, GPUJOBS, GPUNODES, PODS
from gpupool.planner import PreemptionReason
from gpupool.workload import worker

from .builders import other_pod_body
from .world import JSON, World, job


def serving_pod(key: str, *, node: str, gpus: int) -> JSON:
    """A pod of an inference Deployment, placed by kube-scheduler: not gpupool's."""
    return other_pod_body(key, node=node, gpus=gpus)


async def test_idle_capacity_is_lent_and_taken_back_after_a_checkpoint(world: World) -> None:
    """2 nodes × 8 GPUs; vision guaranteed 8 runs two 8-GPU jobs (borrowing 8);
    nlp, guaranteed 8, submits one: a vision job is evicted and requeued, nlp runs."""
    world.kube.put(GPUJOBS, job("vision/a"))
    world.kube.put(GPUJOBS, job("vision/b"))
    await world.cycle()
    assert sorted(p["spec"]["nodeName"] for p in world.pods()) == ["node-1", "node-2"]
    await world.cycle()
    assert world.status("vision/a")["phase"] == "Admitted"
    world.run_pods()
    await world.cycle()
    assert world.status("vision/a")["phase"] == "Running"
    assert world.condition("vision/a", "Running") == ("True", "AllWorkersRunning")
    tq = world.kube.objects[("teamquotas", "", "vision")]["status"]
    assert (tq["allocatedGPUs"], tq["borrowedGPUs"]) == (16, 8)

    world.kube.put(GPUJOBS, job("nlp/bert"))
    await world.cycle(0)  # the dry run of its worker pod, before anyone is preempted
    await world.cycle()
    evicted = [k for k in ("vision/a", "vision/b") if world.status(k)["phase"] == "Pending"]
    assert len(evicted) == 1
    (victim,) = evicted
    status = world.status(victim)
    assert status["preemptions"] == 1
    assert world.condition(victim, "Preempted")[0] == "True"
    assert world.condition(victim, "CheckpointRequested") == ("False", "Done")
    (note,) = world.events("Requeued")
    assert "nlp/bert (team nlp)" in note

    await world.cycle()
    await world.cycle()
    assert world.status("nlp/bert")["phase"] == "Admitted"
    assert len(world.pods("nlp")) == 1
    world.run_pods()
    await world.cycle()
    assert world.status(victim)["phase"] == "Pending"
    assert world.status(victim)["pendingReason"] != ""


async def test_the_resumed_job_gets_its_checkpoint_and_restart_count(world: World) -> None:
    world.kube.put(
        GPUJOBS,
        job("vision/a")
        | {
            "status": {
                "restarts": 1,
                "admittedAt": "2026-01-01T11:00:00Z",
                "lastCheckpoint": {"location": "s3://ckpt/a/step-9", "source": "hook"},
            }
        },
    )
    await world.cycle()
    (pod,) = world.pods()
    assert pod["metadata"]["name"] == "a-2-0"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["GPUPOOL_RESUME_FROM"] == "s3://ckpt/a/step-9"
    assert env["GPUPOOL_RESTART_COUNT"] == "2"
    await world.cycle()
    assert world.status("vision/a")["restarts"] == 2
    assert world.events("Resumed")


async def test_a_gang_is_all_or_nothing(world: World) -> None:
    world.kube.put(GPUJOBS, job("vision/big", workers=3))
    await world.cycle()
    assert world.pods() == []
    assert world.status("vision/big")["phase"] == "Pending"
    assert world.status("vision/big")["pendingReason"] == "Unschedulable"


async def test_rank_zero_success_finishes_the_job_and_frees_the_rest(world: World) -> None:
    world.kube.put(GPUJOBS, job("vision/ddp", gpus=4, workers=2))
    await world.cycle()
    world.run_pods()
    rank0 = next(p for p in world.pods() if p["metadata"]["name"].endswith("-0"))
    rank0["status"] = {"phase": "Succeeded"}
    await world.cycle()
    assert world.status("vision/ddp")["phase"] == "Succeeded"
    assert world.condition("vision/ddp", "Finished") == ("True", "Completed")
    assert [p["metadata"]["name"] for p in world.pods()] == ["ddp-0-0"]


async def test_a_failed_worker_is_retried_then_the_job_fails(world: World) -> None:
    world.kube.put(GPUJOBS, job("vision/flaky", backoffLimit=1))
    for attempt in (1, 2):
        await world.cycle(seconds=600)
        world.run_pods()
        (pod,) = [p for p in world.pods() if p["status"]["phase"] == "Running"]
        pod["status"] = {"phase": "Failed"}
        await world.cycle()
        assert world.status("vision/flaky")["failures"] == attempt
    assert world.status("vision/flaky")["phase"] == "Failed"
    assert world.condition("vision/flaky", "Finished") == ("True", "BackoffLimitExceeded")
    counted = [p for p in world.pods() if p["metadata"]["labels"].get("gpupool.io/failure-counted")]
    assert len(counted) == 2


async def test_a_restart_rebuilds_everything_from_pods_and_status(world: World) -> None:
    world.kube.put(GPUJOBS, job("vision/a"))
    world.kube.put(GPUJOBS, job("vision/b"))
    await world.cycle()
    world.run_pods()
    await world.cycle()
    await world.restart()
    world.kube.put(GPUJOBS, job("nlp/bert", gpus=8))
    world.kube.put(GPUJOBS, job("vision/c", gpus=8))
    await world.cycle()
    # No GPU is double-booked: at most 16 GPUs of pods on 2 × 8.
    held = sum(
        int(p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        for p in world.pods()
    )
    assert held <= 16
    assert {world.status(k)["restarts"] for k in ("vision/a", "vision/b")} == {0}


async def test_a_job_outside_its_teams_namespaces_waits_with_a_reason(world: World) -> None:
    world.kube.put(GPUJOBS, job("vision/sneaky", team="nlp"))
    await world.cycle()
    assert world.pods() == []
    status = world.status("vision/sneaky")
    assert status["pendingReason"] == "NamespaceNotInTeam"
    assert world.condition("vision/sneaky", "Admitted") == ("False", "NamespaceNotInTeam")
    assert world.events("NamespaceNotInTeam")


async def test_a_refused_admission_is_undone_and_requeued(world: World) -> None:
    world.kube.refuse.add(("pods", "a-0-1"))
    world.kube.put(GPUJOBS, job("vision/a", gpus=4, workers=2))
    await world.cycle()
    assert world.pods() == []
    assert world.scheduler.cache.assumption(("vision", "a")) is None
    assert world.events("AdmissionFailed")
    world.kube.refuse.clear()
    await world.cycle(seconds=60)
    assert len(world.pods()) == 2


async def test_the_hook_gets_its_whole_timeout_even_when_the_record_is_written_late(
    world: World,
) -> None:
    """A reclaim burst queues the preemption record's write for 2 minutes, longer than
    the 60 s hook timeout: the hook still runs (here it fails: nothing answers), instead
    of the eviction proceeding as if its time had run out."""
    hook = {"mode": "httpPost", "timeoutSeconds": 60, "httpPost": {"port": 8080}}
    world.kube.put(GPUJOBS, job("vision/a", checkpoint=hook))
    world.kube.put(GPUJOBS, job("vision/b", checkpoint=hook))
    for _ in range(3):
        await world.cycle()
        world.run_pods()
    write = world.kube.patch

    async def slow_record_write(*args: Any, **kwargs: Any) -> JSON:
        body = args[2] if len(args) > 2 else kwargs.get("body", {})
        conditions = (body.get("status") or {}).get("conditions") or ()
        if any(c["type"] == "CheckpointRequested" and c["status"] == "True" for c in conditions):
            world.clock.advance(120)
        return await write(*args, **kwargs)

    world.kube.patch = slow_record_write  # type: ignore[method-assign]
    world.kube.put(GPUJOBS, job("nlp/bert"))
    await world.cycle(0)  # the dry run of its worker pod, before anyone is preempted
    await world.cycle()
    (note,) = world.events("Requeued")
    assert "deadline passed" not in note
    assert "checkpoint hook failed" in note


async def test_a_queue_position_alone_is_written_once_its_interval_has_passed(
    world: World,
) -> None:
    """Figures that move every cycle for thousands of pending jobs are held back (not
    even rendered) for the minor-write interval; a new reason is written at once."""
    for name in ("a", "b", "c", "d", "e"):
        world.kube.put(GPUJOBS, job(f"vision/{name}", gpus=8))
    await world.cycle()
    world.run_pods()
    await world.cycle()
    await world.cycle()
    assert [world.status(f"vision/{n}")["queuePosition"] for n in "cde"] == [1, 2, 3]
    assert world.status("vision/e")["pendingReason"] == "QueuedBehind"
    rendered: list[Any] = []
    render = world.scheduler._render_job

    def counting(key: Any, stored: Any) -> Any:
        rendered.append(key)
        return render(key, stored)

    world.scheduler._render_job = counting  # type: ignore[method-assign]
    await world.kube.delete(GPUJOBS, "c", "vision")
    await world.cycle()
    assert ("vision", "e") not in rendered
    # d is first now: a new reason, written at once; e only moved up: held back.
    assert world.status("vision/d")["pendingReason"] == "InsufficientGPUs"
    assert world.status("vision/e")["queuePosition"] == 3
    await world.cycle(seconds=61.0)
    assert world.status("vision/e")["queuePosition"] == 2
    assert "first: vision/d" in world.status("vision/e")["detail"]


async def test_admitted_waits_a_moment_for_running_one_write_instead_of_two(
    world: World,
) -> None:
    world.scheduler.config = replace(world.scheduler.config, admitted_status_delay_seconds=5.0)
    world.kube.put(GPUJOBS, job("vision/quick"))
    world.kube.put(GPUJOBS, job("vision/slow"))
    await world.cycle()
    await world.cycle()
    # Pods created, not started yet: no Admitted write within the delay.
    assert world.status("vision/quick").get("phase") is None
    for pod in world.pods():
        if pod["metadata"]["name"].startswith("quick"):
            pod.setdefault("status", {})["phase"] = "Running"
    await world.cycle()
    assert world.status("vision/quick")["phase"] == "Running"
    writes = [c for c in world.kube.calls if c[0] == "patch/status" and c[2] == "quick"]
    assert len(writes) == 1  # Running; Admitted was never written
    # A job whose pods do not start says so once the delay has passed.
    await world.cycle(seconds=5.0)
    assert world.status("vision/slow")["phase"] == "Admitted"


async def test_while_status_writes_are_behind_admitted_waits_up_to_a_minute(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.scheduler.config = replace(world.scheduler.config, admitted_status_delay_seconds=5.0)
    monkeypatch.setattr(world.scheduler, "behind", lambda: True)
    world.kube.put(GPUJOBS, job("vision/slow"))
    await world.cycle()
    await world.cycle()
    await world.cycle(seconds=30.0)
    assert world.status("vision/slow").get("phase") is None  # held: the writes are behind
    await world.cycle(seconds=31.0)
    assert world.status("vision/slow")["phase"] == "Admitted"  # never longer than 60 s


async def test_behind_means_more_status_writes_queued_than_a_few_rounds(world: World) -> None:
    scheduler = world.scheduler
    assert not scheduler.behind()
    for index in range(scheduler._backlog + 1):
        scheduler._statuses._waiting[("job", ("vision", f"j{index}"))] = None
    assert scheduler.behind()
    # Every TeamQuota is queued each cycle: they alone are no backlog.
    scheduler._statuses._waiting.clear()
    for index in range(scheduler._backlog + 10):
        scheduler._statuses._waiting[("team", ("", f"t{index}"))] = None
    scheduler._team_writes = scheduler._backlog + 10
    assert not scheduler.behind()


async def test_a_job_that_starts_is_queued_urgent_its_pending_status_is_not(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[str, bool]] = []
    statuses = world.scheduler._statuses
    add = statuses.add

    def record(key: tuple[str, Any], *, urgent: bool = False) -> None:
        if key[0] == "job":
            queued.append((key[1][1], urgent))
        add(key, urgent=urgent)

    monkeypatch.setattr(statuses, "add", record)
    world.kube.put(GPUJOBS, job("vision/runs"))
    world.kube.put(GPUJOBS, job("vision/waits", workers=8, gpus=8))  # more than the pool
    await world.cycle()
    await world.cycle()
    for pod in world.pods():
        pod.setdefault("status", {})["phase"] = "Running"
    await world.cycle()
    assert ("waits", False) in queued
    assert ("runs", True) in queued
    assert world.status("vision/runs")["phase"] == "Running"
    assert world.status("vision/waits")["phase"] == "Pending"


async def test_a_worker_refused_by_its_kubelet_is_a_placement_conflict(world: World) -> None:
    """kube-scheduler put an inference pod on the GPUs gpupool had just planned; the
    kubelet refuses gpupool's worker (OutOfnvidia.com/gpu). The job is re-planned onto
    the other node, nothing is counted against its backoffLimit."""
    world.kube.put(GPUJOBS, job("vision/a", backoffLimit=0))
    await world.cycle()
    (worker,) = world.pods()
    node = worker["spec"]["nodeName"]
    worker["status"] = {
        "phase": "Failed",
        "reason": "OutOfnvidia.com/gpu",
        "message": "Pod was rejected: Node didn't have enough resource: nvidia.com/gpu",
    }
    world.kube.put(PODS, serving_pod("vision/serve-0", node=node, gpus=8))
    await world.cycle(seconds=0.5)
    await world.cycle(seconds=0.5)
    status = world.status("vision/a")
    assert status["phase"] == "Pending" and status.get("failures", 0) == 0
    assert status["pendingReason"] == "PlacementConflict"
    (note,) = world.events("PlacementConflict")
    assert "OutOfnvidia.com/gpu" in note and "no failure counted" in note
    await world.cycle(seconds=5)
    (again,) = [p for p in world.pods("vision") if p["metadata"]["name"].startswith("a-")]
    assert again["spec"]["nodeName"] != node
    assert again["metadata"]["name"] == "a-1-0"


async def test_gpus_held_by_pods_gpupool_did_not_create_are_never_given_out(
    world: World,
) -> None:
    """An inference Deployment's pods hold 6 GPUs of node-1 and 8 of node-2: of three
    8-GPU jobs none can start, a 2-GPU one goes beside the inference pods, and vision's
    TeamQuota shows the inference pods as its unmanaged allocation."""
    world.kube.put(PODS, serving_pod("vision/serve-0", node="node-1", gpus=6))
    world.kube.put(PODS, serving_pod("vision/serve-1", node="node-2", gpus=8))
    world.kube.put(GPUJOBS, job("vision/big"))
    world.kube.put(GPUJOBS, job("nlp/small", gpus=2))
    await world.cycle()
    await world.cycle()
    placed = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in world.pods("nlp")}
    assert placed == {"small-0-0": "node-1"}
    assert world.status("vision/big")["phase"] == "Pending"
    tq = world.kube.objects[("teamquotas", "", "vision")]["status"]
    assert (tq["allocatedGPUs"], tq["unmanagedGPUs"]) == (14, 14)


async def killed_mid_reclaim(world: World, rank0: JSON) -> None:
    """vision/ddp (2 workers) runs; an operator persisted its reclaim and died; rank 0's
    pod became `rank0`; a new operator starts."""
    world.kube.put(GPUJOBS, job("vision/ddp", gpus=4, workers=2))
    await world.cycle()
    world.run_pods()
    await world.cycle()
    assert world.status("vision/ddp")["phase"] == "Running"
    record = EvictionRecord.start(
        PreemptionReason.RECLAIM_BORROWED,
        now=as_datetime(world.clock.now()),
        timeout_seconds=60,
        incarnation=0,
        for_job="nlp/bert",
        for_team="nlp",
    )
    stored = world.kube.objects[("gpujobs", "vision", "ddp")]
    stored["status"]["phase"] = "Checkpointing"
    stored["status"]["conditions"].append(record.to_condition().to_k8s())
    pod = next(p for p in world.pods() if p["metadata"]["name"] == "ddp-0-0")
    pod["status"] = rank0["status"]
    pod["metadata"].update(rank0.get("metadata", {}))
    await world.restart()


async def test_a_worker_that_exits_0_on_sigterm_is_preempted_not_finished(world: World) -> None:
    """Rank 0 exited 0 after its deletion began: it answered the SIGTERM (saved and
    left); the run did not finish, the job is requeued."""
    deleted = {"deletionTimestamp": "2026-01-01T12:00:00Z"}
    await killed_mid_reclaim(world, {"status": {"phase": "Succeeded"}, "metadata": deleted})
    await world.cycle()
    await world.cycle()
    status = world.status("vision/ddp")
    assert (status["phase"], status["preemptions"]) == ("Pending", 1)
    assert world.events("Succeeded") == []


async def test_a_run_that_completed_during_its_reclaim_is_finished_not_preempted(
    world: World,
) -> None:
    """The operator was killed while reclaiming vision/ddp, and its rank 0 completed
    meanwhile: the restarted operator records the job as finished — no preemption
    counted, no Preempted condition, no Requeued Event — and removes the other worker."""
    await killed_mid_reclaim(world, {"status": {"phase": "Succeeded"}})
    await world.cycle()
    await world.cycle()
    status = world.status("vision/ddp")
    assert status["phase"] == "Succeeded"
    assert status["preemptions"] == 0
    assert world.condition("vision/ddp", "Finished") == ("True", "Completed")
    assert world.condition("vision/ddp", "CheckpointRequested")[0] == "False"
    assert "Preempted" not in {c["type"] for c in status["conditions"]}
    assert world.events("Requeued") == []
    (note,) = world.events("Succeeded")
    assert "completed while being checkpointed" in note
    assert [p["metadata"]["name"] for p in world.pods()] == ["ddp-0-0"]


async def test_of_two_borrowers_the_one_that_saved_a_minute_ago_is_taken(world: World) -> None:
    """vision borrows 8 GPUs with two equal jobs running for 10 minutes; b's node agent
    published that b saved a minute ago. nlp claims its 8 GPUs: b loses a minute of
    work, a ten, so b is taken — and b's status says where it saved."""
    world.kube.put(GPUJOBS, job("vision/a"))
    world.kube.put(GPUJOBS, job("vision/b"))
    await world.cycle()
    world.run_pods()
    await world.cycle()
    await world.cycle(seconds=540)
    (pod,) = world.pods_of("vision/b")
    saved = as_datetime(world.clock.now())
    world.kube.put(
        GPUNODES,
        {
            "metadata": {"name": pod["spec"]["nodeName"]},
            "spec": {"nodeName": pod["spec"]["nodeName"]},
            "status": {
                "checkpoints": [
                    {
                        "namespace": "vision",
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"],
                        "location": "s3://ckpt/b/step-900",
                        "savedAt": saved.isoformat(),
                    }
                ]
            },
        },
    )
    await world.cycle(seconds=60)
    last = world.status("vision/b")["lastCheckpoint"]
    assert (last["location"], last["source"]) == ("s3://ckpt/b/step-900", "workload")
    world.kube.put(GPUJOBS, job("nlp/bert"))
    await world.cycle(0)  # the dry run of its worker pod, before anyone is preempted
    await world.cycle()
    assert world.status("vision/b")["phase"] == "Pending"
    assert world.status("vision/b")["preemptions"] == 1
    assert world.status("vision/a")["phase"] == "Running"


def worlds(pods: list[JSON]) -> tuple[int, list[tuple[int, int]]]:
    """(incarnation, [(rank, world size)]) of the live pods, which must agree on
    everything but their rank — what a static DDP rendezvous needs."""
    places = [worker(env_of(pod)) for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    assert len({(p.incarnation, p.world_size, p.master_addr) for p in places}) == 1, places
    ranks = sorted((p.rank, p.world_size) for p in places)
    assert [rank for rank, _ in ranks] == list(range(len(places)))
    assert {size for _, size in ranks} == {len(places)}
    (zero,) = [pod for pod in pods if worker(env_of(pod)).rank == 0]
    assert places[0].master_addr.startswith(zero["spec"]["hostname"] + ".")
    return places[0].incarnation, ranks


async def test_an_elastic_job_starts_again_at_its_new_size_after_a_shrink_and_a_grow(
    world: World,
) -> None:
    """vision's elastic 1–2 × 8 job takes both nodes; nlp claims 8 GPUs: every worker is
    checkpointed and the job starts again as incarnation 1 with WORLD_SIZE 1 from its
    checkpoint; when nlp is done it grows back: incarnation 2, WORLD_SIZE 2, ranks 0, 1.
    No GPU is handed out twice in between."""
    world.kube.put(
        GPUJOBS,
        job("vision/e", workers=None, minWorkers=1, maxWorkers=2)
        | {"status": {"lastCheckpoint": {"location": "s3://ckpt/e/1", "source": "hook"}}},
    )
    await world.cycle()
    world.run_pods()
    await world.cycle()
    assert worlds(world.pods_of("vision/e")) == (0, [(0, 2), (1, 2)])

    world.kube.put(GPUJOBS, job("nlp/bert"))
    await world.cycle(0)  # the dry run of its worker pod, before anyone is shrunk
    await world.cycle()
    await world.cycle()
    assert worlds(world.pods_of("vision/e")) == (1, [(0, 1)])
    (pod,) = world.pods_of("vision/e")
    assert env_of(pod)["GPUPOOL_RESUME_FROM"] == "s3://ckpt/e/1"
    assert "Shrunk" in {e["reason"] for e in world.kube.items(EVENTS)}
    world.run_pods()
    for _ in range(3):
        await world.cycle()
    assert world.status("vision/e")["phase"] == "Running"
    assert world.status("vision/e")["preemptions"] == 0
    assert len(world.pods("nlp")) == 1
    assert sum(gpus(p) for p in world.pods() if p["status"].get("phase") != "Succeeded") <= 16

    (bert,) = world.pods("nlp")
    bert["status"] = {"phase": "Succeeded"}
    await world.cycle()
    await world.cycle()
    await world.cycle()
    assert worlds(world.pods_of("vision/e")) == (2, [(0, 2), (1, 2)])
    (note,) = world.events("Grown")
    assert "WORLD_SIZE 2" in note and "s3://ckpt/e/1" in note
    world.run_pods()
    await world.cycle()
    assert world.status("vision/e")["phase"] == "Running"
    assert world.status("vision/e")["restarts"] == 2


def gpus(pod: JSON) -> int:
    return int(pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])


def env_of(pod: JSON) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}
