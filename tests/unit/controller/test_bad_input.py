"""One user's bad object never steers the cluster (the loop, on the in-memory API server).

- a job whose pods the API server refuses never costs anyone a preemption, and is failed
  after a bounded number of refusals;
- a TeamQuota claiming another's namespace is refused, both say so, the older keeps it;
- a job that cannot be scheduled as written is reported once and skipped, the rest runs;
- a status someone else wrote over gpupool's records is rewritten from the ledger.
"""

from __future__ import annotations

from gpupool.controller.metrics import METRICS
from gpupool.k8s import GPUJOBS, TEAMQUOTAS
from gpupool.k8s.decoding import UNDECODABLE

from .world import World, job, team


async def borrowing(world: World) -> None:
    """vision (guaranteed 8) runs two 8-GPU jobs on 2 × 8 GPUs: it borrows nlp's 8."""
    world.kube.put(GPUJOBS, job("vision/a"))
    world.kube.put(GPUJOBS, job("vision/b"))
    for _ in range(3):
        await world.cycle()
        world.run_pods()
    assert all(world.status(k)["phase"] == "Running" for k in ("vision/a", "vision/b"))
    # gpupool's own writes are never taken for someone else's.
    assert not world.events("StatusOverwritten")


async def test_a_job_whose_pod_is_refused_preempts_nobody_and_fails(world: World) -> None:
    await borrowing(world)
    world.kube.refuse.add(("pods", "bert-0-0"))
    world.kube.put(GPUJOBS, job("nlp/bert"))
    for _ in range(5):
        await world.cycle(10)
    assert all(world.status(k)["phase"] == "Running" for k in ("vision/a", "vision/b"))
    assert not world.events("Preempting")
    assert world.status("nlp/bert")["phase"] == "Failed"
    assert world.condition("nlp/bert", "Finished") == ("True", "PodRefused")
    (failed,) = world.events("Failed")
    assert "refuses its worker pod" in failed and "nobody was preempted" in failed
    dry_runs = [c for c in world.kube.calls if c[0] == "dry-run create"]
    assert len(dry_runs) == 1


async def test_a_job_whose_pod_passes_the_dry_run_preempts_as_before(world: World) -> None:
    await borrowing(world)
    world.kube.put(GPUJOBS, job("nlp/bert"))
    await world.cycle(0)
    assert not world.events("Preempting")
    await world.cycle()
    assert len(world.events("Preempting")) == 1


async def test_refused_admissions_fail_the_job_after_three(world: World) -> None:
    world.kube.refuse.add(("pods", "a-0-0"))
    world.kube.put(GPUJOBS, job("vision/a"))
    notes = []
    for _ in range(8):
        await world.cycle(30)
        notes = world.events("AdmissionFailed")
    assert len(notes) == 2
    (failed,) = world.events("Failed")
    assert "refused the worker pods 3 times" in failed
    assert world.status("vision/a")["phase"] == "Failed"
    assert world.condition("vision/a", "Finished") == ("True", "PodRefused")
    creates = [c for c in world.kube.calls if c[0] == "create" and c[1] == "pods"]
    assert len(creates) == 3


async def test_a_namespace_claimed_twice_stays_with_the_older_team(world: World) -> None:
    rival = team("rival", 8)
    rival["spec"]["namespaces"] = ["vision", "rival"]
    rival["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    world.kube.put(TEAMQUOTAS, rival)
    world.kube.put(GPUJOBS, job("vision/a"))
    await world.cycle()
    await world.cycle()
    assert world.status("vision/a")["team"] == "vision"
    vision = world.kube.objects[("teamquotas", "", "vision")]["status"]
    refused = world.kube.objects[("teamquotas", "", "rival")]["status"]
    (held,) = [c for c in vision["conditions"] if c["type"] == "NamespaceConflict"]
    (lost,) = [c for c in refused["conditions"] if c["type"] == "NamespaceConflict"]
    assert held["status"] == lost["status"] == "True"
    assert "'rival' (newer, refused)" in held["message"]
    assert "spec.namespaces: ['vision'] already belong to TeamQuota 'vision'" in lost["message"]
    assert world.events("InvalidSpec")

    rival["spec"]["namespaces"] = ["rival"]
    rival["metadata"]["generation"] = 2
    world.kube.put(TEAMQUOTAS, rival)
    await world.cycle()
    vision = world.kube.objects[("teamquotas", "", "vision")]["status"]
    (held,) = [c for c in vision["conditions"] if c["type"] == "NamespaceConflict"]
    assert held["status"] == "False"


async def test_an_undecodable_job_is_reported_once_and_the_rest_runs(world: World) -> None:
    before = METRICS.invalid_objects.labels("GPUJob")._value.get()
    bad = job("vision/deep")
    bad[UNDECODABLE] = "spec.template.metadata.a.a… (64 levels): nested deeper than 64 levels"
    world.kube.put(GPUJOBS, bad)
    world.kube.put(GPUJOBS, job("vision/fine"))
    for _ in range(3):
        await world.cycle()
    (note,) = world.events("InvalidSpec")
    assert "spec.template.metadata.a.a" in note
    assert METRICS.invalid_objects.labels("GPUJob")._value.get() == before + 1
    assert world.status("vision/fine")["phase"] in ("Admitted", "Running")
    assert [p["metadata"]["name"] for p in world.pods()] == ["fine-0-0"]


async def test_a_foreign_status_patch_is_rewritten_from_the_ledger(world: World) -> None:
    world.kube.put(GPUJOBS, job("vision/a"))
    for _ in range(3):
        await world.cycle()
        world.run_pods()
    assert world.status("vision/a")["phase"] == "Running"
    before = METRICS.status_rewrites._value.get()
    await world.kube.patch_status(
        GPUJOBS,
        "a",
        {"phase": "Succeeded", "preemptions": 99, "lastCheckpoint": {"location": "s3://evil"}},
        "vision",
    )
    await world.cycle()
    await world.cycle()
    status = world.status("vision/a")
    assert status["phase"] == "Running"
    assert status.get("preemptions", 0) == 0
    assert "lastCheckpoint" not in status
    (note,) = world.events("StatusOverwritten")
    assert "status.phase: 'Succeeded' (gpupool recorded 'Running')" in note
    assert "status.preemptions: 99" in note and "'s3://evil'" in note
    assert METRICS.status_rewrites._value.get() == before + 1
    assert [p["metadata"]["name"] for p in world.pods()] == ["a-0-0"]
