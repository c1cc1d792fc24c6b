"""When will each pending job start? Plan forward from the live snapshot.

The planner the operator runs is called again and again on the snapshot as it would
become: each plan's admissions start, its victims checkpoint (for their hook's
timeout) and return to the queue, running jobs end at their expected duration. The
first cycle in which a pending job is admitted is its estimated start.

Assumed, and shown with every estimate: no job is submitted, deleted or resized by
hand meanwhile; idle jobs stay idle; a job with no expected duration (none declared,
none learned) never ends, so jobs that can only start after it get no estimate; a
resumed job's earlier runs are not counted as done. Pure and deterministic: time is
`now` plus simulated seconds.

Cost is bounded by the number of plans: time moves from event to event (a job
ending, a checkpoint done, a young job old enough to preempt), but each step spans
at least `step_fraction` of the time looked ahead so far, so the whole horizon takes
a few dozen plans. The events of one step are applied together, and what the next
plan admits is dated at the last of them (by then the GPUs it got were free), not at
the step's end: on a chain of jobs, one after the other, nothing is lost. A job so
admitted that ends before the step's end is taken into account by planning again at
once, so a queue of short jobs drains as fast as it would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from gpupool.forecast.durations import Duration, Source
from gpupool.planner import (
    IdleMode,
    Job,
    JobState,
    PendingReason,
    Plan,
    PreemptionReason,
    ResizeKind,
    Snapshot,
    plan,
)
from gpupool.planner.reasons import duration as spoken


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    # How far ahead to look.
    horizon_seconds: float = 7 * 86_400.0
    # What a forecast may cost: plans × jobs in the snapshot (a plan's cost grows with
    # its jobs), within these bounds on the number of plans.
    plan_budget: int = 200_000
    min_plans: int = 20
    max_plans: int = 200
    # The shortest step, and the least share of the time looked ahead a step spans.
    min_step_seconds: float = 300.0
    step_fraction: float = 0.3


class Confidence(StrEnum):
    # Every job that ends before it ends at its declared expectedDuration.
    HIGH = "high"
    # Some of them end at durations learned from their team's history.
    MEDIUM = "medium"
    # Some end at a team-wide median, or already ran past what was expected.
    LOW = "low"


_CONFIDENCE = {
    Source.DECLARED: Confidence.HIGH,
    Source.LEARNED: Confidence.MEDIUM,
    Source.TEAM: Confidence.LOW,
    Source.OVERDUE: Confidence.LOW,
}


@dataclass(frozen=True, slots=True)
class Estimate:
    """A pending job's forecast start (Unix seconds), or why there is none."""

    job: str
    start: float | None
    confidence: Confidence | None
    basis: str


@dataclass(frozen=True, slots=True)
class Forecast:
    now: float
    estimates: dict[str, Estimate]
    plans: int
    # How far the simulation got (Unix seconds).
    reached: float

    def get(self, job: str) -> Estimate | None:
        return self.estimates.get(job)


def forecast(
    snapshot: Snapshot,
    now: float,
    durations: Mapping[str, Duration],
    settings: ForecastSettings | None = None,
) -> Forecast:
    """Estimated start of every pending job of `snapshot`; `durations` by job key
    (the total run time of each job; a running job's elapsed run is deducted)."""
    return _Forward(snapshot, now, durations, settings or ForecastSettings()).run()


@dataclass(slots=True)
class _Ended:
    """Completions simulated so far, by the source of their duration."""

    by_source: dict[Source, int] = field(default_factory=dict)

    def add(self, source: Source) -> None:
        self.by_source[source] = self.by_source.get(source, 0) + 1

    def confidence(self) -> Confidence:
        weakest = max(self.by_source, default=Source.DECLARED)
        return _CONFIDENCE[weakest]

    def describe(self) -> str:
        total = sum(self.by_source.values())
        if not total:
            return "as soon as GPUs being released are free"
        parts = []
        declared = self.by_source.get(Source.DECLARED, 0)
        learned = self.by_source.get(Source.LEARNED, 0) + self.by_source.get(Source.TEAM, 0)
        overdue = self.by_source.get(Source.OVERDUE, 0)
        if declared:
            parts.append(f"{declared} by expectedDuration")
        if learned:
            parts.append(f"{learned} by their team's history")
        if overdue:
            parts.append(f"{overdue} already past their expected end")
        return f"after {total} job{'s' if total != 1 else ''} end ({', '.join(parts)})"


class _Forward:
    def __init__(
        self,
        snapshot: Snapshot,
        now: float,
        durations: Mapping[str, Duration],
        settings: ForecastSettings,
    ) -> None:
        self.base = snapshot
        self.now = now
        self.durations = durations
        self.settings = settings
        self.jobs: dict[str, Job] = {job.key: job for job in snapshot.jobs}
        self.targets = [job.key for job in snapshot.jobs if job.state is JobState.PENDING]
        self.started: dict[str, Estimate] = {}
        self.ended = _Ended()
        # When each running job ends, and what its duration rests on.
        self.ends: dict[str, tuple[float, Source]] = {}
        # When a checkpointing job (or a shrink's workers) releases its GPUs.
        self.releases: dict[str, float] = {}
        # Jobs taken back for sitting idle: they rejoin the queue when requeued, behind
        # the jobs submitted before then (as the operator requeues them).
        self.idle_reclaimed: set[str] = set()
        # Seconds of work done in earlier simulated runs (saved by a checkpoint).
        self.done: dict[str, float] = {}
        # Running jobs with no expected duration: they never end here.
        self.unknown_running = 0
        self.unplaceable: dict[str, str] = {}
        # Whether nothing more could happen when the walk stopped.
        self.stalled = False
        for job in snapshot.jobs:
            # A checkpoint in flight is done by its hook's deadline at the latest.
            if job.state is JobState.RUNNING:
                self._schedule_end(job, job.started_at if job.started_at is not None else now)
                if job.releasing:
                    self.releases[job.key] = now + job.checkpoint_timeout_seconds
            elif job.state is JobState.PREEMPTING:
                self.releases[job.key] = now + job.checkpoint_timeout_seconds

    # -- the walk --------------------------------------------------------------

    def run(self) -> Forecast:
        settings = self.settings
        now = at = dated = self.now
        plans = 0
        allowed = settings.plan_budget // max(1, len(self.jobs))
        allowed = max(settings.min_plans, min(settings.max_plans, allowed))
        while plans < allowed:
            result = plan(self._snapshot(), at)
            plans += 1
            self._apply(result, at, dated)
            if len(self.started) == len(self.targets):
                break
            upcoming = self._next_event(result, at)
            if upcoming is None:
                self.stalled = True
                break
            step = max(settings.min_step_seconds, (at - now) * settings.step_fraction)
            # Jobs admitted at a step's last event may have ended before the step's end
            # (short jobs): plan again at once, or a GPU would serve one job per step.
            to = at if upcoming <= at else max(upcoming, at + step)
            if to > now + settings.horizon_seconds:
                break
            dated = max(upcoming, self._advance(to))
            at = to
        return Forecast(now, self._estimates(at), plans, at)

    def _snapshot(self) -> Snapshot:
        return replace(self.base, jobs=tuple(self.jobs.values()))

    def _schedule_end(self, job: Job, started: float) -> None:
        """A job running at `now` since `started` ends once its expected run is done."""
        expected = self.durations.get(job.key)
        if expected is None:
            self.unknown_running += 1
            return
        left = expected.seconds - (self.now - started)
        source = expected.trust
        if left <= 0:
            # Past its expected end already: assume it ends within a short while.
            left, source = self.settings.min_step_seconds, Source.OVERDUE
        self.ends[job.key] = (self.now + left, source)

    def _apply(self, result: Plan, at: float, dated: float) -> None:
        """The plan at `at`; its admissions date from `dated` (see the module doc)."""
        for admission in result.admissions:
            job = self.jobs[admission.job]
            self.jobs[job.key] = replace(
                job,
                state=JobState.RUNNING,
                workers=admission.workers,
                started_at=at,
                preempted_for=None,
            )
            if job.key not in self.started:
                self.started[job.key] = Estimate(
                    job.key, dated, self.ended.confidence(), self.ended.describe()
                )
            expected = self.durations.get(job.key)
            if expected is None:
                self.unknown_running += 1
            else:
                left = max(expected.seconds - self.done.get(job.key, 0.0), 0.0)
                self.ends[job.key] = (dated + left, expected.trust)
        for preemption in result.preemptions:
            job = self.jobs[preemption.job]
            ran = at - job.started_at if job.started_at is not None else 0.0
            if job.checkpoint_hook:
                self.done[job.key] = self.done.get(job.key, 0.0) + ran
            if self.ends.pop(job.key, None) is None:
                self.unknown_running -= 1
            self.jobs[job.key] = replace(
                job, state=JobState.PREEMPTING, preempted_for=preemption.for_job
            )
            self.releases[job.key] = at + job.checkpoint_timeout_seconds
            if preemption.reason is PreemptionReason.IDLE_RECLAIM:
                self.idle_reclaimed.add(job.key)
        for resize in result.resizes:
            job = self.jobs[resize.job]
            if resize.kind is ResizeKind.GROW:
                self.jobs[job.key] = replace(job, workers=job.workers + resize.workers)
            else:
                self.jobs[job.key] = replace(
                    job, releasing=resize.workers, preempted_for=resize.for_job
                )
                self.releases[job.key] = at + job.checkpoint_timeout_seconds
        for entry in result.pending:
            if entry.reason is PendingReason.UNSCHEDULABLE:
                self.unplaceable[entry.job] = entry.message

    def _next_event(self, result: Plan, at: float) -> float | None:
        """The first thing that may change the plan (possibly dated before `at`: a job
        admitted at a step's last event may end before the step's end)."""
        times = [end for end, _ in self.ends.values()]
        times += self.releases.values()
        reasons = {entry.reason for entry in result.pending}
        if PendingReason.PREEMPTION_DEFERRED in reasons:
            # The next cycle may preempt more: the operator's is seconds away, but one
            # step changes nothing for jobs whose victims then checkpoint for minutes.
            times.append(at + self.settings.min_step_seconds)
        config = self.base.config
        if PendingReason.WAITING_FOR_MIN_RUNTIME in reasons:
            times += [
                job.started_at + config.min_runtime_seconds
                for job in self.jobs.values()
                if job.state is JobState.RUNNING
                and job.started_at is not None
                and job.started_at + config.min_runtime_seconds > at
            ]
        if config.idle_reclaim_enabled:
            times += self._idle_deadlines(at)
        return min(times) if times else None

    def _idle_deadlines(self, at: float) -> list[float]:
        """When running idle jobs become reclaimable (they are assumed to stay idle)."""
        policies = {
            team.name: team.idle_reclaim
            for team in self.base.teams
            if team.idle_reclaim is not None and team.idle_reclaim.mode is IdleMode.ENFORCE
        }
        deadlines = []
        for job in self.jobs.values():
            policy = policies.get(job.team)
            if job.idle_since is not None and policy is not None and job.state is JobState.RUNNING:
                deadline = job.idle_since + policy.for_seconds
                if deadline > at:
                    deadlines.append(deadline)
        return deadlines

    def _advance(self, to: float) -> float:
        """Everything that happens up to `to` (jobs end, checkpoints finish); when
        the last of it happened."""
        last = self.now
        for key, (end, source) in list(self.ends.items()):
            if end <= to:
                del self.ends[key]
                del self.jobs[key]
                # Workers it was giving back go with it.
                self.releases.pop(key, None)
                self.ended.add(source)
                last = max(last, end)
        for key, release in list(self.releases.items()):
            if release > to:
                continue
            last = max(last, release)
            del self.releases[key]
            job = self.jobs[key]
            if job.state is JobState.PREEMPTING:
                requeued = key in self.idle_reclaimed
                self.idle_reclaimed.discard(key)
                self.jobs[key] = replace(
                    job,
                    state=JobState.PENDING,
                    workers=(),
                    releasing=(),
                    preempted_for=None,
                    started_at=None,
                    idle_since=None,
                    submitted_at=release if requeued else job.submitted_at,
                )
            else:
                kept = list(job.workers)
                for worker in job.releasing:
                    kept.remove(worker)
                self.jobs[key] = replace(job, workers=tuple(kept), releasing=(), preempted_for=None)
        return last

    # -- the answer ------------------------------------------------------------

    def _estimates(self, reached: float) -> dict[str, Estimate]:
        estimates = {}
        for key in self.targets:
            started = self.started.get(key)
            if started is not None:
                estimates[key] = started
                continue
            if key in self.unplaceable:
                why = "it cannot run on this cluster: " + self.unplaceable[key]
            elif self.stalled and self.unknown_running:
                count = self.unknown_running
                why = (
                    f"it waits for GPUs held by {count} running job{'s' if count != 1 else ''} "
                    "with no expected duration (set spec.expectedDuration, or let the team "
                    "finish a few runs of that shape)"
                )
            else:
                why = f"not within the {spoken(reached - self.now)} looked ahead"
            estimates[key] = Estimate(key, None, None, why)
        return estimates
