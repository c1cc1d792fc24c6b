"""Step 7: apply decisions through the API, asynchronously, with bounded concurrency.

Each job has at most one operation running; a new one for the same job waits for the
previous (an eviction decided while the job's pods are still being created runs once
they are). Every operation is idempotent and resumable from what is persisted:

- admit (and an elastic job's restart at its new size): Service (for a job that can
  have several workers) and pods are created
  with fixed names (`<job>-<incarnation>-<i>`), so a retry meets AlreadyExists, not
  duplicates. Refused by the API: the pods created so far are deleted, the assumption
  is forgotten, the job returns to the queue.
- evict (preemption, reclaim, elastic resize, node failure): the preemption record is
  persisted in status *before* the hook runs; a checkpoint location is persisted as soon
  as the hook returns it; the requeue (preemptions + 1, record cleared) is one status
  patch written once the pods are gone. A restart resumes from the record. An elastic
  resize checkpoints and deletes every worker, clears the record, then admits the new
  incarnation the loop assumed (a restarted operator no longer knows its placements:
  the job waits in the queue for new ones, keeping its place).
- finish: the outcome is persisted before leftover workers are deleted.
- retry: the failed pod is marked counted (a label), then the failure is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gpupool.api import CheckpointRecord, GPUJobSpec
from gpupool.controller.cache import AssumedWorker, SchedulingCache
from gpupool.controller.checkpoint import CheckpointOutcome, Source, request_checkpoint
from gpupool.controller.clock import Clock, as_datetime
from gpupool.controller.ledger import JobLedger, Ledgers
from gpupool.controller.manifests import (
    headless_service,
    label_value,
    needs_service,
    worker_pod,
)
from gpupool.controller.metrics import METRICS
from gpupool.controller.podcheck import (
    MAX_POD_REFUSALS,
    DryRuns,
    describe_refusal,
    dry_run_worker,
    refused_for_good,
    shape_of,
)
from gpupool.controller.preemption import EvictionRecord
from gpupool.controller.records import (
    LABEL_FAILURE_COUNTED,
    JobKey,
    JobRecord,
    PodRecord,
    pod_manifest,
)
from gpupool.controller.settings import OperatorConfig
from gpupool.k8s import PODS, SERVICES, ApiError, KubeClient
from gpupool.k8s.events import EventRecorder, EventType, ObjectRef
from gpupool.planner import PreemptionReason

logger = logging.getLogger(__name__)

_PERSIST_ATTEMPTS = 5
_GONE_POLL_SECONDS = 0.25
# After the hook and the graceful deletion, how long pods may take to disappear before
# they are force-deleted (a kubelet that never confirms).
_GONE_GRACE_SECONDS = 30.0


class World(Protocol):
    """What the executor reads of the live state (the scheduler implements it)."""

    def job(self, key: JobKey) -> JobRecord | None: ...

    def pods(self, key: JobKey) -> Sequence[PodRecord]: ...

    def team_of(self, key: JobKey) -> str | None: ...

    async def write_status(self, key: JobKey, *, force: bool) -> bool:
        """Render the job's status from the current ledger and write it if it changed."""
        ...

    def node_down(self, node: str) -> bool: ...

    def kick(self) -> None: ...


def job_ref(record: JobRecord) -> ObjectRef:
    return ObjectRef("gpupool.io/v1alpha1", "GPUJob", record.name, record.namespace, record.uid)


def job_ref_of(job: str) -> ObjectRef:
    namespace, _, name = job.partition("/")
    return ObjectRef("gpupool.io/v1alpha1", "GPUJob", name, namespace)


@dataclass(frozen=True, slots=True)
class Admit:
    key: JobKey
    incarnation: int
    workers: tuple[AssumedWorker, ...]
    world_size: int
    # Restored if the API refuses the admission.
    previous_incarnation: int | None
    message: str
    previous_admitted_at: datetime | None = None
    # An elastic job started again at its new size: the Event to post ("Grown",
    # "Shrunk") instead of Admitted/Resumed.
    resized: str = ""


class Executor:
    def __init__(
        self,
        client: KubeClient,
        *,
        world: World,
        cache: SchedulingCache,
        ledgers: Ledgers,
        recorder: EventRecorder,
        config: OperatorConfig,
        clock: Clock,
        concurrency: asyncio.Semaphore,
    ) -> None:
        self._client = client
        self._world = world
        self._cache = cache
        self._ledgers = ledgers
        self._recorder = recorder
        self._config = config
        self._clock = clock
        self._concurrency = concurrency
        self._tasks: dict[JobKey, asyncio.Task[None]] = {}
        # Per job spec (uid, generation): final refusals of its pods so far, and whether a
        # dry run showed that its pods can be created (see `podcheck`).
        self._refusals: dict[tuple[str, int], int] = {}
        self._validated: dict[tuple[str, int], bool] = {}
        self._dry_runs = DryRuns(clock.monotonic)

    # --- scheduling of operations -------------------------------------------------------

    def busy(self) -> set[JobKey]:
        return {key for key, task in self._tasks.items() if not task.done()}

    def submit(self, key: JobKey, name: str, operation: Callable[[], Awaitable[None]]) -> None:
        """Run `operation` after whatever is already running for the job."""
        previous = self._tasks.get(key)

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await operation()
            except Exception:
                logger.exception("%s of %s/%s failed", name, *key)
            finally:
                self._world.kick()

        task = asyncio.create_task(run(), name=f"{name} {key[0]}/{key[1]}")
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._forget_task(key, done))

    def _forget_task(self, key: JobKey, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    # --- helpers ------------------------------------------------------------------------

    def _event(
        self,
        record: JobRecord,
        reason: str,
        action: str,
        note: str,
        *,
        type_: EventType = "Normal",
        related: ObjectRef | None = None,
    ) -> None:
        self._recorder.record(
            job_ref(record),
            reason=reason,
            action=action,
            note=note,
            now=as_datetime(self._clock.now()),
            type_=type_,
            related=related,
        )

    async def _persist(self, key: JobKey) -> bool:
        """Write the job's status now; retried, since what follows depends on it."""
        for attempt in range(_PERSIST_ATTEMPTS):
            if await self._world.write_status(key, force=True):
                return True
            await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
        return False

    async def _delete(self, pods: Sequence[PodRecord], grace: int | None) -> None:
        async def one(pod: PodRecord) -> None:
            async with self._concurrency:
                try:
                    await self._client.delete(
                        PODS, pod.name, pod.namespace, grace_period_seconds=grace, uid=pod.uid
                    )
                except ApiError as error:
                    logger.warning("deleting pod %s/%s: %s", pod.namespace, pod.name, error)

        await asyncio.gather(*(one(pod) for pod in pods))

    async def _wait_gone(
        self,
        key: JobKey,
        uids: set[str],
        seconds: float,
        watch: Callable[[], object] | None = None,
    ) -> set[str]:
        """Wait (reading the pod index) until none of `uids` is left; the ones left.
        `watch` looks at the pods at every poll."""
        deadline = self._clock.monotonic() + seconds
        while True:
            if watch is not None:
                watch()
            left = {pod.uid for pod in self._world.pods(key) if pod.uid in uids}
            if not left or self._clock.monotonic() >= deadline:
                return left
            await asyncio.sleep(_GONE_POLL_SECONDS)

    # --- admission ----------------------------------------------------------------------

    async def admit(self, decision: Admit) -> None:
        key = decision.key
        record = self._world.job(key)
        team = self._world.team_of(key)
        if record is None or record.spec is None or team is None:
            self._cache.forget(key)
            return
        spec = record.spec
        ledger = self._ledgers.get(record)
        resume = ledger.last_checkpoint.location if ledger.last_checkpoint else None
        created: list[tuple[str, str]] = []
        started = self._clock.monotonic()
        try:
            if not decision.resized and needs_service(spec):
                await self._create_service(record, spec, team)
            await asyncio.gather(
                *(
                    self._create_pod(record, spec, team, decision, worker, resume, created)
                    for worker in decision.workers
                )
            )
        except ApiError as error:
            await self._undo_admission(record, ledger, decision, created, error)
            return
        METRICS.admission_seconds.observe(self._clock.monotonic() - started)
        self._cache.created(key, self._clock.now())
        # No status write here: the next cycle writes Admitted or, as the pods usually
        # start within it, Running — one write per admission instead of two.
        self._world.kick()
        nodes = ", ".join(sorted({worker.node for worker in decision.workers}))
        if decision.resized:
            source = f"from checkpoint {resume}" if resume else "without a checkpoint"
            self._event(
                record,
                decision.resized,
                "Resize",
                f"started again as incarnation {decision.incarnation} with "
                f"{decision.world_size} worker(s) (WORLD_SIZE {decision.world_size}) on "
                f"{nodes}, {source}: {decision.message}",
            )
        elif resume is not None and decision.incarnation > 0:
            self._event(
                record,
                "Resumed",
                "Admit",
                f"resumed as incarnation {decision.incarnation} on {nodes} from checkpoint "
                f"{resume} (GPUPOOL_RESUME_FROM)",
            )
        else:
            self._event(
                record,
                "Admitted",
                "Admit",
                f"{len(decision.workers)}×{spec.gpus_per_worker} GPUs on {nodes} "
                f"(incarnation {decision.incarnation}): {decision.message}",
            )

    async def _create_service(self, record: JobRecord, spec: GPUJobSpec, team: str) -> None:
        async with self._concurrency:
            try:
                await self._client.create(
                    SERVICES, headless_service(record.owner, spec, team=team), record.namespace
                )
            except ApiError as error:
                if not error.conflict:
                    raise

    async def _create_pod(
        self,
        record: JobRecord,
        spec: GPUJobSpec,
        team: str,
        decision: Admit,
        worker: AssumedWorker,
        resume: str | None,
        created: list[tuple[str, str]],
    ) -> None:
        # The body is built once a connection is free: thousands of admissions queue here.
        async with self._concurrency:
            body = worker_pod(
                record.owner,
                spec,
                team=team,
                index=worker.index,
                world_size=decision.world_size,
                node=worker.node,
                incarnation=decision.incarnation,
                resume_from=resume,
                gpu_resource=self._config.gpu_resource,
            )
            try:
                result = await self._client.create(PODS, body, record.namespace)
            except ApiError as error:
                if error.conflict:
                    return
                raise
        created.append((result["metadata"]["name"], result["metadata"]["uid"]))

    async def _undo_admission(
        self,
        record: JobRecord,
        ledger: JobLedger,
        decision: Admit,
        created: list[tuple[str, str]],
        error: ApiError,
    ) -> None:
        key = decision.key
        logger.warning("admission of %s/%s refused: %s", *key, error)
        for name, uid in created:
            async with self._concurrency:
                try:
                    await self._client.delete(
                        PODS,
                        name,
                        record.namespace,
                        grace_period_seconds=self._config.eviction_grace_seconds,
                        uid=uid,
                    )
                except ApiError as cleanup:
                    logger.warning("undoing pod %s: %s", name, cleanup)
        self._cache.forget(key)
        ledger.incarnation = decision.previous_incarnation
        ledger.admitted_at = decision.previous_admitted_at
        self._cache.unexpect(key)
        METRICS.admission_failures.inc()
        spec_key = (record.uid, record.generation)
        refusals = self._refusals.get(spec_key, 0) + 1 if refused_for_good(error) else 0
        self._refusals[spec_key] = refusals
        if refusals >= MAX_POD_REFUSALS:
            self._validated[spec_key] = False
            await self.finish(
                key,
                "Failed",
                "PodRefused",
                f"the API server refused the worker pods {refusals} times "
                f"({describe_refusal(error)}); fix spec.template and create the job again",
            )
            return
        delay = self._config.retry_base_seconds * 2 ** max(refusals - 1, 0)
        self._cache.back_off(
            key,
            self._clock.now() + delay,
            "AdmissionRefused",
            f"the API server refused the worker pods ({describe_refusal(error)}); "
            f"retrying in {delay:.0f}s"
            + (f" (refusal {refusals} of {MAX_POD_REFUSALS})" if refusals else ""),
        )
        self._event(
            record,
            "AdmissionFailed",
            "Admit",
            f"the API server refused the worker pods ({error.status} {error.reason}: "
            f"{error.message}); requeued",
            type_="Warning",
        )
        await self._world.write_status(key, force=False)

    # --- validation before preempting for a job -----------------------------------------

    def retain(self, uids: set[str]) -> None:
        """Forget what was learnt about jobs that are gone."""
        for known in (self._refusals, self._validated):
            for spec_key in [spec_key for spec_key in known if spec_key[0] not in uids]:
                del known[spec_key]

    def validated(self, record: JobRecord) -> bool | None:
        """Whether a dry run showed the job's pods can be created (None: not known yet)."""
        return self._validated.get((record.uid, record.generation))

    async def validate(self, key: JobKey) -> None:
        """Dry-run the job's worker pod; a final refusal fails the job, naming the field."""
        record = self._world.job(key)
        team = self._world.team_of(key)
        if record is None or record.spec is None or team is None:
            return
        spec_key = (record.uid, record.generation)
        if spec_key in self._validated:
            return
        spec = record.spec

        async def ask() -> str | None:
            async with self._concurrency:
                return await dry_run_worker(
                    self._client, record.owner, spec, team, self._config.gpu_resource
                )

        try:
            problem = await self._dry_runs.answer(shape_of(record.namespace, team, spec), ask)
        except ApiError as error:
            logger.warning("dry run of %s/%s: %s; tried again later", *key, error)
            return
        self._validated[spec_key] = problem is None
        if problem is not None:
            await self.finish(
                key,
                "Failed",
                "PodRefused",
                f"the API server refuses its worker pod ({problem}); nobody was preempted "
                "for it; fix spec.template and create the job again",
            )

    # --- eviction -----------------------------------------------------------------------

    async def evict(self, key: JobKey) -> None:
        """Checkpoint, then evict the job (or the workers of an elastic shrink)."""
        record = self._world.job(key)
        if record is None or record.spec is None:
            return
        ledger = self._ledgers.get(record)
        if ledger.eviction is None:
            return
        # A record persisted by an earlier run (an operator restart) keeps its deadline.
        resumed = ledger.eviction_persisted
        if not resumed:
            ledger.eviction = ledger.eviction.restamped(as_datetime(self._clock.now()))
        eviction = ledger.eviction
        # 1. The record first: a restart from here on resumes this preemption.
        if not await self._persist(key):
            logger.warning("preemption of %s/%s not persisted; retried next cycle", *key)
            if eviction.reason is not PreemptionReason.NODE_FAILURE:
                ledger.eviction = None
                if not eviction.whole_job:
                    # The resize's next incarnation will not start: nothing is assumed.
                    self._cache.forget(key)
                    self._cache.unexpect(key)
                    ledger.incarnation = eviction.incarnation
            return
        ledger.eviction_persisted = True
        related = job_ref_of(eviction.for_job) if eviction.for_job else None
        target = f" for {eviction.for_job} (team {eviction.for_team})" if eviction.for_job else ""
        if eviction.whole_job:
            starting = "Preempting"
        else:
            grow = eviction.reason is PreemptionReason.ELASTIC_GROW
            starting = "Growing" if grow else "Shrinking"
        self._event(
            record,
            starting,
            "Preempt",
            f"{eviction.reason.value}{target}: {eviction.message}",
            type_="Warning" if eviction.reason is PreemptionReason.NODE_FAILURE else "Normal",
            related=related,
        )
        # A run whose worker 0 completed meanwhile finished: it is not preempted.
        completion = _Completion(self._world, record, eviction.incarnation)
        # A resize takes every worker too: they all start again at the new size.
        pods = [
            pod for pod in self._world.pods(key) if pod.job_uid == record.uid and not pod.terminal
        ]
        if completion.check():
            await self._finish_completed(record, ledger, completion)
            return
        # 2. The hook, then the pods are deleted (the protocol deletes them).
        outcome = await self._checkpoint_and_delete(record, ledger, pods, resumed=resumed)
        # 3. A checkpoint is persisted the moment it is known (httpPost: before the
        # pods were deleted, through the hook's `persist`).
        if (
            outcome is not None
            and outcome.location is not None
            and self._record_checkpoint(ledger, outcome.location, outcome.source)
        ):
            await self._persist(key)
        ledger.hook_result = _hook_summary(outcome, eviction.reason)
        # 4. Wait until the pods are gone: their GPUs are not free before. Pods that
        # ended after their deletion began (before a restart of the operator, say) go
        # too: one that exited 0 on SIGTERM must not read as a completed run after the
        # requeue.
        ended = [
            pod
            for pod in self._world.pods(key)
            if pod.job_uid == record.uid and pod.terminal and pod.deleting
        ]
        await self._delete(ended, None)
        pods = pods + ended
        uids = {pod.uid for pod in pods}
        left = await self._wait_gone(key, uids, _GONE_GRACE_SECONDS, completion.check)
        if left:
            await self._delete([pod for pod in pods if pod.uid in left], 0)
            await self._wait_gone(key, left, 10.0, completion.check)
        self._take_reported_checkpoint(key, record, ledger, uids)
        if completion.check():
            await self._finish_completed(record, ledger, completion)
            return
        # 5. Requeue (or, for a resize, start again at the new size): one status patch.
        await self._finish_eviction(record, ledger)

    async def _checkpoint_and_delete(
        self, record: JobRecord, ledger: JobLedger, pods: list[PodRecord], *, resumed: bool
    ) -> CheckpointOutcome | None:
        eviction = ledger.eviction
        spec = record.spec
        assert eviction is not None and spec is not None
        if not pods:
            return None
        if eviction.reason is PreemptionReason.NODE_FAILURE:
            down = [pod for pod in pods if self._world.node_down(pod.node)]
            alive = [pod for pod in pods if not self._world.node_down(pod.node)]
            # Nothing will answer on a dead node: grace 0 removes the pod object at once.
            await self._delete(down, 0)
            await self._delete(alive, 0 if eviction.workers is None else None)
            return None
        hook = spec.checkpoint
        if hook is not None and resumed:
            remaining = eviction.deadline.timestamp() - self._clock.now()
            if remaining < 1:
                # Resumed after a restart past the deadline: the hook had its time.
                await self._delete(pods, self._config.eviction_grace_seconds)
                METRICS.hooks.labels("timeout").inc()
                return CheckpointOutcome(
                    "timeout", None, "unknown", 0.0, "deadline passed before the hook ended"
                )
            hook = hook.model_copy(update={"timeout_seconds": max(1, int(remaining))})
        # Otherwise the hook gets its whole timeout from now: persisting the record may
        # have queued behind other writes (a reclaim burst), and the hook could not run
        # before it was written.
        started = self._clock.monotonic()

        async def persist(location: str) -> bool:
            # Before the pods go: an operator killed after the delete still knows it.
            self._record_checkpoint(ledger, location, "hook")
            return await self._persist(record.key)

        outcome = await request_checkpoint(
            self._client,
            namespace=record.namespace,
            job_name=record.name,
            pods=[pod_manifest(pod, label_value(record.name)) for pod in pods],
            hook=hook,
            now=self._clock.monotonic,
            address=self._config.checkpoint_address,
            persist=persist,
        )
        METRICS.hook_seconds.labels(outcome.outcome).observe(self._clock.monotonic() - started)
        METRICS.hooks.labels(outcome.outcome).inc()
        return outcome

    def _record_checkpoint(self, ledger: JobLedger, location: str, source: Source) -> bool:
        """The hook's location as the last checkpoint; False if it is already recorded."""
        last = ledger.last_checkpoint
        eviction = ledger.eviction
        if (
            last is not None
            and last.location == location
            and eviction is not None
            and last.time is not None
            and last.time >= eviction.requested_at
        ):
            return False
        ledger.last_checkpoint = CheckpointRecord(
            location=location, time=as_datetime(self._clock.now()), source=source
        )
        return True

    def _take_reported_checkpoint(
        self, key: JobKey, record: JobRecord, ledger: JobLedger, uids: set[str]
    ) -> None:
        """A location the pods wrote to their termination message, if the hook missed it."""
        if ledger.last_checkpoint is not None and ledger.eviction is not None:
            last = ledger.last_checkpoint.time
            if last is not None and last >= ledger.eviction.requested_at:
                return
        for pod in sorted(self._world.pods(key), key=lambda p: p.index):
            if pod.uid in uids and pod.checkpoint:
                ledger.last_checkpoint = CheckpointRecord(
                    location=pod.checkpoint,
                    time=as_datetime(self._clock.now()),
                    source="terminationMessage",
                )
                return

    async def _finish_eviction(self, record: JobRecord, ledger: JobLedger) -> None:
        eviction = ledger.eviction
        assert eviction is not None
        if not eviction.whole_job:
            await self._finish_resize(record, ledger, eviction)
            return
        key = record.key
        checkpoint = ledger.last_checkpoint.location if ledger.last_checkpoint else None
        resume = f"resumes from {checkpoint}" if checkpoint else "no checkpoint to resume from"
        gone_to = (
            f"its GPUs go to {eviction.for_job} (team {eviction.for_team})"
            if eviction.for_job
            else "its GPUs were released"
        )
        message = f"{eviction.reason.value}: {gone_to}; {ledger.hook_result}; {resume}"
        ledger.preemptions += 1
        ledger.requeued = (eviction.reason.value, message)
        idle = eviction.reason is PreemptionReason.IDLE_RECLAIM
        ledger.queued_since = as_datetime(self._clock.now()) if idle else None
        ledger.idle_since = None
        ledger.started_at = None
        self._cache.forget(key)
        self._cache.unexpect(key)
        METRICS.preemptions.labels(eviction.reason.value).inc()
        ledger.eviction = None
        ledger.eviction_persisted = False
        if not await self._persist(key):
            logger.warning("requeue of %s/%s not persisted; it is retried", *key)
        self._event(
            record,
            "Requeued",
            "Requeue",
            message,
            related=job_ref_of(eviction.for_job) if eviction.for_job else None,
        )

    async def _finish_resize(
        self, record: JobRecord, ledger: JobLedger, eviction: EvictionRecord
    ) -> None:
        """Every worker is checkpointed and gone: clear the record, then start the new
        incarnation the loop assumed (in that order: a restart must never take the new
        pods for the ones the record names)."""
        key = record.key
        grow = eviction.reason is PreemptionReason.ELASTIC_GROW
        if not grow:
            METRICS.preemptions.labels(eviction.reason.value).inc()
        restart = self._cache.assumption(key)
        ledger.eviction = None
        ledger.eviction_persisted = False
        ledger.started_at = None
        ledger.idle_since = None
        if not await self._persist(key):
            logger.warning("resize of %s/%s not persisted; it is retried", *key)
        target = f"for {eviction.for_job}" if eviction.for_job else "into idle GPUs"
        message = f"{eviction.reason.value} {target}; {ledger.hook_result}"
        if restart is None or restart.incarnation <= eviction.incarnation:
            # The operator restarted meanwhile and forgot the new placements: the job
            # waits in the queue (keeping its place) to be admitted again.
            self._cache.unexpect(key)
            self._event(record, "Grown" if grow else "Shrunk", "Resize", f"{message}; requeued")
            return
        previous_admitted_at = ledger.admitted_at
        ledger.admitted_at = as_datetime(self._clock.now())
        await self.admit(
            Admit(
                key=key,
                incarnation=restart.incarnation,
                workers=restart.workers,
                world_size=len(restart.workers),
                previous_incarnation=eviction.incarnation,
                message=message,
                previous_admitted_at=previous_admitted_at,
                resized="Grown" if grow else "Shrunk",
            )
        )

    async def _finish_completed(
        self, record: JobRecord, ledger: JobLedger, completion: _Completion
    ) -> None:
        """The evicted run finished on its own: record it as finished, not preempted (no
        requeue, no `preemptions + 1`, no Preempted condition, no Requeued Event)."""
        eviction = ledger.eviction
        assert eviction is not None
        ledger.eviction = None
        ledger.eviction_persisted = False
        if not eviction.whole_job:
            # A resize's next incarnation is not started: the job is done.
            self._cache.forget(record.key)
            self._cache.unexpect(record.key)
            ledger.incarnation = eviction.incarnation
        await self.finish(
            record.key,
            "Succeeded",
            "Completed",
            f"worker 0 (pod {completion.pod}) completed while being checkpointed "
            f"({eviction.reason.value})",
        )

    # --- outcomes -----------------------------------------------------------------------

    async def finish(self, key: JobKey, outcome: str, reason: str, message: str) -> None:
        record = self._world.job(key)
        if record is None:
            return
        ledger = self._ledgers.get(record)
        if ledger.outcome is None:
            ledger.outcome = "Succeeded" if outcome == "Succeeded" else "Failed"
            ledger.outcome_reason = reason
            ledger.outcome_message = message
            ledger.finished_at = as_datetime(self._clock.now())
        if not await self._persist(key):
            return
        leftovers = [p for p in self._world.pods(key) if not p.terminal and not p.deleting]
        await self._delete(leftovers, None)
        METRICS.finished.labels(ledger.outcome).inc()
        self._event(
            record,
            ledger.outcome,
            "Finish",
            message,
            type_="Normal" if ledger.outcome == "Succeeded" else "Warning",
        )

    async def retry(
        self, key: JobKey, incarnation: int, message: str, failed: Sequence[PodRecord]
    ) -> None:
        record = self._world.job(key)
        if record is None or record.spec is None:
            return
        ledger = self._ledgers.get(record)
        # The mark on the evidence first: a restart never counts this failure twice.
        for pod in failed:
            async with self._concurrency:
                try:
                    await self._client.patch(
                        PODS,
                        pod.name,
                        {"metadata": {"labels": {LABEL_FAILURE_COUNTED: "true"}}},
                        pod.namespace,
                    )
                except ApiError as error:
                    if not error.not_found:
                        logger.warning("marking pod %s: %s", pod.name, error)
        ledger.failures += 1
        limit = record.spec.backoff_limit
        if ledger.failures > limit:
            await self.finish(
                key,
                "Failed",
                "BackoffLimitExceeded",
                f"{message}; {ledger.failures} failures exceed backoffLimit {limit}",
            )
            return
        delay = min(
            self._config.retry_base_seconds * 2 ** (ledger.failures - 1),
            self._config.retry_max_seconds,
        )
        self._cache.back_off(
            key,
            self._clock.now() + delay,
            "BackoffAfterFailure",
            f"{message}; failure {ledger.failures} of backoffLimit {limit}, retrying in "
            f"{delay:.0f}s",
        )
        ledger.requeued = ("WorkerFailed", f"{message}; retry in {delay:.0f}s")
        ledger.started_at = None
        self._cache.unexpect(key)
        await self._persist(key)
        live = [p for p in self._world.pods(key) if not p.terminal and not p.deleting]
        await self._delete(live, None)
        self._event(
            record,
            "WorkerFailed",
            "Retry",
            f"incarnation {incarnation}: {message}; failure {ledger.failures} of backoffLimit "
            f"{limit}, retrying in {delay:.0f}s",
            type_="Warning",
        )

    async def conflict(self, key: JobKey, incarnation: int, message: str) -> None:
        """Workers refused at admission: the whole gang goes back to the planner, which
        now sees the pod that took the GPUs. No failure is counted."""
        record = self._world.job(key)
        if record is None or record.spec is None:
            return
        ledger = self._ledgers.get(record)
        delay = self._config.conflict_retry_seconds
        self._cache.back_off(
            key, self._clock.now() + delay, "PlacementConflict", f"{message}; re-planning"
        )
        ledger.requeued = ("PlacementConflict", message)
        ledger.started_at = None
        self._cache.unexpect(key)
        METRICS.placement_conflicts.inc()
        await self._persist(key)
        await self._delete([p for p in self._world.pods(key) if not p.deleting], None)
        self._event(
            record,
            "PlacementConflict",
            "Requeue",
            f"incarnation {incarnation}: {message}; the job is re-planned (no failure counted)",
            type_="Warning",
        )

    async def cleanup(self, pods: Sequence[PodRecord]) -> None:
        await self._delete(pods, None)


class _Completion:
    """Whether worker 0 of the evicted incarnation completed on its own (the success
    policy: the run is complete), as seen at any of the eviction's looks at the pods —
    the pod may be gone by the end.

    Only a pod that succeeded before anyone deleted it counts: one that exits 0 after
    its deletion began was answering the SIGTERM (a workload may save and exit 0), and
    calling that run finished would silently drop the rest of its training; requeueing
    a run that did finish only repeats its last steps."""

    def __init__(self, world: World, record: JobRecord, incarnation: int) -> None:
        self._world = world
        self._record = record
        self._incarnation = incarnation
        self.pod: str | None = None

    def check(self) -> bool:
        if self.pod is None:
            for pod in self._world.pods(self._record.key):
                if (
                    pod.job_uid == self._record.uid
                    and pod.incarnation == self._incarnation
                    and pod.index == 0
                    and pod.phase == "Succeeded"
                    and not pod.deleting
                ):
                    self.pod = pod.name
        return self.pod is not None


def _hook_summary(outcome: CheckpointOutcome | None, reason: PreemptionReason) -> str:
    if outcome is None:
        if reason is PreemptionReason.NODE_FAILURE:
            return "the pods could not be asked for a checkpoint"
        return "no pods were left to checkpoint"
    if outcome.outcome == "succeeded":
        return f"checkpoint hook succeeded in {outcome.duration_s:.1f}s"
    if outcome.outcome == "skipped":
        return "no checkpoint hook"
    return f"checkpoint hook {outcome.outcome} ({outcome.message})"
