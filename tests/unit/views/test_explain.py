"""`gpupool explain`: the fresh plan's verdict, the hint, checkpoints, preemptions, Events."""

from __future__ import annotations

from datetime import UTC, datetime

from gpupool.k8s import GPUJOBS
from gpupool.views.explain import explain_job, verdict
from gpupool.views.inspect import load_explanation

from ..controller.builders import make_job
from .cluster import NOW, pool
from .test_tables import render


async def test_a_job_too_big_for_the_cluster_says_so_and_what_would_help() -> None:
    found = await load_explanation(pool(), "nlp", "huge", "", NOW)
    result = verdict(found)
    assert result.reason == "Unschedulable"
    assert "needs 24 GPUs; the cluster has 16 healthy GPUs" in result.headline
    assert "fewer workers" in result.hint
    text = render(explain_job(found))
    assert "nlp/huge" in text and "3×8" in text and "nlp" in text
    assert "No Events." in text


async def test_a_job_that_fits_now_would_be_admitted_on_the_next_cycle() -> None:
    result = verdict(await load_explanation(pool(), "nlp", "bert", "", NOW))
    assert result.headline.startswith("would be admitted now on node-2 1×8")
    assert "next cycle" in result.hint


async def test_a_job_without_a_team_is_blocked_with_the_fix() -> None:
    result = verdict(await load_explanation(pool(), "orphans", "lost", "", NOW))
    assert result.reason == "NoTeamQuota"
    assert "belongs to no TeamQuota" in result.headline
    assert "spec.namespaces" in result.hint


async def test_a_resumed_job_shows_its_checkpoint_preemptions_and_only_its_events() -> None:
    found = await load_explanation(pool(), "vision", "a", "", NOW)
    assert verdict(found).headline == "running on node-1 1×8"
    assert [event["reason"] for event in found.events] == ["Requeued", "Resumed"]
    text = render(explain_job(found))
    assert "s3://ckpt/vision/a/step-100 (hook, 55m ago)" in text
    assert "1 (restarts 1, failures 0)" in text
    assert "signal, timeout 60s" in text
    assert "Preempted" in text and "resumed from s3://ckpt/vision/a/step-100" in text
    assert "ReclaimBorrowed: its GPUs go to nlp/x" in text
    assert "unrelated job" not in text


async def test_events_the_user_may_not_read_are_noted_not_fatal() -> None:
    from gpupool.k8s import ApiError

    kube = pool()
    kube.list_errors["events"] = ApiError(403, "Forbidden", "events is forbidden")
    found = await load_explanation(kube, "vision", "a", "", NOW)
    assert "Events not readable: Forbidden" in render(explain_job(found))


async def test_a_pending_job_shows_its_estimated_start_and_what_it_rests_on() -> None:
    kube = pool()
    kube.put(
        GPUJOBS,
        make_job("nlp/bert")
        .gpus(8)
        .status(
            phase="Pending",
            estimatedStart={
                "time": datetime.fromtimestamp(NOW + 2 * 3600, UTC).isoformat(),
                "confidence": "medium",
                "basis": "after 3 jobs end (3 by their team's history)",
            },
        )
        .raw(),
    )
    text = render(explain_job(await load_explanation(kube, "nlp", "bert", "", NOW)))
    assert "Estimated start" in text
    assert "in 2.0h" in text and "medium confidence" in text
    assert "after 3 jobs end (3 by their team's history)" in text
