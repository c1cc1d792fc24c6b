"""The one scheduling loop: leader-only, triggered by index changes (debounced) and a tick.

Each cycle, top to bottom:

1. Read the indexes (never the API server).
2. Observe every job: its current run from its pods, failures, lost workers.
3. Record what the observations decided (finish, retry, requeue after a failure) and
   hand it to the executor.
4. Track idleness (per team policy) and team usage.
5. Build the snapshot and plan (pure).
6. Record the plan's decisions in the cache and ledgers first: assumed admissions occupy
   their GPUs from now on, evictions are marked before any hook runs.
7. Apply them through the API asynchronously (the executor; bounded concurrency).
8. Write status where the rendering differs from what is stored.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from gpupool.api import CheckpointRecord, GPUJobStatus, TeamQuotaStatus
from gpupool.controller.cache import SchedulingCache
from gpupool.controller.claims import Claims, resolve_claims, without_refused
from gpupool.controller.clock import Clock, SystemClock, as_datetime
from gpupool.controller.executor import Admit, Executor, job_ref
from gpupool.controller.forecasting import Forecaster
from gpupool.controller.idle import next_idle_since
from gpupool.controller.invalid import InvalidObjects
from gpupool.controller.ledger import Ledgers
from gpupool.controller.lifecycle import RunState
from gpupool.controller.live_checkpoints import newer_checkpoint, reported_checkpoints
from gpupool.controller.metrics import METRICS
from gpupool.controller.preemption import EvictionRecord
from gpupool.controller.records import (
    JobKey,
    JobRecord,
    NodeRecord,
    PodRecord,
    ReportedCheckpoint,
    TeamRecord,
)
from gpupool.controller.settings import OperatorConfig
from gpupool.controller.snapshot import (
    Cleanup,
    Conflict,
    Finish,
    Indexed,
    JobView,
    Lost,
    Observation,
    Retry,
    assumed_workers,
    build_snapshot,
    job_key,
    observe,
    other_gpu_usage,
)
from gpupool.controller.status import IdleState, render_job_status, render_team_status
from gpupool.controller.usage import TeamUsage, advance
from gpupool.controller.workqueue import WorkQueue
from gpupool.controller.writer import StatusWriter, Stored
from gpupool.k8s import KubeClient
from gpupool.k8s.events import EventRecorder
from gpupool.planner import (
    Admission,
    JobState,
    PendingJob,
    Plan,
    PlannerConfig,
    Preemption,
    PreemptionReason,
    Resize,
    ResizeKind,
    Snapshot,
    WorkerPlacement,
)
from gpupool.planner.scheduler import plan as plan_cycle

logger = logging.getLogger(__name__)

Planner = Callable[[Snapshot, float], Plan]

# Status writes that take the queue's urgent tier: the job started or ended.
URGENT_PHASES = frozenset({"Running", "Succeeded", "Failed"})
# The status writes are behind when more are queued than this many rounds of writers.
BACKLOG_ROUNDS = 4
# While they are behind, a job whose pods have not started yet says Admitted only after
# this long (else after `admitted_status_delay_seconds`).
ADMITTED_HOLD_BEHIND_SECONDS = 60.0


class IndexSources(Protocol):
    """The operator's indexes, read-only (kopf's in production, dicts in tests)."""

    def read(self) -> Indexed: ...

    def job(self, key: JobKey) -> JobRecord | None: ...

    def team(self, name: str) -> TeamRecord | None: ...

    def pods(self, key: JobKey) -> Sequence[PodRecord]: ...

    def node(self, name: str) -> NodeRecord | None: ...


class Trigger:
    """Index changes kick the loop; a burst of kicks costs one cycle."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.kicks = 0

    def kick(self) -> None:
        self.kicks += 1
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def clear(self) -> None:
        self._event.clear()


class Rendering(NamedTuple):
    """A job's last status rendering: its inputs, split into what changes the status
    (major) and figures alone (minor); until when a minor change alone does not call
    for rendering again; whether the rendering matched what is stored."""

    major: object
    minor: object
    until: float
    settled: bool


@dataclass
class CycleReport:
    """What one cycle did (logged, and read by tests and the benchmark)."""

    jobs: int = 0
    admitted: int = 0
    preempted: int = 0
    resized: int = 0
    pending: int = 0
    seconds: float = 0.0


class Scheduler:
    """The scheduling loop and the live state the executor reads (`World`)."""

    def __init__(
        self,
        client: KubeClient,
        sources: IndexSources,
        recorder: EventRecorder,
        *,
        config: OperatorConfig,
        planner_config: PlannerConfig | None = None,
        clock: Clock | None = None,
        planner: Planner = plan_cycle,
        leading: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.config = config
        self.planner_config = planner_config or config.planner_config()
        self.clock = clock or SystemClock()
        self.sources = sources
        self.recorder = recorder
        self.trigger = Trigger()
        self.ready = asyncio.Event()
        self.cache = SchedulingCache(ttl_seconds=config.assume_ttl_seconds)
        self.ledgers = Ledgers()
        self._planner = planner
        self._leading = leading
        self._concurrency = asyncio.Semaphore(config.api_concurrency)
        # Status writes get a quarter of the connections: admissions and evictions must not
        # queue behind thousands of pending jobs' status (a hook would miss its deadline).
        status_concurrency = max(4, config.api_concurrency // 4)
        self._status_concurrency = asyncio.Semaphore(status_concurrency)
        self.writer = StatusWriter(
            client,
            concurrency=self._status_concurrency,
            urgent_concurrency=self._concurrency,
            minor_interval=60.0,
            monotonic=self.clock.monotonic,
        )
        self.forecaster = Forecaster(config.forecast_interval_seconds, self.clock.monotonic)
        self.executor = Executor(
            client,
            world=self,
            cache=self.cache,
            ledgers=self.ledgers,
            recorder=recorder,
            config=config,
            clock=self.clock,
            concurrency=self._concurrency,
        )
        self._views: dict[JobKey, JobView] = {}
        self._invalid = InvalidObjects(recorder)
        self._claims = Claims()
        self._pending: dict[str, PendingJob] = {}
        self._idle: dict[JobKey, IdleState] = {}
        self._usage: dict[str, TeamUsage] = {}
        # Pending jobs: since when each has waited (the queue-wait histogram).
        self._waiting: dict[JobKey, datetime] = {}
        self._plan = Plan()
        self._statuses: WorkQueue[tuple[str, JobKey]] = WorkQueue(
            self._write, workers=status_concurrency
        )
        self._backlog = status_concurrency * BACKLOG_ROUNDS
        # Every TeamQuota's status is queued each cycle: not a backlog.
        self._team_writes = 0
        # Per job: its last rendering (see `_write_statuses`).
        self._rendered: dict[JobKey, Rendering] = {}
        self.led = False
        self.last: CycleReport = CycleReport()
        self.cycles = 0

    # --- World (what the executor reads) --------------------------------------------------

    def job(self, key: JobKey) -> JobRecord | None:
        return self.sources.job(key)

    def pods(self, key: JobKey) -> Sequence[PodRecord]:
        return self.sources.pods(key)

    def team_of(self, key: JobKey) -> str | None:
        view = self._views.get(key)
        return view.team if view is not None and view.blocker is None else None

    def node_down(self, node: str) -> bool:
        record = self.sources.node(node)
        return record is None or not record.ready

    def kick(self) -> None:
        self.trigger.kick()

    async def write_status(self, key: JobKey, *, force: bool) -> bool:
        return await self.writer.sync_job(
            key,
            functools.partial(self._stored_job, key),
            functools.partial(self._render_job, key),
            force=force,
        )

    def _stored_job(self, key: JobKey) -> Stored | None:
        record = self.sources.job(key)
        if record is None:
            return None
        return record.resource_version, record.raw_status

    def _render_job(self, key: JobKey, stored: Mapping[str, Any]) -> Mapping[str, Any] | None:
        view = self._views.get(key)
        record = self.sources.job(key)
        if view is None or record is None or record.uid != view.record.uid:
            return None
        try:
            current = GPUJobStatus.model_validate(stored)
        except ValueError:
            current = GPUJobStatus()
        desired = render_job_status(
            view,
            current,
            pending=self._pending.get(view.id),
            idle=self._idle.get(key),
            now=as_datetime(self.clock.now()),
            estimate=self.forecaster.estimate(view.id),
        )
        return desired.to_k8s()

    # --- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until `stop` is set; only while leading, only once the indexes are full."""
        self.recorder.start()
        try:
            await _first_of(self.ready.wait(), stop.wait())
            while not stop.is_set():
                await self.trigger.wait(self.config.tick_seconds)
                if stop.is_set():
                    break
                # Debounce: let a burst of index events land before planning on them. A
                # cycle that took T seconds waits cycle_yield_factor × T, so that under a
                # storm of events the loop leaves the operator's core (the event loop it
                # shares with the executor and kopf's watches) to the API calls too.
                await asyncio.sleep(
                    max(
                        self.config.debounce_seconds,
                        self.config.cycle_yield_factor * self.last.seconds,
                    )
                )
                self.trigger.clear()
                if not await self._lead():
                    continue
                try:
                    await self.cycle()
                    if self.cycles == 1:
                        # The indexes now hold the whole cluster: move those objects out of
                        # the collector's reach, or every full collection walks all of
                        # them (with 10,000 jobs, a third of each cycle went there).
                        gc.freeze()
                except Exception:
                    logger.exception("scheduling cycle failed; retried on the next trigger")
                    await asyncio.sleep(1.0)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop every operation and status write in flight, and the Event poster."""
        await self.executor.cancel()
        await self.forecaster.close()
        await self._statuses.close()
        await self.recorder.stop()

    async def _lead(self) -> bool:
        if self._leading is None:
            self.led = True
            return True
        try:
            leading = await self._leading()
        except Exception as error:
            logger.warning("cannot read the peering object: %s", error)
            leading = self.led
        if self.led and not leading:
            raise LeadershipLost("another operator instance took over")
        if leading and not self.led:
            logger.info("leading: scheduling loop active")
        self.led = leading
        return leading

    async def cycle(self) -> Plan:
        started = self.clock.monotonic()
        now = self.clock.now()
        when = as_datetime(now)

        lap = started

        # 1. Read the indexes; a TeamQuota claiming an older one's namespace is not in
        # effect, and what cannot be scheduled as written is reported (once).
        indexed = self.sources.read()
        self._claims = resolve_claims(indexed.teams)
        indexed = without_refused(indexed, self._claims)
        self._invalid.report(indexed, when)
        lap = self._lap("read", lap)

        # 2. Observe every job: its current run, failures, lost workers.
        observation = observe(indexed, self.ledgers, self.cache, now=now, busy=self.executor.busy())
        self._views = observation.views
        self._housekeep(indexed)
        lap = self._lap("observe", lap)

        # 3. Record what the observations decided, and dispatch it.
        self._note_runs(observation, reported_checkpoints(indexed.gpunodes.values()), when)
        self._dispatch_observed(observation, when)
        lap = self._lap("dispatch", lap)

        # 4. Idle clocks, team usage and queue waits.
        self._track_idle(observation, when)
        self._track_usage(observation, when)
        self._track_waiting(observation, when)
        lap = self._lap("track", lap)

        # 5. Snapshot and plan.
        snapshot = build_snapshot(indexed, observation, self._usage, self.planner_config)
        plan = self._planner(snapshot, now)
        self._plan = plan
        self._pending = {entry.job: entry for entry in plan.pending}
        METRICS.set_teams(plan.teams)
        METRICS.set_queue(plan.pending, observation.teams)
        METRICS.set_unmanaged(other_gpu_usage(indexed, observation.namespace_teams))
        if plan.pending:
            self.forecaster.refresh(snapshot, now, observation.views)
        lap = self._lap("plan", lap)

        # 6. Record the plan's decisions first, then 7. apply them asynchronously.
        for admission in plan.admissions:
            self._admit(admission, when)
        for preemption in plan.preemptions:
            if self._may_preempt_for(preemption.for_job):
                self._preempt(preemption, when)
        for resize in plan.resizes:
            if resize.kind is ResizeKind.GROW or self._may_preempt_for(resize.for_job):
                self._resize(resize, when)
        for key in observation.orphaned_evictions:
            self._evict(key)
        lap = self._lap("record", lap)

        # 8. Status, where it changed.
        self._write_statuses(observation, when)
        METRICS.status_writes_queued.set(len(self._statuses))
        self._lap("status", lap)

        self.cycles += 1
        self.last = CycleReport(
            jobs=len(observation.views),
            admitted=len(plan.admissions),
            preempted=len(plan.preemptions),
            resized=len(plan.resizes),
            pending=len(plan.pending),
            seconds=self.clock.monotonic() - started,
        )
        METRICS.cycles.inc()
        METRICS.cycle_seconds.observe(self.last.seconds)
        if plan.admissions or plan.preemptions or plan.resizes:
            logger.info(
                "cycle %d: %d jobs, %d admitted, %d preempted, %d resized, %d pending (%.3fs); "
                "%d status writes queued, %d operations in flight",
                self.cycles,
                self.last.jobs,
                self.last.admitted,
                self.last.preempted,
                self.last.resized,
                self.last.pending,
                self.last.seconds,
                len(self._statuses),
                len(self.executor.busy()),
            )
        return plan

    def _lap(self, step: str, since: float) -> float:
        """Time one step of the cycle; the start of the next."""
        now = self.clock.monotonic()
        METRICS.step_seconds.labels(step).observe(now - since)
        return now

    # --- step 2: housekeeping -------------------------------------------------------------

    def _housekeep(self, indexed: Indexed) -> None:
        """Forget deleted jobs (their pods go with them: garbage collection), and
        admissions whose pods never appeared."""
        uids = {record.uid for record in indexed.jobs.values()}
        self.ledgers.retain(uids)
        self.executor.retain(uids)
        for key in self.cache.expire(self.clock.now()):
            logger.warning("the pods admitted for %s/%s never appeared; forgotten", *key)
        busy = self.executor.busy()
        for key in self.cache.jobs() - set(indexed.jobs) - busy:
            self.cache.drop(key)
            self.writer.forget("job", key)

    # --- step 3: observed outcomes --------------------------------------------------------

    def _note_runs(
        self,
        observation: Observation,
        reports: Mapping[tuple[str, str], ReportedCheckpoint],
        when: datetime,
    ) -> None:
        """Start times and checkpoints the workers reported on their own: while they
        run (through their node's agent, `reports`) and in their termination messages."""
        for view in observation.views.values():
            ledger = view.ledger
            running = view.run.state is RunState.RUNNING and view.state is JobState.RUNNING
            if running and ledger.started_at is None:
                ledger.started_at = when
            live = newer_checkpoint(view.run.live, reports, ledger.last_checkpoint, when)
            if live is not None:
                ledger.last_checkpoint = live
            for pod in view.run.workers.values():
                if pod.checkpoint and (
                    ledger.last_checkpoint is None
                    or ledger.last_checkpoint.location != pod.checkpoint
                ):
                    ledger.last_checkpoint = CheckpointRecord(
                        location=pod.checkpoint, time=when, source="terminationMessage"
                    )
            if view.blocker is not None and view.run.state is RunState.NONE:
                self._notify_once(
                    view,
                    f"blocked:{view.blocker.reason}",
                    view.blocker.reason,
                    view.blocker.message,
                )

    def _notify_once(self, view: JobView, key: str, reason: str, note: str) -> None:
        if key in view.ledger.notified:
            return
        view.ledger.notified.add(key)
        self.recorder.record(
            job_ref(view.record),
            reason=reason,
            action="Schedule",
            note=note,
            now=as_datetime(self.clock.now()),
            type_="Warning",
        )

    def _dispatch_observed(self, observation: Observation, when: datetime) -> None:
        busy = self.executor.busy()
        for action in observation.actions:
            key = action.key
            if key in busy:
                continue
            if isinstance(action, Finish):
                self.executor.submit(
                    key,
                    "finish",
                    functools.partial(
                        self.executor.finish, key, action.outcome, action.reason, action.message
                    ),
                )
            elif isinstance(action, Retry):
                self.executor.submit(
                    key,
                    "retry",
                    functools.partial(
                        self.executor.retry, key, action.incarnation, action.message, action.failed
                    ),
                )
            elif isinstance(action, Conflict):
                self.executor.submit(
                    key,
                    "conflict",
                    functools.partial(
                        self.executor.conflict, key, action.incarnation, action.message
                    ),
                )
            elif isinstance(action, Lost):
                view = observation.views[key]
                view.ledger.eviction = EvictionRecord.start(
                    PreemptionReason.NODE_FAILURE,
                    now=when,
                    timeout_seconds=0,
                    incarnation=view.run.incarnation or 0,
                    message=f"worker lost: {action.message}",
                )
                view.state = JobState.PREEMPTING
                self._evict(key)
            elif isinstance(action, Cleanup):
                self.executor.submit(
                    key, "cleanup", functools.partial(self.executor.cleanup, action.pods)
                )
            busy.add(key)

    # --- step 4: idle and usage -----------------------------------------------------------

    def _track_idle(self, observation: Observation, when: datetime) -> None:
        self._idle = {}
        counts: dict[tuple[str, str], int] = {}
        for key, view in observation.views.items():
            quota = observation.teams.get(view.team or "")
            policy = quota.idle_reclaim if quota is not None else None
            ledger = view.ledger
            if view.state is not JobState.RUNNING or policy is None:
                ledger.idle_since = (
                    None if view.state is not JobState.RUNNING else ledger.idle_since
                )
                continue
            ledger.idle_since = next_idle_since(
                ledger.idle_since,
                view.utilization,
                policy.utilization_below,
                now=when,
                running_since=ledger.started_at or ledger.admitted_at,
            )
            if ledger.idle_since is None:
                if view.utilization is not None:
                    self._idle[key] = IdleState(
                        False, False, f"GPU utilization {view.utilization.mean_1m:.0f}%"
                    )
                continue
            idle_for = (when - ledger.idle_since).total_seconds()
            idle = idle_for >= policy.for_minutes * 60
            utilization = view.utilization.mean_1m if view.utilization else 0.0
            message = (
                f"GPU utilization {utilization:.0f}% below {policy.utilization_below:g}% for "
                f"{idle_for / 60:.0f} min (threshold {policy.for_minutes} min, mode "
                f"{policy.mode})"
            )
            enforced = policy.mode == "enforce"
            self._idle[key] = IdleState(idle, enforced, message)
            if idle:
                counts[(view.team or "", policy.mode)] = (
                    counts.get((view.team or "", policy.mode), 0) + 1
                )
                self._notify_once(view, f"idle:{ledger.idle_since.isoformat()}", "Idle", message)
        METRICS.idle_jobs.clear()
        for (team, mode), count in counts.items():
            METRICS.idle_jobs.labels(team, mode).set(count)

    def _track_usage(self, observation: Observation, when: datetime) -> None:
        allocated: dict[str, float] = {}
        used: dict[str, float] = {}
        for view in observation.views.values():
            if view.team is None or view.state not in (JobState.RUNNING, JobState.PREEMPTING):
                continue
            gpus = float(sum(pod.gpus for pod in view.run.live))
            allocated[view.team] = allocated.get(view.team, 0.0) + gpus
            busy = view.utilization.mean_1m / 100 if view.utilization else 0.0
            used[view.team] = used.get(view.team, 0.0) + gpus * busy
        for name in observation.teams:
            usage = self._usage.get(name)
            if usage is None:
                record = self.sources.team(name)
                usage = TeamUsage.from_status(record.status) if record else TeamUsage()
            self._usage[name] = advance(
                usage,
                allocated_gpus=allocated.get(name, 0.0),
                used_gpus=used.get(name, 0.0),
                now=when,
                half_life_hours=self.config.usage_half_life_hours,
            )
            _count_usage(name, usage, self._usage[name])
        for name in [name for name in self._usage if name not in observation.teams]:
            del self._usage[name]

    def _track_waiting(self, observation: Observation, when: datetime) -> None:
        """Since when each pending job waits: its submission for a first run, else since
        it was seen requeued (after a restart, a requeued job counts from the restart)."""
        waiting: dict[JobKey, datetime] = {}
        for key, view in observation.views.items():
            if view.state is not JobState.PENDING:
                continue
            since = self._waiting.get(key)
            if since is None:
                created = view.record.created
                since = created if view.ledger.incarnation is None and created else when
            waiting[key] = since
        self._waiting = waiting

    # --- step 6: record the plan's decisions ----------------------------------------------

    def _admit(self, admission: Admission, when: datetime) -> None:
        key = job_key(admission.job)
        view = self._views.get(key)
        if view is None:
            return
        ledger = view.ledger
        previous, previous_admitted_at = ledger.incarnation, ledger.admitted_at
        incarnation = ledger.next_incarnation()
        ledger.incarnation = incarnation
        ledger.admitted_at = when
        ledger.started_at = None
        ledger.idle_since = None
        workers = assumed_workers(admission.workers, 0)
        self.cache.assume(key, incarnation, workers)
        view.state = JobState.RUNNING
        view.workers = tuple(
            (worker.index, WorkerPlacement(worker.node, worker.gpus)) for worker in workers
        )
        METRICS.admissions.labels(admission.team).inc()
        since = self._waiting.pop(key, None)
        if since is not None:
            wait = max((when - since).total_seconds(), 0.0)
            METRICS.queue_wait_seconds.labels(admission.team).observe(wait)
        decision = Admit(
            key=key,
            incarnation=incarnation,
            workers=workers,
            world_size=len(workers),
            previous_incarnation=previous,
            message=admission.message,
            previous_admitted_at=previous_admitted_at,
        )
        self.executor.submit(key, "admit", functools.partial(self.executor.admit, decision))

    def _may_preempt_for(self, job: str | None) -> bool:
        """Only for a job whose worker pod a dry run showed the API server would create;
        the first time, the dry run starts and the preemption waits for a later cycle."""
        if not job:
            return True
        key = job_key(job)
        record = self.sources.job(key)
        if record is None:
            return False
        known = self.executor.validated(record)
        if known is None and key not in self.executor.busy():
            self.executor.submit(key, "validate", functools.partial(self.executor.validate, key))
        return known is True

    def _preempt(self, preemption: Preemption, when: datetime) -> None:
        key = job_key(preemption.job)
        view = self._views.get(key)
        if view is None or view.ledger.eviction is not None:
            return
        _count_idle_reclaim(view, preemption.reason, preemption.gpus, when)
        hook = view.spec.checkpoint
        failure = preemption.reason is PreemptionReason.NODE_FAILURE
        view.ledger.eviction = EvictionRecord.start(
            preemption.reason,
            now=when,
            timeout_seconds=hook.timeout_seconds if hook is not None and not failure else 0,
            incarnation=view.ledger.incarnation or 0,
            for_job=preemption.for_job,
            for_team=preemption.for_team,
            message=preemption.message,
        )
        view.state = JobState.PREEMPTING
        self._evict(key)

    def _resize(self, resize: Resize, when: datetime) -> None:
        """An elastic job changes size by starting again: every worker is checkpointed
        and deleted, then a new incarnation runs on the new placements, each worker
        with the new WORLD_SIZE and RANK and GPUPOOL_RESUME_FROM — what a static DDP
        script needs (its rendezvous and world size are fixed at start). Until its pods
        exist, the new placements are assumed in the cache, so no GPU of the job is
        given away in between."""
        key = job_key(resize.job)
        view = self._views.get(key)
        if view is None or view.ledger.eviction is not None or key in self.executor.busy():
            return
        ledger = view.ledger
        incarnation = ledger.incarnation or 0
        grow = resize.kind is ResizeKind.GROW
        if grow:
            leaving: tuple[int, ...] = ()
            placements = [placement for _, placement in view.workers] + list(resize.workers)
        else:
            leaving = shrink_indices(view.workers, resize.workers)
            placements = [placement for index, placement in view.workers if index not in leaving]
            if resize.reason is not None:
                _count_idle_reclaim(view, resize.reason, resize.gpus, when)
        restart = ledger.next_incarnation()
        self.cache.assume(key, restart, assumed_workers(placements, 0))
        ledger.incarnation = restart
        hook = view.spec.checkpoint
        ledger.eviction = EvictionRecord.start(
            PreemptionReason.ELASTIC_GROW
            if grow
            else resize.reason or PreemptionReason.ELASTIC_SHRINK,
            now=when,
            timeout_seconds=hook.timeout_seconds if hook is not None else 0,
            incarnation=incarnation,
            workers=leaving,
            for_job=resize.for_job,
            for_team=resize.for_team,
            message=resize.message,
        )
        self._evict(key)

    def _evict(self, key: JobKey) -> None:
        self.executor.submit(key, "evict", functools.partial(self.executor.evict, key))

    # --- step 8: status -------------------------------------------------------------------

    def _write_statuses(self, observation: Observation, when: datetime) -> None:
        """Queue a write for every job whose rendering differs from what is stored.

        Rendering 10,000 statuses every cycle would dominate the loop, so a job is
        rendered again only when an input of its status changed (or, when a minor change
        was held back, once the hold-back interval has passed).
        """
        now = self.clock.monotonic()
        behind = self.behind()
        for key, view in observation.views.items():
            record = view.record
            overwritten = self.writer.overwritten(
                key, record.resource_version, functools.partial(_raw_status, record)
            )
            if overwritten:
                self._status_overwritten(view, overwritten, when)
            self.writer.settle("job", key, record.resource_version)
            assumed = self.cache.assumption(key)
            if assumed is not None and assumed.created_at is None:
                # Its pods are being created: the cycle after says Admitted or Running.
                continue
            if self._starting(view, when, behind=behind):
                continue
            major, minor = self._fingerprint(view)
            last = self._rendered.get(key)
            # Figures alone (queue position, the pending message's numbers, utilization)
            # change every cycle for thousands of pending jobs; they are rendered again
            # only once the minor-write interval since the last queued write has passed
            # (also unchanged, when that write may have been held back).
            if (
                last is not None
                and last.major == major
                and (now < last.until or (last.settled and last.minor == minor))
            ):
                continue
            _, stored = self.writer.stored("job", key, record.raw_status, record.resource_version)
            desired = self._render_job(key, stored)
            if desired is not None and _differs(stored, desired):
                self._statuses.add(("job", key), urgent=_started_or_ended(stored, desired))
                self._rendered[key] = Rendering(
                    major, minor, now + self.writer.minor_interval, settled=False
                )
            else:
                # Settled; the interval still counts from the last queued write.
                until = last.until if last is not None else now
                self._rendered[key] = Rendering(major, minor, until, settled=True)
        for key in [key for key in self._rendered if key not in observation.views]:
            del self._rendered[key]
        teams = set(observation.teams) | set(self._claims.refused)
        for name in teams:
            self._statuses.add(("team", ("", name)))
        self._team_writes = len(teams)

    def _status_overwritten(self, view: JobView, changes: list[str], when: datetime) -> None:
        """Status is the operator's: someone else's version of its facts is written over
        from the ledger (the job is rendered again now), and said so."""
        note = "; ".join(changes)
        logger.warning("status of %s/%s changed by someone else: %s; rewritten", *view.key, note)
        METRICS.status_rewrites.inc()
        self._rendered.pop(view.key, None)
        self.recorder.record(
            job_ref(view.record),
            reason="StatusOverwritten",
            action="Reconcile",
            note=f"{note}: not what gpupool recorded; rewritten from its records",
            now=when,
            type_="Warning",
        )

    def behind(self) -> bool:
        """More status writes queued than the writers get through in a few rounds: the
        API server is the bottleneck, and writes that will soon be superseded or that
        only comment (Admitted, Events) wait."""
        return len(self._statuses) - self._team_writes > self._backlog

    def _starting(self, view: JobView, when: datetime, *, behind: bool) -> bool:
        """Admitted a moment ago, its pods not all running yet: Running is usually the
        one write this admission needs (see `admitted_status_delay_seconds`). While the
        writes are behind, Admitted waits longer (up to `ADMITTED_HOLD_BEHIND_SECONDS`):
        under load the pods also take longer to start, and every write delays the rest."""
        admitted_at = view.ledger.admitted_at
        if (
            view.state is not JobState.RUNNING
            or view.run.state is not RunState.STARTING
            or view.ledger.eviction is not None
            or admitted_at is None
        ):
            return False
        age = (when - admitted_at).total_seconds()
        if age < self.config.admitted_status_delay_seconds:
            return True
        return age < ADMITTED_HOLD_BEHIND_SECONDS and behind

    def _fingerprint(self, view: JobView) -> tuple[object, object]:
        """Everything a job's status is rendered from (time aside): (major, minor) — the
        minor part only moves figures (see `MINOR_JOB_FIELDS`)."""
        ledger = view.ledger
        pending = self._pending.get(view.id)
        major = (
            view.record.resource_version,
            view.state,
            view.blocker,
            view.backing_off,
            view.team,
            view.priority,
            tuple((pod.name, pod.phase, pod.node) for pod in view.run.live),
            len(view.workers),
            view.run.state,
            pending.reason if pending is not None else None,
            self._idle.get(view.key),
            (
                ledger.incarnation,
                ledger.preemptions,
                ledger.failures,
                ledger.last_checkpoint,
                ledger.admitted_at,
                ledger.started_at,
                ledger.finished_at,
                ledger.outcome,
                ledger.eviction,
                ledger.requeued,
                ledger.idle_since,
            ),
        )
        minor = (
            view.utilization,
            (pending.message, pending.queue_position) if pending is not None else None,
            self.forecaster.estimate(view.id),
        )
        return major, minor

    async def _write(self, slot: tuple[str, JobKey]) -> None:
        kind, key = slot
        if kind == "job":
            await self.write_status(key, force=False)
        else:
            await self._write_team(key[1])

    async def _write_team(self, name: str) -> None:
        def current() -> Stored | None:
            record = self.sources.team(name)
            return None if record is None else (record.resource_version, record.raw_status)

        def render(stored: Mapping[str, Any]) -> Mapping[str, Any] | None:
            record = self.sources.team(name)
            usage = self._usage.get(name)
            if name in self._claims.refused and record is not None:
                # Not in effect: its usage, as persisted, is kept as it was.
                usage = usage or TeamUsage.from_status(record.status)
            if record is None or record.spec is None or usage is None:
                return None
            try:
                current_status = TeamQuotaStatus.model_validate(stored)
            except ValueError:
                current_status = TeamQuotaStatus()
            return render_team_status(
                record.spec,
                current_status,
                self._plan.team(name),
                usage,
                generation=record.generation,
                now=as_datetime(self.clock.now()),
                conflict=self._claims.conflict(name),
            ).to_k8s()

        await self.writer.sync_team(name, current, render)

    async def drain(self) -> None:
        """Wait for every operation and status write in flight (tests, benchmarks)."""
        await self.executor.drain()
        await self._statuses.drain()


class LeadershipLost(Exception):
    """Another instance leads now; this one's indexes froze when kopf paused it."""


def _count_usage(team: str, before: TeamUsage, after: TeamUsage) -> None:
    allocated = after.gpu_hours_allocated - before.gpu_hours_allocated
    used = after.gpu_hours_used - before.gpu_hours_used
    if allocated > 0:
        METRICS.team_allocated_gpu_seconds.labels(team).inc(allocated * 3600)
    if used > 0:
        METRICS.team_used_gpu_seconds.labels(team).inc(used * 3600)


def _count_idle_reclaim(view: JobView, reason: PreemptionReason, gpus: int, when: datetime) -> None:
    if reason is not PreemptionReason.IDLE_RECLAIM:
        return
    team = view.team or ""
    METRICS.idle_reclaimed_gpus.labels(team).inc(gpus)
    idle_since = view.ledger.idle_since
    if idle_since is not None:
        idle = max((when - idle_since).total_seconds(), 0.0)
        METRICS.idle_reclaimed_gpu_seconds.labels(team).inc(gpus * idle)


def _raw_status(record: JobRecord) -> Mapping[str, Any]:
    return record.raw_status


def _started_or_ended(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """The write says the job now runs or has ended: what users and tools wait for
    (`kubectl wait --for=jsonpath=.status.phase=Running`); it goes before the queue's
    figures and reasons."""
    phase = desired.get("phase")
    return phase != stored.get("phase") and phase in URGENT_PHASES


def _differs(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(stored.get(key) != desired.get(key) for key in set(stored) | set(desired))


def shrink_indices(
    workers: Sequence[tuple[int, WorkerPlacement]], leaving: Sequence[WorkerPlacement]
) -> tuple[int, ...]:
    """Which workers an elastic shrink removes: for each placement it names, the
    highest-index worker on that node (so the remaining ranks stay 0..n-1)."""
    chosen: list[int] = []
    for placement in leaving:
        candidates = [
            index
            for index, worker in workers
            if worker.node == placement.node and index not in chosen
        ]
        if candidates:
            chosen.append(max(candidates))
    return tuple(sorted(chosen))


async def _first_of(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
