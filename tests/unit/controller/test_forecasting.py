"""The operator's start-time forecast: in GPUJob status, refreshed at a bounded rate."""

from __future__ import annotations

from datetime import UTC, datetime

from gpupool.k8s import GPUJOBS, TEAMQUOTAS

from .world import World, job, team

HOUR = 3600.0


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


async def test_a_pending_job_shows_when_it_should_start(world: World) -> None:
    """2 nodes × 8 GPUs, team vision (guaranteed 8) runs two 2-hour jobs; a third
    waits: it should start when they end, 2 hours after they started (to the minute)."""
    world.kube.put(TEAMQUOTAS, team("vision", 16))
    for name in ("a", "b", "c"):
        world.kube.put(GPUJOBS, job(f"vision/{name}", expectedDuration="2h"))
    await world.cycle()
    started = world.clock.now()
    await world.scheduler.forecaster.wait()
    world.run_pods()
    await world.cycle(61.0)
    estimated = world.status("vision/c")["estimatedStart"]
    assert estimated == {
        "time": iso(round((started + 2 * HOUR) / 60) * 60),
        "confidence": "high",
        "basis": "after 2 jobs end (2 by expectedDuration)",
    }
    assert "estimatedStart" not in world.status("vision/a")


async def test_forecasts_are_refreshed_at_most_once_per_interval(world: World) -> None:
    """The default interval is 120 s: cycles in between reuse the last forecast."""
    for name in ("a", "b", "c"):
        world.kube.put(GPUJOBS, job(f"vision/{name}"))
    forecaster = world.scheduler.forecaster
    await world.cycle()
    await forecaster.wait()
    assert forecaster.runs == 1 and forecaster.latest is not None
    await world.cycle(60.0)
    await world.cycle(59.0)
    assert forecaster.runs == 1
    await world.cycle(2.0)
    await forecaster.wait()
    assert forecaster.runs == 2


async def test_without_a_declared_duration_the_team_history_is_used(world: World) -> None:
    """Three of vision's 1×8 jobs finished in an hour each: its running 1×8 jobs are
    expected to end an hour after they started, and the waiting one to start then."""
    world.kube.put(TEAMQUOTAS, team("vision", 16))
    start = world.clock.now() - 10 * HOUR
    for i in range(3):
        body = job(f"vision/done-{i}")
        body["status"] = {
            "phase": "Succeeded",
            "startedAt": iso(start + i * HOUR),
            "finishedAt": iso(start + (i + 1) * HOUR),
        }
        world.kube.put(GPUJOBS, body)
    for name in ("a", "b", "c"):
        world.kube.put(GPUJOBS, job(f"vision/{name}"))
    await world.cycle()
    started = world.clock.now()
    await world.scheduler.forecaster.wait()
    await world.cycle(61.0)
    estimated = world.status("vision/c")["estimatedStart"]
    assert estimated["time"] == iso(round((started + HOUR) / 60) * 60)
    assert estimated["confidence"] == "medium"
    assert estimated["basis"] == "after 2 jobs end (2 by their team's history)"
