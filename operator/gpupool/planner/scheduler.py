"""`plan(snapshot, now) -> Plan`: one scheduling cycle, in numbered steps.

1. Index the snapshot (sorted by name, so input order never matters).
2. Requeue jobs hit by node or GPU failure.
3. Entitlements: guarantee, then weighted fair share of the idle capacity.
4. Index free capacity: healthy GPUs on ready, schedulable nodes, minus held ones.
5. Serve the pending jobs, teams furthest below entitlement first: admit into free
   GPUs, else wait for victims already checkpointing, else reclaim or preempt the
   cheapest victims that make the job fit, else explain why it waits.
6. Grow elastic jobs into what is still free.
7. Report: admissions, preemptions, resizes, pending reasons and positions, teams.

Within a cycle free capacity only shrinks (preempted GPUs are freed by a later
cycle, after the checkpoint), so "shape X does not fit" is remembered for the cycle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType

from gpupool.planner import reasons
from gpupool.planner.holding import Holding, lost_seconds
from gpupool.planner.order import serve_in_order, sort_queue
from gpupool.planner.placement import Capacity, Layout, Shape, StaticCapacity, level_name
from gpupool.planner.plan import (
    Admission,
    IdleJob,
    PendingJob,
    Plan,
    Preemption,
    PreemptionReason,
    Resize,
    ResizeKind,
    TeamFigures,
)
from gpupool.planner.quota import TeamLedger, entitlements
from gpupool.planner.reasons import PendingReason
from gpupool.planner.snapshot import (
    Job,
    JobState,
    Snapshot,
    Team,
    TopologyLevel,
    WorkerPlacement,
)
from gpupool.planner.victims import Request, Selection, Stage, VictimPool, idle_enforced, idle_for

Outcome = tuple[PendingReason, str]
# What a job no victim is checkpointing for gets: never written to.
NO_INFLIGHT: Mapping[int, int] = MappingProxyType({})


def plan(snapshot: Snapshot, now: float) -> Plan:
    """Decide one scheduling cycle. Pure: same snapshot and `now`, same plan."""
    cycle = _Cycle(snapshot, now)  # 1. index the snapshot
    cycle.requeue_failed()  # 2. node and GPU failures
    cycle.compute_entitlements()  # 3. guarantee + weighted fair share
    cycle.index_capacity()  # 4. free GPUs by node and domain
    cycle.serve_pending()  # 5. admit, reclaim/preempt, or explain
    cycle.grow_elastic()  # 6. elastic jobs take what is left
    return cycle.report()  # 7. the plan


def replay(text: str) -> Plan:
    """Plan again from a record written by `Snapshot.to_json(now=...)`."""
    now = json.loads(text)["now"]
    return plan(Snapshot.from_json(text), float(now))


def _by_key(job: Job) -> str:
    return job.key


class _Cycle:
    """The state of one planning cycle; each method is one step of `plan`."""

    def __init__(self, snapshot: Snapshot, now: float) -> None:
        self.now = now
        self.config = snapshot.config
        self.preemption_enabled = snapshot.config.preemption_enabled
        self.nodes = sorted(snapshot.nodes, key=lambda node: node.name)
        self.node_index = {node.name: i for i, node in enumerate(self.nodes)}
        self.teams: dict[str, Team] = {
            team.name: team for team in sorted(snapshot.teams, key=lambda team: team.name)
        }
        self.ledgers = {name: TeamLedger(team) for name, team in self.teams.items()}
        # Per team: jobs left waiting and the GPUs they need (TeamQuota status).
        self.pending_jobs: dict[str, int] = dict.fromkeys(self.teams, 0)
        self.pending_gpus: dict[str, int] = dict.fromkeys(self.teams, 0)
        self.pending: list[Job] = []
        running: list[Job] = []
        self.preempting: list[Job] = []
        for job in snapshot.jobs:
            if job.state is JobState.PENDING:
                self.pending.append(job)
            elif job.state is JobState.RUNNING:
                running.append(job)
            else:
                self.preempting.append(job)
        # Pending jobs get their full order per team in step 5; sorting the rest by key
        # is what makes the plan independent of the snapshot's list order.
        running.sort(key=_by_key)
        self.preempting.sort(key=_by_key)
        self.holdings = [Holding.of(job, self.node_index) for job in running]
        self.lowest_priority: dict[str, int] = {}
        for holding in self.holdings:
            lowest = self.lowest_priority.get(holding.team, holding.job.priority)
            self.lowest_priority[holding.team] = min(lowest, holding.job.priority)
        self.nominated: dict[str, Outcome | None] = {}
        self.static = StaticCapacity.of(self.nodes)
        self.capacity: Capacity
        self.shape_of: dict[str, Shape] = {}
        self.preemptions: list[Preemption] = []
        self.shrinks: list[Resize] = []
        self.admitted: list[Holding] = []
        self.waiting: list[PendingJob] = []
        self.team_waiting: dict[str, list[str]] = {}
        self.blocked: set[str] = set()
        self.preemptors = 0
        self.no_fit: set[tuple[object, ...]] = set()
        self.no_victims: set[tuple[object, ...]] = set()
        self.never: dict[Shape, str | None] = {}
        self.shapes: dict[tuple[int, int, TopologyLevel, bool], Shape] = {}
        self.described: dict[Shape, str] = {}
        self.fit_keys: dict[Shape, tuple[object, ...]] = {}
        self.messages: dict[tuple[object, ...], Outcome] = {}
        self.inflight: dict[str, dict[int, int]] = {}
        self.inflight_jobs: dict[str, set[str]] = {}
        self.inflight_teams: dict[str, set[str]] = {}
        self._pool: VictimPool | None = None

    # -- 2. failures -----------------------------------------------------------

    def requeue_failed(self) -> None:
        """A worker on a NotReady (or vanished) node or an unhealthy GPU loses the job.

        Without GPU attribution, a node holding more GPUs than it has healthy ones
        sheds its cheapest jobs until the rest fits. This is not a policy choice, so
        it applies to non-preemptible and young jobs too.
        """
        for holding in self.holdings:
            why = self._failure(holding)
            if why is not None:
                self._fail(holding, *why)
        on_node: dict[int, list[Holding]] = {}
        # Pods outside gpupool cannot be shed: gpupool's workers give way to them.
        held = [node.unmanaged_gpus for node in self.nodes]
        for holding in self.holdings:
            if holding.failed:
                continue
            for i, worker in enumerate(holding.job.workers):
                node = holding.nodes[i]
                if holding.active[i]:
                    held[node] += worker.gpus
                    on_node.setdefault(node, []).append(holding)
        for node, count in enumerate(held):
            healthy = self.nodes[node].healthy_gpus
            if count <= healthy:
                continue
            victims = sorted(
                dict.fromkeys(on_node.get(node, ())),
                key=lambda h: (
                    not h.job.preemptible,
                    h.active_gpus * lost_seconds(h.job, self.now),
                    h.job.priority,
                    h.job.key,
                ),
            )
            for holding in victims:
                if count <= healthy:
                    break
                if holding.failed:
                    continue
                count -= sum(
                    w.gpus
                    for i, w in enumerate(holding.job.workers)
                    if holding.active[i] and holding.nodes[i] == node
                )
                name = self.nodes[node].name
                self._fail(
                    holding,
                    name,
                    f"node has {healthy} healthy GPUs but its workers hold {held[node]}",
                )

    def _failure(self, holding: Holding) -> tuple[str, str] | None:
        for i, worker in enumerate(holding.job.workers):
            node = holding.nodes[i]
            if node < 0:
                return worker.node, "the node is gone"
            if not self.nodes[node].ready:
                return worker.node, "the node is NotReady"
            if worker.on_unhealthy_gpu:
                return worker.node, "it uses a GPU the agent reports unhealthy"
        return None

    def _fail(self, holding: Holding, node: str, why: str) -> None:
        holding.failed = True
        self.preemptions.append(
            Preemption(
                job=holding.job.key,
                team=holding.team,
                reason=PreemptionReason.NODE_FAILURE,
                gpus=holding.job.held_gpus,
                message=reasons.node_failure(node, why),
            )
        )

    # -- 3. entitlements -------------------------------------------------------

    def compute_entitlements(self) -> None:
        for holding in self.holdings:
            ledger = self.ledgers.get(holding.team)
            if ledger is None:
                continue
            if holding.failed:
                ledger.releasing += holding.job.held_gpus
                continue
            active = holding.active_gpus
            ledger.allocated += active
            ledger.releasing += holding.job.held_gpus - active
            ledger.checkpointing += holding.job.held_gpus - active
            if holding.job.elastic and not holding.releasing_in_flight:
                spare = holding.job.max_workers - holding.active_workers
                ledger.demand += max(0, spare) * holding.job.gpus_per_worker
        for job in self.preempting:
            ledger = self.ledgers.get(job.team)
            if ledger is not None:
                ledger.releasing += job.held_gpus
                ledger.checkpointing += job.held_gpus
        shape_of, ledgers, never = self.shape_of, self.ledgers, self.never
        for job in self.pending:
            shape = shape_of[job.key] = self._shape(job)
            ledger = ledgers.get(job.team)
            if ledger is not None:
                why = never[shape] if shape in never else self._never_fits(shape)
                if why is None:
                    ledger.demand += job.max_workers * job.gpus_per_worker
        for ledger in self.ledgers.values():
            # A team's unmanaged pods are its allocation (and so its demand) too.
            ledger.allocated += ledger.team.unmanaged_gpus
            ledger.demand += ledger.allocated
        shares = entitlements(
            self._shared_capacity(),
            list(self.teams.values()),
            {name: ledger.demand for name, ledger in self.ledgers.items()},
        )
        for name, ledger in self.ledgers.items():
            ledger.entitlement = shares[name]

    def _shared_capacity(self) -> int:
        """The GPUs the teams share: all healthy ones, less those unmanaged pods outside
        every team hold (a team's own unmanaged pods are part of its share)."""
        unmanaged = sum(node.unmanaged_gpus for node in self.nodes if node.usable)
        charged = sum(team.unmanaged_gpus for team in self.teams.values())
        return max(0, self.static.total - max(0, unmanaged - charged))

    # -- 4. capacity -----------------------------------------------------------

    def index_capacity(self) -> None:
        held = [node.unmanaged_gpus for node in self.nodes]
        for job in [holding.job for holding in self.holdings] + self.preempting:
            for worker in job.workers:
                node = self.node_index.get(worker.node)
                if node is not None:
                    held[node] += worker.gpus
        self.capacity = Capacity(self.nodes, held)
        for job in self.preempting:
            self._note_inflight(job, job.workers)
        for holding in self.holdings:
            if holding.job.releasing:
                self._note_inflight(holding.job, holding.job.releasing)

    def _note_inflight(self, job: Job, workers: tuple[WorkerPlacement, ...]) -> None:
        """GPUs a checkpointing victim will free for the job it was preempted for."""
        if job.preempted_for is None:
            return
        freed = self.inflight.setdefault(job.preempted_for, {})
        for worker in workers:
            node = self.node_index.get(worker.node)
            if node is not None and self.capacity.usable[node]:
                freed[node] = freed.get(node, 0) + worker.gpus
        self.inflight_jobs.setdefault(job.preempted_for, set()).add(job.key)
        self.inflight_teams.setdefault(job.preempted_for, set()).add(job.team)

    # -- 5. pending jobs -------------------------------------------------------

    def serve_pending(self) -> None:
        queues: dict[str, list[Job]] = {name: [] for name in self.teams}
        orphans = []
        for job in self.pending:
            if job.team in queues:
                queues[job.team].append(job)
            else:
                orphans.append(job)
        for name, queue in queues.items():
            queues[name] = sort_queue(queue, self.now, self.config)
        self._serve_nominated(queues)
        nominated, serve, wait = self.nominated, self._serve, self._wait
        for job in serve_in_order(queues, self.ledgers):
            outcome = nominated.pop(job.key) if nominated and job.key in nominated else serve(job)
            if outcome is not None:
                wait(job, *outcome)
        for job in sort_queue(orphans, self.now, self.config):
            self._wait(
                job,
                PendingReason.NO_TEAM,
                f"no TeamQuota named {job.team!r}: ask an admin to create one",
            )

    def _serve_nominated(self, queues: dict[str, list[Job]]) -> None:
        """Jobs that victims are already checkpointing for go first: they start if
        they fit, else the free part of their place is held for them, so a job
        served earlier in this cycle cannot take it and waste the preemption."""
        awaited = {job.team for job in self.pending if job.key in self.inflight}
        for team, queue in queues.items():
            if team not in awaited:
                continue
            for job in queue:
                inflight = self.inflight.get(job.key)
                if not inflight:
                    continue
                shape = self.shape_of[job.key]
                fits_limit = self.ledgers[team].fits_limit(shape.total)
                # Room its own team's victims are making is already within the limit.
                own_room = self.inflight_teams[job.key] <= {team}
                if self.never[shape] is not None or not (fits_limit or own_room):
                    continue
                preferred = self._preferred(job)
                layout = self.capacity.place(shape, preferred) if fits_limit else None
                if layout is not None:
                    self._admit(job, layout)
                    self.nominated[job.key] = None
                    continue
                layout = self._place_with(inflight, shape, preferred)
                if layout is not None:
                    self._reserve(job, layout, inflight)
                    self.nominated[job.key] = (
                        PendingReason.WAITING_FOR_PREEMPTION,
                        reasons.waiting_for_victims(
                            shape.describe(),
                            len(self.inflight_jobs[job.key]),
                            sum(inflight.values()),
                        ),
                    )

    def _serve(self, job: Job) -> Outcome | None:
        """Admit the job (None) or say why it waits."""
        ledger = self.ledgers[job.team]
        shape = self.shape_of[job.key]
        never = self.never[shape]
        if never is not None:
            return PendingReason.UNSCHEDULABLE, reasons.unschedulable(self.described[shape], never)
        need = shape.total
        at_limit: Outcome | None = None
        limit = ledger.team.max_gpus
        # `not ledger.fits_limit(need)`, inlined: every pending job asks.
        if limit is not None and ledger.allocated + ledger.checkpointing + need > limit:
            at_limit = (
                PendingReason.TEAM_AT_LIMIT,
                reasons.team_at_limit(
                    job.team,
                    limit,
                    ledger.allocated + ledger.checkpointing,
                    need,
                    ledger.checkpointing,
                ),
            )
            # GPUs its jobs are already checkpointing away will make room by themselves.
            release = ledger.allocated + need - limit
            if release <= 0 or not self.preemption_enabled or not self._outranks_own(job):
                return at_limit
        else:
            release = 0
        fit_key = self.fit_keys[shape]
        preferred: tuple[int, ...] = ()
        if at_limit is None and fit_key not in self.no_fit:
            preferred = self._preferred(job)
            layout = self.capacity.place(shape, preferred)
            if layout is not None:
                self._admit(job, layout)
                return None
            self.no_fit.add(fit_key)
        inflight = self.inflight.get(job.key, NO_INFLIGHT)
        if job.placement.preferred_nodes:
            preferred = self._preferred(job)
        if inflight and at_limit is None:
            layout = self._place_with(inflight, shape, preferred)
            if layout is not None:
                self._reserve(job, layout, inflight)
                return PendingReason.WAITING_FOR_PREEMPTION, reasons.waiting_for_victims(
                    shape.describe(),
                    len(self.inflight_jobs[job.key]),
                    sum(inflight.values()),
                )
        if not self.preemption_enabled:
            return self._no_room(job, shape)
        if job.team in self.blocked:
            first = self.team_waiting[job.team]
            return PendingReason.QUEUED_BEHIND, reasons.queued_behind(
                job.team, len(first), first[0], self.described[shape], self.capacity.total_free
            )
        memo = (job.team, job.priority, fit_key, release)
        if memo in self.no_victims:
            return at_limit or self._blocked(job, shape)
        if self.preemptors >= self.config.max_preemptors_per_cycle:
            self.blocked.add(job.team)
            return PendingReason.PREEMPTION_DEFERRED, reasons.preemption_deferred(
                self.preemptors, self.described[shape], self.capacity.total_free
            )
        request = Request(job, shape, preferred, inflight, release)
        selection = self._victims().select(request)
        if selection is None:
            self.no_victims.add(memo)
            return at_limit or self._blocked(job, shape)
        self.preemptors += 1
        self._take_victims(job, selection)
        self._reserve(job, selection.layout, selection.freed)
        victims = len(selection.victims) + len(self.inflight_jobs.get(job.key, ()))
        return PendingReason.WAITING_FOR_PREEMPTION, reasons.waiting_for_victims(
            self.described[shape], victims, sum(selection.freed.values())
        )

    def _outranks_own(self, job: Job) -> bool:
        """Whether the team runs a job of lower priority this one could replace
        (a cheap pre-check; the victim search has the last word)."""
        lowest = self.lowest_priority.get(job.team)
        return lowest is not None and lowest < job.priority

    def _blocked(self, job: Job, shape: Shape) -> Outcome:
        """Nothing may be taken back for this job: it waits, and its team's later
        jobs may not preempt past it this cycle (they may still use free GPUs)."""
        self.blocked.add(job.team)
        return self._no_room(job, shape)

    def _shape(self, job: Job) -> Shape:
        policy = job.placement
        key = (job.gpus_per_worker, job.min_workers, policy.topology, policy.required)
        shape = self.shapes.get(key)
        if shape is None:
            shape = self.shapes[key] = Shape.of(*key)
            self.described[shape] = shape.describe()
            # A mere preference never blocks a fit: such shapes fit or fail together.
            self.fit_keys[shape] = shape if shape.required else shape[:2]
        return shape

    def _never_fits(self, shape: Shape) -> str | None:
        try:
            return self.never[shape]
        except KeyError:
            why = self.never[shape] = self.static.why_never(shape)
            return why

    def _preferred(self, job: Job) -> tuple[int, ...]:
        if not job.placement.preferred_nodes:
            return ()
        index = self.node_index
        return tuple(index[name] for name in job.placement.preferred_nodes if name in index)

    def _admit(self, job: Job, layout: Layout) -> None:
        gpus = job.gpus_per_worker
        self.capacity.take_layout(layout, gpus)
        holding = Holding(job, [], [])
        holding.grown = [
            WorkerPlacement(self.nodes[node].name, gpus)
            for node, count in layout
            for _ in range(count)
        ]
        self.admitted.append(holding)
        self.ledgers[job.team].allocated += gpus * len(holding.grown)

    def _place_with(
        self, freed: Mapping[int, int], shape: Shape, preferred: tuple[int, ...]
    ) -> Layout | None:
        capacity = self.capacity
        for node, gpus in freed.items():
            capacity.give(node, gpus)
        try:
            return capacity.place(shape, preferred)
        finally:
            for node, gpus in freed.items():
                capacity.take(node, gpus)

    def _reserve(self, job: Job, layout: Layout, freed: Mapping[int, int]) -> None:
        """Hold the free part of the job's future place, so nobody else takes it
        while its victims checkpoint; the victims' part is not free yet anyway."""
        gpus = job.gpus_per_worker
        for node, workers in layout:
            short = workers * gpus - freed.get(node, 0)
            if short > 0:
                self.capacity.take(node, short)
        ledger = self.ledgers[job.team]
        claim = job.min_gpus
        ledger.allocated += claim
        ledger.claimed += claim

    def _victims(self) -> VictimPool:
        if self._pool is None:
            self._pool = VictimPool(
                self.holdings, self.teams, self.ledgers, self.capacity, self.now, self.config
            )
        return self._pool

    def _take_victims(self, job: Job, selection: Selection) -> None:
        mine = self.ledgers[job.team]
        for taken in selection.victims:
            holding = taken.holding
            victim = holding.job
            ledger = self.ledgers[victim.team]
            gpus = sum(victim.workers[i].gpus for i in taken.workers)
            lost = reasons.loss(
                gpus * lost_seconds(victim, self.now),
                victim.checkpoint_hook,
                victim.checkpoint_timeout_seconds,
            )
            message = self._victim_message(
                taken.stage, job, holding, len(taken.workers), gpus, lost
            )
            for i in taken.workers:
                holding.active[i] = False
            ledger.allocated -= gpus
            ledger.releasing += gpus
            ledger.checkpointing += gpus
            if taken.stage is Stage.ELASTIC_SHRINK:
                holding.shrunk.extend(taken.workers)
                self.shrinks.append(
                    Resize(
                        job=victim.key,
                        team=victim.team,
                        kind=ResizeKind.SHRINK,
                        workers=tuple(victim.workers[i] for i in taken.workers),
                        message=message,
                        reason=PreemptionReason.ELASTIC_SHRINK,
                        for_job=job.key,
                        for_team=mine.name,
                    )
                )
            else:
                holding.preempted = True
                self.preemptions.append(
                    Preemption(
                        job=victim.key,
                        team=victim.team,
                        reason=taken.stage.reason,
                        gpus=gpus,
                        message=message,
                        for_job=job.key,
                        for_team=mine.name,
                    )
                )

    def _victim_message(
        self, stage: Stage, job: Job, holding: Holding, workers: int, gpus: int, lost: str
    ) -> str:
        victim = holding.job
        if stage is Stage.ELASTIC_SHRINK:
            return reasons.shrink(workers, gpus, job.key, job.team, lost)
        if stage is Stage.IDLE_RECLAIM:
            team = self.teams[victim.team]
            policy = team.idle_reclaim
            assert policy is not None
            idle = idle_for(victim, team, self.now) or 0.0
            return reasons.idle_reclaim(
                idle, policy.utilization_below, gpus, job.key, job.team, lost
            )
        if stage is Stage.RECLAIM_BORROWED:
            theirs = self.ledgers[victim.team]
            mine = self.ledgers[job.team]
            return reasons.reclaim_borrowed(
                victim.team,
                theirs.allocated,
                theirs.entitlement,
                gpus,
                job.key,
                job.team,
                mine.allocated,
                mine.entitlement,
                lost,
            )
        return reasons.outranked(job.key, job.priority, victim.priority, job.team, lost)

    def _no_room(self, job: Job, shape: Shape) -> Outcome:
        """Why a job that neither fits nor may preempt waits (memoized per state)."""
        ledger = self.ledgers[job.team]
        key = (self.capacity.version, shape, job.team, job.priority, ledger.allocated)
        cached = self.messages.get(key)
        if cached is not None:
            return cached
        capacity = self.capacity
        domain = shape.required and shape.level not in (TopologyLevel.NONE, TopologyLevel.NODE)
        text = reasons.no_room(
            shape.describe(),
            capacity.total_free,
            capacity.largest_free(),
            level_name(shape.level) if domain else None,
            capacity.most_free_domain(shape.level) if domain else 0,
        )
        young = self._victims().young_blockers(job) if self.config.preemption_enabled else None
        if young is not None:
            count, held, soonest = young
            outcome = (
                PendingReason.WAITING_FOR_MIN_RUNTIME,
                f"{text}; "
                + reasons.young_blockers(count, held, self.config.min_runtime_seconds, soonest),
            )
        else:
            code = (
                PendingReason.TOPOLOGY_UNAVAILABLE
                if shape.required
                and shape.level is not TopologyLevel.NONE
                and capacity.total_free >= shape.total
                else PendingReason.INSUFFICIENT_GPUS
            )
            why = reasons.not_reclaimable(job.team, ledger.allocated, ledger.entitlement)
            outcome = (code, f"{text}; {why}")
        self.messages[key] = outcome
        return outcome

    def _wait(self, job: Job, reason: PendingReason, message: str) -> None:
        team = job.team
        ahead = self.team_waiting.get(team)
        if ahead is None:
            ahead = self.team_waiting[team] = []
        ahead.append(job.key)
        if team in self.pending_jobs:
            self.pending_jobs[team] += 1
            self.pending_gpus[team] += job.min_workers * job.gpus_per_worker
        waiting = self.waiting
        waiting.append(PendingJob(job.key, team, reason, message, len(waiting) + 1, len(ahead)))

    # -- 6. elastic growth -----------------------------------------------------

    def grow_elastic(self) -> None:
        """After every pending job had its chance, elastic jobs grow one worker at a
        time, team furthest below entitlement first, up to maxWorkers and maxGPUs.

        A running job grows by starting again at its new size (every worker is
        checkpointed), so like a preemption it waits for the minimum runtime since it
        started: GPUs freed one at a time do not restart it once per GPU."""
        if not self.config.elastic_grow_enabled or self.capacity.total_free == 0:
            return
        settled = self.now - self.config.min_runtime_seconds
        running = [
            holding
            for holding in self.holdings
            if (
                holding.job.started_at
                if holding.job.started_at is not None
                else holding.job.submitted_at
            )
            <= settled
        ]
        candidates: dict[str, list[Holding]] = {}
        for holding in [*running, *self.admitted]:
            job = holding.job
            if (
                job.elastic
                and job.team in self.ledgers
                and not holding.failed
                and not holding.preempted
                and not holding.shrunk
                and not holding.releasing_in_flight
                and holding.active_workers < job.max_workers
            ):
                candidates.setdefault(job.team, []).append(holding)
        queues = {
            team: [
                by_job[job.key]
                for job in sort_queue([h.job for h in holdings], self.now, self.config)
            ]
            for team, holdings in candidates.items()
            for by_job in [{h.job.key: h for h in holdings}]
        }
        while queues:
            team = min(queues, key=lambda name: self.ledgers[name].service_key())
            queue = queues[team]
            holding = queue[0]
            gpus = holding.job.gpus_per_worker
            ledger = self.ledgers[team]
            node = None
            if ledger.fits_limit(gpus) and self.capacity.largest_free() >= gpus:
                node = self._grow_node(holding)
            if node is None:
                queue.pop(0)
            else:
                self.capacity.take(node, gpus)
                holding.grown.append(WorkerPlacement(self.nodes[node].name, gpus))
                ledger.allocated += gpus
                if holding.active_workers >= holding.job.max_workers:
                    queue.pop(0)
            if not queue:
                del queues[team]

    def _grow_node(self, holding: Holding) -> int | None:
        job = holding.job
        shape = Shape(job.gpus_per_worker, 1)
        present = [holding.nodes[i] for i, on in enumerate(holding.active) if on]
        present += [self.node_index[w.node] for w in holding.grown]
        present = [node for node in present if node >= 0]
        preferred = tuple(dict.fromkeys([*present, *self._preferred(job)]))
        level = job.placement.topology
        if level is not TopologyLevel.NONE and present:
            if level is TopologyLevel.NODE:
                node = present[0]
                inside = self.capacity.usable[node] and self.capacity.free[node] >= shape.gpus
                layout = [(node, 1)] if inside else None
            else:
                dom = self.capacity.domain_index(level, present[0])
                layout = (
                    self.capacity.place_in_domain(level, dom, shape, preferred)
                    if dom >= 0
                    else None
                )
            if layout is None and not job.placement.required:
                layout = self.capacity.place(shape, preferred)
        else:
            layout = self.capacity.place(shape, preferred)
        return None if layout is None else layout[0][0]

    # -- 7. report -------------------------------------------------------------

    def report(self) -> Plan:
        admissions = tuple(
            Admission(
                job=holding.job.key,
                team=holding.team,
                workers=tuple(holding.grown),
                message=reasons.admitted(
                    self._shape(holding.job).describe()
                    if len(holding.grown) == holding.job.min_workers
                    else f"{len(holding.grown)} workers × {holding.job.gpus_per_worker} GPUs",
                    list(dict.fromkeys(w.node for w in holding.grown)),
                ),
            )
            for holding in self.admitted
        )
        grows = tuple(
            Resize(
                job=holding.job.key,
                team=holding.team,
                kind=ResizeKind.GROW,
                workers=tuple(holding.grown),
                message=reasons.grown(
                    len(holding.grown), list(dict.fromkeys(w.node for w in holding.grown))
                ),
            )
            for holding in self.holdings
            if holding.grown
        )
        return Plan(
            admissions=admissions,
            preemptions=tuple(self.preemptions),
            resizes=(*self.shrinks, *grows),
            pending=tuple(self.waiting),
            teams=self._team_figures(),
            idle=self._idle_jobs(),
        )

    def _team_figures(self) -> tuple[TeamFigures, ...]:
        running: dict[str, int] = dict.fromkeys(self.teams, 0)
        for holding in [*self.holdings, *self.admitted]:
            if holding.team in running and not (holding.failed or holding.preempted):
                running[holding.team] += 1
        pending_gpus, pending_jobs = self.pending_gpus, self.pending_jobs
        figures = []
        for name, ledger in self.ledgers.items():
            held = ledger.allocated - ledger.claimed
            figures.append(
                TeamFigures(
                    team=name,
                    guaranteed_gpus=ledger.team.guaranteed_gpus,
                    entitlement_gpus=ledger.entitlement,
                    demand_gpus=ledger.demand,
                    allocated_gpus=held + ledger.releasing,
                    borrowed_gpus=max(0, held - ledger.team.guaranteed_gpus),
                    releasing_gpus=ledger.releasing,
                    unmanaged_gpus=ledger.team.unmanaged_gpus,
                    pending_gpus=pending_gpus[name],
                    running_jobs=running[name],
                    pending_jobs=pending_jobs[name],
                )
            )
        return tuple(figures)

    def _idle_jobs(self) -> tuple[IdleJob, ...]:
        idle = []
        for holding in self.holdings:
            team = self.teams.get(holding.team)
            if team is None or holding.failed:
                continue
            seconds = idle_for(holding.job, team, self.now)
            if seconds is not None:
                enforced = idle_enforced(holding.job, team, self.now, self.config)
                idle.append(IdleJob(holding.job.key, holding.team, seconds, enforced))
        return tuple(idle)
