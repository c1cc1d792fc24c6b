"""Steps 1–2 of a cycle: observe every job from the indexes, then build the planner's Snapshot.

Pure: it reads index records, the ledgers and the cache, and returns views and the
actions the observations call for; it performs no I/O.

GPU occupancy is derived from live pods (the ground truth: a pod holds its GPUs until
it is gone, terminating or not) plus the cache's assumed admissions whose pods are not
indexed yet — never from GPUJob status. A live pod that is not one of a planned job's
workers (a finished job's leftover, an older incarnation, a job being deleted) still
takes its GPUs out of its node's capacity. So a restarted operator, whose cache is
empty, sees every GPU that is really in use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gpupool.api import GPUJobSpec, TeamQuotaSpec
from gpupool.controller.cache import AssumedWorker, BackOff, SchedulingCache
from gpupool.controller.failures import (
    Fault,
    job_faults,
    node_health,
    unhealthy_gpu_users,
)
from gpupool.controller.idle import JobUtilization, job_utilization
from gpupool.controller.ledger import JobLedger, Ledgers
from gpupool.controller.lifecycle import Run, RunState, current_run
from gpupool.controller.records import (
    GPUNodeRecord,
    GPUPodRecord,
    JobKey,
    JobRecord,
    NodeRecord,
    PodRecord,
    TeamRecord,
)
from gpupool.controller.usage import TeamUsage
from gpupool.planner import (
    IdleMode,
    IdleReclaimPolicy,
    Job,
    JobState,
    Node,
    PlacementPolicy,
    PlannerConfig,
    Snapshot,
    Team,
    TopologyLevel,
    WorkerPlacement,
)


def job_id(key: JobKey) -> str:
    """The planner's key of a job: `namespace/name`."""
    return f"{key[0]}/{key[1]}"


def job_key(job: str) -> JobKey:
    namespace, _, name = job.partition("/")
    return (namespace, name)


def epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class Indexed:
    """What the indexes hold at the start of a cycle."""

    jobs: Mapping[JobKey, JobRecord]
    teams: Mapping[str, TeamRecord]
    nodes: Mapping[str, NodeRecord]
    gpunodes: Mapping[str, GPUNodeRecord]
    # Pods by the (namespace, name) of the GPUJob that owns them.
    pods: Mapping[JobKey, Sequence[PodRecord]]
    # Every other pod holding GPUs, by node.
    gpu_pods: Mapping[str, Sequence[GPUPodRecord]] = field(default_factory=dict)

    def all_pods(self) -> Iterable[PodRecord]:
        for pods in self.pods.values():
            yield from pods

    def other_gpu_pods(self) -> Iterable[GPUPodRecord]:
        for pods in self.gpu_pods.values():
            yield from pods


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why a job cannot be planned at all (it stays Pending with this reason)."""

    reason: str
    message: str


@dataclass(slots=True)
class JobView:
    """One job as observed this cycle."""

    record: JobRecord
    spec: GPUJobSpec
    ledger: JobLedger
    team: str | None
    blocker: Blocker | None
    run: Run
    priority: int = 0
    # The planner's view: None when the job is not planned (finished, blocked, backing off).
    state: JobState | None = None
    # (worker index, placement) of the workers holding GPUs, by index.
    workers: tuple[tuple[int, WorkerPlacement], ...] = ()
    releasing: tuple[tuple[int, WorkerPlacement], ...] = ()
    utilization: JobUtilization | None = None
    backing_off: BackOff | None = None

    @property
    def key(self) -> JobKey:
        return self.record.key

    @property
    def id(self) -> str:
        return job_id(self.record.key)

    @property
    def running(self) -> bool:
        return self.state in (JobState.RUNNING, JobState.PREEMPTING)


@dataclass(frozen=True, slots=True)
class Finish:
    """The current run ended for good: write the outcome, then remove leftover pods."""

    key: JobKey
    outcome: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Retry:
    """A worker failed: count it, remove the run's pods, retry after a back-off."""

    key: JobKey
    incarnation: int
    message: str
    failed: tuple[PodRecord, ...]


@dataclass(frozen=True, slots=True)
class Conflict:
    """Kubelets refused workers for want of GPUs: remove the run, re-plan, count nothing."""

    key: JobKey
    incarnation: int
    message: str


@dataclass(frozen=True, slots=True)
class Lost:
    """Workers lost to a node/GPU failure or deleted behind gpupool's back."""

    key: JobKey
    faults: tuple[Fault, ...]
    message: str


@dataclass(frozen=True, slots=True)
class Cleanup:
    """Pods that hold GPUs but belong to no current run: delete them."""

    key: JobKey
    pods: tuple[PodRecord, ...]


Action = Finish | Retry | Conflict | Lost | Cleanup


@dataclass(slots=True)
class Observation:
    views: dict[JobKey, JobView] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    # Evictions persisted in status (or decided earlier) that no task is working on.
    orphaned_evictions: list[JobKey] = field(default_factory=list)
    teams: dict[str, TeamQuotaSpec] = field(default_factory=dict)
    namespace_teams: dict[str, str] = field(default_factory=dict)


def namespace_owners(teams: Mapping[str, TeamQuotaSpec]) -> dict[str, str]:
    """namespace -> team; a namespace claimed twice goes to the first team by name."""
    owners: dict[str, str] = {}
    for name in sorted(teams):
        for namespace in teams[name].namespaces:
            owners.setdefault(namespace, name)
    return owners


def resolve_team(
    record: JobRecord,
    spec: GPUJobSpec,
    teams: Mapping[str, TeamQuotaSpec],
    owners: Mapping[str, str],
) -> tuple[str | None, Blocker | None]:
    """The job's team, or why it has none it may use."""
    namespace = record.namespace
    if spec.team is None:
        team = owners.get(namespace)
        if team is None:
            return None, Blocker(
                "NoTeamQuota",
                f"namespace {namespace} belongs to no TeamQuota: set spec.team or ask an "
                "administrator to add the namespace to a TeamQuota's spec.namespaces",
            )
        return team, None
    quota = teams.get(spec.team)
    if quota is None:
        return spec.team, Blocker("NoTeamQuota", f"TeamQuota {spec.team} does not exist")
    if namespace not in quota.namespaces:
        return spec.team, Blocker(
            "NamespaceNotInTeam",
            f"namespace {namespace} is not one of TeamQuota {spec.team}'s namespaces "
            f"{sorted(quota.namespaces)}: this job cannot use the team's GPUs; submit it "
            "from one of those namespaces",
        )
    return spec.team, None


def job_priority(spec: GPUJobSpec, quota: TeamQuotaSpec | None) -> tuple[int, Blocker | None]:
    if spec.priority_class_name is None:
        return spec.priority, None
    for priority_class in (quota.priority_classes if quota else None) or ():
        if priority_class.name == spec.priority_class_name:
            return priority_class.value, None
    return spec.priority, Blocker(
        "UnknownPriorityClass",
        f"spec.priorityClassName {spec.priority_class_name} is not defined in the team's "
        "TeamQuota spec.priorityClasses",
    )


def _placement(pod: PodRecord, unhealthy: Mapping[tuple[str, str], str]) -> WorkerPlacement:
    return WorkerPlacement(
        node=pod.node,
        gpus=pod.gpus,
        on_unhealthy_gpu=(pod.namespace, pod.name) in unhealthy,
    )


def _lost_workers(
    view: JobView, cache: SchedulingCache, faults: list[Fault]
) -> tuple[list[Fault], str]:
    """Faults plus workers that vanished or are being deleted though gpupool did not."""
    run = view.run
    lost = list(faults)
    notes = [fault.message for fault in faults]
    faulted = {fault.pod.uid for fault in faults} if faults else frozenset()
    for pod in run.live:
        if pod.deleting and pod.uid not in faulted:
            lost.append(Fault(pod, f"pod {pod.name} was deleted outside gpupool", False))
            notes.append(lost[-1].message)
    expected = cache.expected(view.key)
    if expected is not None and expected[0] == run.incarnation:
        missing = sorted(expected[1] - run.indices)
        pending = (
            {worker.index for worker in cache.unseen(view.key, _seen(run))} if missing else set()
        )
        vanished = [index for index in missing if index not in pending]
        if vanished:
            notes.append(f"worker(s) {vanished} vanished")
    return lost, "; ".join(notes)


def _seen(run: Run) -> set[tuple[int, int]]:
    if run.incarnation is None:
        return set()
    return {(run.incarnation, index) for index in run.workers}


def observe(
    indexed: Indexed,
    ledgers: Ledgers,
    cache: SchedulingCache,
    *,
    now: float,
    busy: set[JobKey],
) -> Observation:
    """Step 1: where every job stands, and what that calls for.

    `busy`: jobs an executor task is working on; their evictions are not orphaned.
    """
    result = Observation()
    teams = {name: record.spec for name, record in indexed.teams.items() if record.spec is not None}
    result.teams = teams
    owners = result.namespace_teams = namespace_owners(teams)
    unhealthy = unhealthy_gpu_users(indexed.gpunodes.values())

    for key, record in indexed.jobs.items():
        if record.deleting:
            continue
        ledger = ledgers.get(record)
        pods = indexed.pods.get(key, ())
        ledger.observe_pods(pod for pod in pods if pod.job_uid == record.uid)
        run = current_run(pods, record.uid)
        if run.stale:
            result.actions.append(Cleanup(key, run.stale))
        if record.spec is None:
            continue
        team, blocker = resolve_team(record, record.spec, teams, owners)
        priority, priority_blocker = job_priority(record.spec, teams.get(team or ""))
        view = JobView(
            record=record,
            spec=record.spec,
            ledger=ledger,
            team=team,
            blocker=blocker or priority_blocker,
            run=run,
            priority=priority,
        )
        result.views[key] = view
        if run.incarnation is not None:
            cache.settle(key, _seen(run))

        if ledger.finished:
            leftovers = tuple(pod for pod in run.live if not pod.deleting)
            if leftovers:
                result.actions.append(Cleanup(key, leftovers))
            continue

        if ledger.eviction is not None:
            _observe_eviction(view, cache, unhealthy)
            if key not in busy:
                result.orphaned_evictions.append(key)
            continue

        if run.state is RunState.SUCCEEDED:
            result.actions.append(Finish(key, "Succeeded", "Completed", run.message))
            continue
        if run.state is RunState.FAILED:
            failed = tuple(p for p in run.workers.values() if p.phase == "Failed")
            counted = ledger.counted_failure == run.incarnation or all(
                pod.failure_counted for pod in failed
            )
            if not counted and run.incarnation is not None:
                ledger.counted_failure = run.incarnation
                if run.conflict:
                    result.actions.append(Conflict(key, run.incarnation, run.message))
                else:
                    result.actions.append(Retry(key, run.incarnation, run.message, failed))
                continue
            if run.live:
                # The failed run's other workers are being removed; they hold GPUs.
                continue
            run = view.run = Run(RunState.NONE, run.incarnation, {}, ())

        if run.state in (RunState.RUNNING, RunState.STARTING) and key not in busy:
            if run.incarnation is not None and cache.expected(key) is None:
                # First sight of a running job (e.g. after a restart): what runs is expected.
                cache.expect(key, run.incarnation, run.indices)
            faults, message = _lost_workers(
                view, cache, job_faults(run.live, indexed.nodes, unhealthy)
            )
            if message:
                result.actions.append(Lost(key, tuple(faults), message))
                _observe_running(view, cache, unhealthy)
                continue

        back_off = cache.backing_off(key, now)
        if back_off is not None and run.state is RunState.NONE:
            view.backing_off = back_off
            continue
        if view.blocker is not None:
            # Not planned; if it still runs (its TeamQuota changed), its pods keep their
            # GPUs as foreign occupancy until it ends.
            continue
        if run.state is RunState.NONE and cache.assumption(key) is None:
            view.state = JobState.PENDING
            continue
        _observe_running(view, cache, unhealthy)
        view.utilization = job_utilization(run.live, indexed.gpunodes)
    return result


def _observe_running(
    view: JobView, cache: SchedulingCache, unhealthy: Mapping[tuple[str, str], str]
) -> None:
    workers = [(pod.index, _placement(pod, unhealthy)) for pod in view.run.live]
    assumption = cache.assumption(view.key)
    if assumption is not None:
        for worker in cache.unseen(view.key, _seen(view.run)):
            workers.append((worker.index, WorkerPlacement(worker.node, worker.gpus)))
    view.workers = tuple(sorted(workers, key=lambda item: item[0]))
    view.state = JobState.RUNNING


def _observe_eviction(
    view: JobView, cache: SchedulingCache, unhealthy: Mapping[tuple[str, str], str]
) -> None:
    record = view.ledger.eviction
    assert record is not None
    workers = tuple((pod.index, _placement(pod, unhealthy)) for pod in view.run.live)
    view.workers = workers
    if record.whole_job:
        view.state = JobState.PREEMPTING
        return
    view.state = JobState.RUNNING
    leaving = set(record.workers or ())
    view.releasing = tuple(item for item in workers if item[0] in leaving)
    restart = cache.assumption(view.key)
    if restart is not None and restart.incarnation > record.incarnation:
        # A resize: the job holds the GPUs of its next incarnation (assumed) while the
        # current one is checkpointed and deleted, plus the leaving workers' until
        # they are gone.
        after = max((index for index, _ in workers), default=-1) + 1
        view.workers = view.releasing + tuple(
            (after + worker.index, WorkerPlacement(worker.node, worker.gpus))
            for worker in restart.workers
        )


def planner_team(
    name: str, spec: TeamQuotaSpec, usage: TeamUsage | None, *, unmanaged: int = 0
) -> Team:
    idle = spec.idle_reclaim
    return Team(
        name=name,
        unmanaged_gpus=unmanaged,
        guaranteed_gpus=spec.guaranteed_gpus,
        max_gpus=spec.max_gpus,
        weight=spec.weight,
        decayed_usage=usage.decayed if usage is not None else 0.0,
        idle_reclaim=None
        if idle is None
        else IdleReclaimPolicy(
            utilization_below=idle.utilization_below,
            for_seconds=idle.for_minutes * 60.0,
            mode=IdleMode(idle.mode),
        ),
    )


def planner_job(view: JobView) -> Job:
    spec = view.spec
    low, high = spec.worker_range
    placement = spec.placement
    ledger = view.ledger
    hook = spec.checkpoint
    eviction = ledger.eviction
    started = ledger.started_at or ledger.admitted_at
    return Job(
        key=view.id,
        team=view.team or "",
        gpus_per_worker=spec.gpus_per_worker,
        min_workers=low,
        max_workers=high,
        priority=view.priority,
        preemptible=spec.preemptible,
        submitted_at=epoch(ledger.queued_since or view.record.created) or 0.0,
        state=view.state or JobState.PENDING,
        workers=tuple(placement for _, placement in view.workers),
        releasing=tuple(placement for _, placement in view.releasing),
        preempted_for=eviction.for_job if eviction is not None else None,
        started_at=epoch(started) if view.state is not JobState.PENDING else None,
        last_checkpoint_at=epoch(ledger.last_checkpoint.time if ledger.last_checkpoint else None),
        checkpoint_hook=hook is not None,
        checkpoint_timeout_seconds=float(hook.timeout_seconds) if hook else 0.0,
        placement=PlacementPolicy()
        if placement is None
        else PlacementPolicy(
            topology=TopologyLevel(placement.topology),
            required=placement.required,
            preferred_nodes=tuple(placement.preferred_nodes or ()),
        ),
        idle_since=epoch(ledger.idle_since),
        utilization=view.utilization.mean_1m if view.utilization else None,
    )


def other_gpu_usage(
    indexed: Indexed, namespace_teams: Mapping[str, str]
) -> dict[tuple[str, str | None], int]:
    """GPUs that pods gpupool did not create hold, by (node of the pool, team or None
    for a namespace outside every team)."""
    usage: dict[tuple[str, str | None], int] = {}
    for pod in indexed.other_gpu_pods():
        if pod.node in indexed.nodes:
            key = (pod.node, namespace_teams.get(pod.namespace))
            usage[key] = usage.get(key, 0) + pod.gpus
    return usage


def build_snapshot(
    indexed: Indexed,
    observation: Observation,
    usage: Mapping[str, TeamUsage],
    config: PlannerConfig,
) -> Snapshot:
    """Step 2: the planner's input."""
    jobs = [planner_job(v) for v in observation.views.values() if v.state is not None]
    planned_pods = {
        pod.uid
        for view in observation.views.values()
        if view.state is not None and view.state is not JobState.PENDING
        for pod in view.run.live
    }
    # GPUs held by pods no planned job accounts for: gpupool's own leftovers (a finished
    # run, an older incarnation, a job being deleted), and every pod gpupool did not
    # create. The latter are charged to the team whose namespace holds them.
    foreign: dict[str, int] = {}
    foreign_pods: set[tuple[str, str]] = set()
    for pod in indexed.all_pods():
        if pod.occupies_gpus and pod.uid not in planned_pods:
            foreign[pod.node] = foreign.get(pod.node, 0) + pod.gpus
            foreign_pods.add((pod.namespace, pod.name))
    charged: dict[str, int] = {}
    for (node, team), gpus in other_gpu_usage(indexed, observation.namespace_teams).items():
        foreign[node] = foreign.get(node, 0) + gpus
        if team is not None:
            charged[team] = charged.get(team, 0) + gpus
    foreign_pods.update((other.namespace, other.name) for other in indexed.other_gpu_pods())
    nodes = []
    for record in indexed.nodes.values():
        total = max(record.capacity_gpus, record.gpus)
        if total <= 0:
            continue
        # A foreign pod on an unhealthy GPU is already out of the capacity: not twice.
        health = node_health(record, indexed.gpunodes.get(record.name), exclude=foreign_pods)
        nodes.append(
            Node(
                name=record.name,
                gpus=total,
                unmanaged_gpus=foreign.get(record.name, 0),
                unhealthy_gpus=min(health.unhealthy, total),
                ready=record.ready,
                schedulable=record.schedulable and not health.handed_out,
                rack=record.rack or None,
                zone=record.zone or None,
                nvlink_domain=record.nvlink_domain or None,
            )
        )
    # Workers on a node that is gone: keep the node, not ready, so the books balance.
    known = set(indexed.nodes)
    missing: dict[str, int] = {}
    for job in jobs:
        for worker in job.workers:
            if worker.node not in known:
                missing[worker.node] = missing.get(worker.node, 0) + worker.gpus
    nodes.extend(Node(name=name, gpus=gpus, ready=False) for name, gpus in missing.items())
    teams = [
        planner_team(name, spec, usage.get(name), unmanaged=charged.get(name, 0))
        for name, spec in observation.teams.items()
    ]
    return Snapshot(
        nodes=tuple(sorted(nodes, key=lambda node: node.name)),
        teams=tuple(sorted(teams, key=lambda team: team.name)),
        jobs=tuple(sorted(jobs, key=lambda job: job.key)),
        config=config,
    )


def assumed_workers(
    placements: Iterable[WorkerPlacement], first_index: int
) -> tuple[AssumedWorker, ...]:
    return tuple(
        AssumedWorker(first_index + offset, placement.node, placement.gpus)
        for offset, placement in enumerate(placements)
    )
