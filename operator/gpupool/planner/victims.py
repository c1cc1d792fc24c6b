"""Reclaim and preemption: which running jobs give GPUs back so a pending job fits.

Stages, cheapest first: shrink elastic jobs (down to minWorkers) → jobs idle per
their team's idleReclaim in enforce mode (another team's only for a job its team is
owed: within its guarantee or its entitlement) → whole jobs of teams above entitlement (only
for a team below its own) → lower-priority jobs of the same team.

Idle GPUs of another team go to a team that is owed them, not to whoever waits: a
job that would take its team beyond its fair share evicted an idle job whose team
then reclaimed back, and the idle job, requeued, was idle again once restarted when
its idleness was its own (a stuck loader, not a user away). On the Philly week of
2017-09-25 at 300 GPUs this cut gpupool's lost GPU-hours 614 -> 345 with idle
stretches owed, 347 -> 256 with them passing.

The guarantee is the promise: a job that keeps its team within its guarantee may
reclaim from any team above its own guarantee, down to that guarantee, not only
down to its fair-share entitlement (a team at or below its guarantee is never
reclaimed from, so the lender cannot reclaim back). Victims are whole jobs: with
the entitlement floor, a lender above its entitlement by less than its smallest
job could not be reclaimed from, and a team within its guarantee waited hours.

The search walks reclaimable units in that order and, within a stage, by victim
cost (GPU-seconds lost since the last checkpoint, then priority), adding each unit's
GPUs to the nodes it frees and stopping as soon as the gang fits: the most expensive
victim it needs is then as cheap as possible. The placement is run on the simulated
capacity, and only the victims on the nodes it chose are kept, cheapest first per
node. Units never include non-preemptible jobs nor jobs younger than the minimum
runtime, and another team is never taken below its guarantee.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from gpupool.planner.holding import Holding, lost_seconds
from gpupool.planner.placement import Capacity, Layout, Shape
from gpupool.planner.plan import PreemptionReason
from gpupool.planner.quota import TeamLedger
from gpupool.planner.snapshot import IdleMode, Job, PlannerConfig, Team, TopologyLevel


class Stage(IntEnum):
    ELASTIC_SHRINK = 0
    IDLE_RECLAIM = 1
    RECLAIM_BORROWED = 2
    PRIORITY = 3

    @property
    def reason(self) -> PreemptionReason:
        return _REASONS[self]


_REASONS = {
    Stage.ELASTIC_SHRINK: PreemptionReason.ELASTIC_SHRINK,
    Stage.IDLE_RECLAIM: PreemptionReason.IDLE_RECLAIM,
    Stage.RECLAIM_BORROWED: PreemptionReason.RECLAIM_BORROWED,
    Stage.PRIORITY: PreemptionReason.PRIORITY,
}


def idle_for(job: Job, team: Team, now: float) -> float | None:
    """Seconds the job has been idle past its team's threshold, or None if not idle."""
    policy = team.idle_reclaim
    if policy is None or job.idle_since is None:
        return None
    idle = now - job.idle_since
    return idle if idle >= policy.for_seconds else None


def idle_enforced(job: Job, team: Team, now: float, config: PlannerConfig) -> bool:
    policy = team.idle_reclaim
    return (
        config.idle_reclaim_enabled
        and policy is not None
        and policy.mode is IdleMode.ENFORCE
        and idle_for(job, team, now) is not None
    )


@dataclass(slots=True, eq=False)
class Unit:
    """Something one decision can take back: one worker of an elastic job (shrink)
    or a whole job. A whole job in the last stage is a reclaim of borrowed GPUs or a
    priority preemption, depending on who asks."""

    holding: Holding
    stage: Stage
    workers: tuple[int, ...]
    gpus: int
    key: tuple[float, int, str, int]
    # (node, GPUs) the unit frees on usable nodes: what placement can use.
    spots: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Request:
    """A pending job asking for room, with what its in-flight victims already free."""

    job: Job
    shape: Shape
    preferred: tuple[int, ...]
    inflight: Mapping[int, int]
    # GPUs of its own team it must release first (it is at its borrowing limit).
    release: int = 0


@dataclass(slots=True)
class Taken:
    """What the selection takes from one job: whole (any stage but shrink) or workers."""

    holding: Holding
    stage: Stage
    workers: list[int]


@dataclass(slots=True)
class Selection:
    layout: Layout
    victims: list[Taken]
    # GPUs per node the victims free, including those already in flight.
    freed: dict[int, int] = field(default_factory=dict)


def _unit_key(unit: Unit) -> tuple[float, int, str, int]:
    return unit.key


def _all_active(active: list[bool], workers: tuple[int, ...]) -> bool:
    return all(map(active.__getitem__, workers))


def _short_on_any(need: dict[int, int], nodes: list[int], workers: Iterable[int]) -> bool:
    """Whether any of these workers sits on a node the placement still lacks GPUs on
    (`need` holds only nodes still short)."""
    return not need.keys().isdisjoint(map(nodes.__getitem__, workers))


class _Fit:
    """Incremental "does the gang fit yet" as GPUs are freed node by node."""

    __slots__ = ("capacity", "domain_hostable", "hostable", "level", "mode", "shape")

    def __init__(self, capacity: Capacity, shape: Shape) -> None:
        self.capacity = capacity
        self.shape = shape
        if shape.workers == 1 or (shape.level is TopologyLevel.NODE and shape.required):
            self.mode = "node"
        elif shape.required and shape.level is not TopologyLevel.NONE:
            self.mode = "domain"
        else:
            self.mode = "any"
        self.hostable = capacity.hostable(shape.gpus, 1 << 30) if self.mode == "any" else 0
        self.level = shape.level
        self.domain_hostable: dict[int, int] = {}

    def add(self, node: int, before: int, after: int) -> bool:
        """Node `node` had `before` free GPUs in the simulation and now has `after`."""
        gpus = self.shape.gpus
        if self.mode == "node":
            return after >= self.shape.total
        delta = max(after, 0) // gpus - max(before, 0) // gpus
        if self.mode == "any":
            self.hostable += delta
            return self.hostable >= self.shape.workers
        dom = self.capacity.domain_index(self.level, node)
        if dom < 0:
            return False
        count = self.domain_hostable.get(dom)
        if count is None:
            count = self.capacity.domain_hostable(self.level, dom, gpus, 1 << 30)
        count += delta
        self.domain_hostable[dom] = count
        return count >= self.shape.workers


class VictimPool:
    """Every unit that may be taken back this cycle, sorted once, walked per request."""

    def __init__(
        self,
        holdings: Sequence[Holding],
        teams: Mapping[str, Team],
        ledgers: Mapping[str, TeamLedger],
        capacity: Capacity,
        now: float,
        config: PlannerConfig,
    ) -> None:
        self.ledgers = ledgers
        self.capacity = capacity
        self.config = config
        self.now = now
        self.shrink: list[Unit] = []
        self.idle: list[Unit] = []
        self.regular: dict[str, list[Unit]] = {}
        # Jobs that would be candidates but are younger than the minimum runtime:
        # (team, priority, gpus, seconds until they may be preempted).
        self.young: list[tuple[str, int, int, float]] = []
        old_enough = now - config.min_runtime_seconds
        for holding in holdings:
            job = holding.job
            team = teams.get(job.team)
            if team is None or holding.failed or not job.preemptible:
                continue
            started = job.started_at if job.started_at is not None else job.submitted_at
            if started > old_enough:
                gpus = holding.active_gpus
                if gpus:
                    self.young.append((job.team, job.priority, gpus, started - old_enough))
                continue
            lost = lost_seconds(job, now)
            if job.elastic and not holding.releasing_in_flight:
                for i in reversed(range(len(job.workers))):
                    if holding.active[i]:
                        gpus = job.workers[i].gpus
                        self.shrink.append(
                            Unit(
                                holding,
                                Stage.ELASTIC_SHRINK,
                                (i,),
                                gpus,
                                (gpus * lost, job.priority, job.key, -i),
                                self._spots(holding, (i,)),
                            )
                        )
            workers = tuple(i for i, on in enumerate(holding.active) if on)
            if not workers:
                continue
            gpus = sum(job.workers[i].gpus for i in workers)
            unit = Unit(
                holding,
                Stage.RECLAIM_BORROWED,
                workers,
                gpus,
                (gpus * lost, job.priority, job.key, 0),
                self._spots(holding, workers),
            )
            if idle_enforced(job, team, now, config):
                unit.stage = Stage.IDLE_RECLAIM
                self.idle.append(unit)
            else:
                self.regular.setdefault(job.team, []).append(unit)
        self.shrink.sort(key=_unit_key)
        self.idle.sort(key=_unit_key)
        for units in self.regular.values():
            units.sort(key=_unit_key)

    def _within_entitlement(self, request: Request) -> bool:
        mine = self.ledgers[request.job.team]
        return mine.allocated + request.shape.total <= mine.entitlement

    def within_guarantee(self, request: Request) -> bool:
        """Whether the request keeps its team within its guarantee (see the module doc)."""
        mine = self.ledgers[request.job.team]
        return mine.allocated + request.shape.total <= mine.team.guaranteed_gpus

    def _spots(self, holding: Holding, workers: Iterable[int]) -> tuple[tuple[int, int], ...]:
        usable = self.capacity.usable
        return tuple(
            (holding.nodes[i], holding.job.workers[i].gpus)
            for i in workers
            if holding.nodes[i] >= 0 and usable[holding.nodes[i]]
        )

    # -- the walk --------------------------------------------------------------

    def _stages(self, request: Request) -> Iterator[tuple[Stage, Iterable[Unit]]]:
        """The units a request may take, stage by stage, each stage cheapest first."""
        team = request.job.team
        yield Stage.ELASTIC_SHRINK, self.shrink
        mine = self.ledgers[team]
        if self.within_guarantee(request) or self._within_entitlement(request):
            yield Stage.IDLE_RECLAIM, self.idle
        else:
            # Beyond its share a team may still put its own idle GPUs to use.
            yield Stage.IDLE_RECLAIM, [unit for unit in self.idle if unit.holding.job.team == team]
        if self.within_guarantee(request):
            lenders = [
                units
                for name, units in self.regular.items()
                if name != team
                and self.ledgers[name].allocated > self.ledgers[name].team.guaranteed_gpus
            ]
            yield Stage.RECLAIM_BORROWED, heapq.merge(*lenders, key=_unit_key)
        elif mine.allocated < mine.entitlement:
            lenders = [
                units
                for name, units in self.regular.items()
                if name != team
                and self.ledgers[name].over_entitlement > 0
                and self.ledgers[name].allocated
                > self.ledgers[name].cross_team_floor(fair_share=True)
            ]
            yield Stage.RECLAIM_BORROWED, heapq.merge(*lenders, key=_unit_key)
        priority = request.job.priority
        own = self.regular.get(team, ())
        yield Stage.PRIORITY, [unit for unit in own if unit.holding.job.priority < priority]

    def select(self, request: Request) -> Selection | None:
        """The cheapest victims that make the gang fit, and where it will go; None
        when even every eligible victim would not make it fit.

        The walk checks each victim against its team's floor on its own, so that a
        cheap victim it later drops does not block a better one; if the kept set
        then takes a team below its floor, the walk is redone counting every
        victim against the floor as it goes.
        """
        selection = self._select(request, cumulative_floors=False)
        if selection is None or self._within_floors(request, selection):
            return selection
        return self._select(request, cumulative_floors=True)

    def _fair_share_floor(self, request: Request, stage: Stage) -> bool:
        """Whether a victim of this stage is also protected down to its entitlement."""
        return stage is Stage.RECLAIM_BORROWED and not self.within_guarantee(request)

    def _within_floors(self, request: Request, selection: Selection) -> bool:
        taken: dict[str, int] = {}
        fair_share: set[str] = set()
        for victim in selection.victims:
            team = victim.holding.job.team
            if team == request.job.team:
                continue
            workers = victim.holding.job.workers
            taken[team] = taken.get(team, 0) + sum(workers[i].gpus for i in victim.workers)
            if self._fair_share_floor(request, victim.stage):
                fair_share.add(team)
        return all(
            self.ledgers[team].allocated - gpus
            >= self.ledgers[team].cross_team_floor(fair_share=team in fair_share)
            for team, gpus in taken.items()
        )

    def _select(self, request: Request, *, cumulative_floors: bool) -> Selection | None:
        capacity = self.capacity
        free = capacity.free
        usable = capacity.usable
        shape = request.shape
        fit = _Fit(capacity, shape)
        freed: dict[int, int] = {}
        hit = -1
        for node, gpus in request.inflight.items():
            had = freed.get(node, 0)
            freed[node] = had + gpus
            if fit.add(node, free[node] + had, free[node] + had + gpus):
                hit = node
        requester = request.job.team
        # At its borrowing limit a team may only make room among its own jobs, and
        # must release at least this much of its own allocation.
        release = request.release
        own_freed = 0
        node_mode = fit.mode == "node"
        need = shape.total
        taken_by_team: dict[str, int] = {}
        # Workers already taken per elastic job (shrink units, then maybe the whole job).
        taken_workers: dict[int, set[int]] = {}
        walked: list[tuple[Unit, Stage, tuple[int, ...]]] = []
        # Nothing the walk looks at changes while it runs: shrinkable workers and
        # team floors are computed once per job and team.
        shrinkable: dict[int, int] = {}
        floors: dict[str, int] = {}
        satisfied = hit >= 0 and release <= 0
        for stage, units in self._stages(request):
            if satisfied:
                break
            fair_share = self._fair_share_floor(request, stage)
            shrinking = stage is Stage.ELASTIC_SHRINK
            floors.clear()
            for unit in units:
                holding = unit.holding
                # A job shrunk earlier this cycle keeps its remaining workers: the
                # plan never both shrinks and preempts one job.
                if holding.preempted or (holding.shrunk and not shrinking):
                    continue
                job = holding.job
                owner = job.team
                if release and owner != requester:
                    continue
                spots = unit.spots
                workers = unit.workers
                gpus = unit.gpus
                if job.elastic:
                    ident = id(holding)
                    done = taken_workers.get(ident)
                    if done is None:
                        done = taken_workers[ident] = set()
                    if shrinking:
                        spare = shrinkable.get(ident)
                        if spare is None:
                            spare = shrinkable[ident] = holding.shrinkable_workers
                        if spare <= len(done):
                            continue
                    if done or not _all_active(holding.active, workers):
                        workers = tuple(i for i in workers if holding.active[i] and i not in done)
                        if not workers:
                            continue
                        spots = self._spots(holding, workers)
                        gpus = sum(job.workers[i].gpus for i in workers)
                if owner != requester:
                    ledger = self.ledgers[owner]
                    floor = floors.get(owner)
                    if floor is None:
                        floor = floors[owner] = ledger.cross_team_floor(fair_share=fair_share)
                    taken = taken_by_team.get(owner, 0) if cumulative_floors else 0
                    if ledger.allocated - taken - gpus < floor:
                        continue
                    taken_by_team[owner] = taken + gpus
                else:
                    own_freed += gpus
                if job.elastic:
                    taken_workers[id(holding)].update(workers)
                walked.append((unit, stage, workers))
                for node, gained in spots:
                    had = freed.get(node, 0)
                    freed[node] = had + gained
                    before = free[node] + had
                    if node_mode:
                        if before + gained >= need:
                            hit = node
                    elif fit.add(node, before, before + gained):
                        hit = node
                if hit >= 0 and own_freed >= release:
                    satisfied = True
                    break
        if not satisfied:
            return None
        if node_mode:
            layout: Layout | None = [(hit, shape.workers)]
        else:
            # Only nodes that can now host a worker matter to the placement.
            useful = {node: got for node, got in freed.items() if free[node] + got >= shape.gpus}
            layout = self._place_with(useful, request)
        if layout is None:
            return None
        kept = self._keep_for(layout, request, walked)
        if not node_mode:
            kept_freed = dict(request.inflight)
            for unit, _, workers in kept:
                for i in workers:
                    node = unit.holding.nodes[i]
                    if node >= 0 and usable[node]:
                        gained = unit.holding.job.workers[i].gpus
                        kept_freed[node] = kept_freed.get(node, 0) + gained
            layout = self._place_with(kept_freed, request)
            if layout is None:
                return None
        return self._selection(layout, request, kept)

    def _selection(
        self,
        layout: Layout,
        request: Request,
        kept: list[tuple[Unit, Stage, tuple[int, ...]]],
    ) -> Selection:
        """Group the kept units by job: shrunk workers, or whole jobs."""
        usable = self.capacity.usable
        on_layout = {node for node, _ in layout}
        victims: dict[int, Taken] = {}
        for unit, stage, workers in kept:
            holding = unit.holding
            needed_for_limit = request.release > 0 and holding.job.team == request.job.team
            if not needed_for_limit and not any(holding.nodes[i] in on_layout for i in workers):
                continue
            taken = victims.get(id(holding))
            if taken is None:
                victims[id(holding)] = Taken(holding, stage, list(workers))
            else:
                # Shrunk workers and then the whole job: it is one preemption.
                taken.workers.extend(workers)
                if stage is not Stage.ELASTIC_SHRINK:
                    taken.stage = stage
        freed = dict(request.inflight)
        for taken in victims.values():
            holding = taken.holding
            if taken.stage is not Stage.ELASTIC_SHRINK:
                taken.workers = [i for i, on in enumerate(holding.active) if on]
            for i in taken.workers:
                node = holding.nodes[i]
                if node >= 0 and usable[node]:
                    freed[node] = freed.get(node, 0) + holding.job.workers[i].gpus
        return Selection(layout, list(victims.values()), freed)

    def _place_with(self, freed: Mapping[int, int], request: Request) -> Layout | None:
        """Run the placement as if `freed` were already free, leaving the index as it was."""
        capacity = self.capacity
        for node, gpus in freed.items():
            capacity.give(node, gpus)
        try:
            return capacity.place(request.shape, request.preferred)
        finally:
            for node, gpus in freed.items():
                capacity.take(node, gpus)

    def _keep_for(
        self,
        layout: Layout,
        request: Request,
        walked: list[tuple[Unit, Stage, tuple[int, ...]]],
    ) -> list[tuple[Unit, Stage, tuple[int, ...]]]:
        """Of the walked victims, only those needed on the chosen nodes (and, at the
        borrowing limit, to release enough of the team's own GPUs), cheapest first."""
        free = self.capacity.free
        gpus = request.shape.gpus
        need = {
            node: workers * gpus - free[node] - request.inflight.get(node, 0)
            for node, workers in layout
        }
        need = {node: short for node, short in need.items() if short > 0}
        release = request.release
        requester = request.job.team
        kept: list[tuple[Unit, Stage, tuple[int, ...]]] = []
        for entry in walked:
            if not need and release <= 0:
                break
            unit, _, workers = entry
            holding = unit.holding
            own = release > 0 and holding.job.team == requester
            if not own and not _short_on_any(need, holding.nodes, workers):
                continue
            kept.append(entry)
            for i in workers:
                node = holding.nodes[i]
                gained = holding.job.workers[i].gpus
                if own:
                    release -= gained
                if node in need:
                    need[node] -= gained
                    if need[node] <= 0:
                        del need[node]
        return kept

    # -- diagnostics -----------------------------------------------------------

    def young_blockers(self, job: Job) -> tuple[int, int, float] | None:
        """Jobs too young to preempt that this job could otherwise reclaim from:
        (count, GPUs, seconds until the first may be preempted), or None."""
        mine = self.ledgers.get(job.team)
        if mine is None:
            return None
        below = mine.allocated < mine.entitlement
        count, gpus, soonest = 0, 0, float("inf")
        for team, priority, held, wait in self.young:
            if team == job.team:
                if priority >= job.priority:
                    continue
            elif not (below and self.ledgers[team].over_entitlement > 0):
                continue
            count += 1
            gpus += held
            soonest = min(soonest, wait)
        return (count, gpus, soonest) if count else None
