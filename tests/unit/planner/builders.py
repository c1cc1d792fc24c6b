"""Fluent builders that make planner tests read like the domain.

    cluster(nodes=3, gpus=8).team("a", guaranteed=8, max=24)
        .running("a/big", gpus=8, workers=2, on=["node-1", "node-2"])
        .pending("b/x", gpus=8)
        .plan()

Times are relative to NOW: `ran=3600` started an hour ago, `waited=60` was submitted
a minute ago. The team of a job is its namespace unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Self

from gpupool.planner import (
    IdleMode,
    IdleReclaimPolicy,
    Job,
    JobState,
    Node,
    PlacementPolicy,
    Plan,
    PlannerConfig,
    Snapshot,
    Team,
    TopologyLevel,
    WorkerPlacement,
    plan,
)

NOW = 1_000_000.0
HOUR = 3600.0


def _nodes_for(on: str | Sequence[str], workers: int) -> list[str]:
    if isinstance(on, str):
        return [on] * workers
    assert len(on) == workers, f"{workers} workers but nodes {on}"
    return list(on)


class ClusterBuilder:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.teams: list[Team] = []
        self.jobs: list[Job] = []
        self.settings = PlannerConfig()

    # -- nodes -----------------------------------------------------------------

    def node(
        self,
        name: str,
        gpus: int = 8,
        *,
        rack: str | None = None,
        zone: str | None = None,
        nvlink: str | None = None,
        unhealthy: int = 0,
        ready: bool = True,
        schedulable: bool = True,
    ) -> Self:
        self.nodes.append(Node(name, gpus, unhealthy, ready, schedulable, rack, zone, nvlink))
        return self

    def _change(self, name: str, **changes: Any) -> Self:
        self.nodes = [replace(n, **changes) if n.name == name else n for n in self.nodes]
        return self

    def unmanaged(self, name: str, gpus: int, *, team: str | None = None) -> Self:
        """Pods gpupool does not govern hold `gpus` on node `name` (charged to `team`)."""
        node = next(n for n in self.nodes if n.name == name)
        self._change(name, unmanaged_gpus=node.unmanaged_gpus + gpus)
        if team is not None:
            self.teams = [
                replace(t, unmanaged_gpus=t.unmanaged_gpus + gpus) if t.name == team else t
                for t in self.teams
            ]
        return self

    def unhealthy(self, name: str, gpus: int = 1) -> Self:
        return self._change(name, unhealthy_gpus=gpus)

    def not_ready(self, name: str) -> Self:
        return self._change(name, ready=False)

    def cordoned(self, name: str) -> Self:
        return self._change(name, schedulable=False)

    # -- teams -----------------------------------------------------------------

    def team(
        self,
        name: str,
        guaranteed: int = 0,
        max: int | None = None,
        *,
        weight: float = 1.0,
        usage: float = 0.0,
        idle: str | None = None,
        idle_after: float = 1800.0,
    ) -> Self:
        policy = None if idle is None else IdleReclaimPolicy(5.0, idle_after, IdleMode(idle))
        self.teams.append(Team(name, guaranteed, max, weight, usage, policy))
        return self

    # -- jobs ------------------------------------------------------------------

    def _job(
        self,
        key: str,
        gpus: int,
        count: int,
        *,
        team: str | None,
        priority: int,
        min_workers: int | None,
        max_workers: int | None,
        preemptible: bool,
        waited: float,
        topology: str | None,
        required: bool,
        prefer: Sequence[str],
        **extra: Any,
    ) -> Job:
        return Job(
            key=key,
            team=team or key.split("/", 1)[0],
            gpus_per_worker=gpus,
            min_workers=min_workers or count,
            max_workers=max_workers or count,
            priority=priority,
            preemptible=preemptible,
            submitted_at=NOW - waited,
            placement=PlacementPolicy(TopologyLevel(topology or "none"), required, tuple(prefer)),
            **extra,
        )

    def pending(
        self,
        key: str,
        gpus: int = 8,
        workers: int = 1,
        *,
        team: str | None = None,
        priority: int = 0,
        min_workers: int | None = None,
        max_workers: int | None = None,
        preemptible: bool = True,
        waited: float = 60.0,
        topology: str | None = None,
        required: bool = False,
        prefer: Sequence[str] = (),
    ) -> Self:
        self.jobs.append(
            self._job(
                key,
                gpus,
                workers,
                team=team,
                priority=priority,
                min_workers=min_workers,
                max_workers=max_workers,
                preemptible=preemptible,
                waited=waited,
                topology=topology,
                required=required,
                prefer=prefer,
            )
        )
        return self

    def running(
        self,
        key: str,
        gpus: int = 8,
        workers: int = 1,
        *,
        on: str | Sequence[str],
        team: str | None = None,
        priority: int = 0,
        min_workers: int | None = None,
        max_workers: int | None = None,
        preemptible: bool = True,
        ran: float = HOUR,
        checkpointed: float | None = None,
        hook: bool = False,
        idle_for: float | None = None,
        topology: str | None = None,
        required: bool = False,
        releasing: Sequence[str] = (),
        preempted_for: str | None = None,
        unhealthy_on: Sequence[str] = (),
        state: JobState = JobState.RUNNING,
    ) -> Self:
        nodes = _nodes_for(on, workers)
        self.jobs.append(
            self._job(
                key,
                gpus,
                workers,
                team=team,
                priority=priority,
                min_workers=min_workers,
                max_workers=max_workers,
                preemptible=preemptible,
                waited=ran + 60.0,
                topology=topology,
                required=required,
                prefer=(),
                state=state,
                workers=tuple(WorkerPlacement(n, gpus, n in unhealthy_on) for n in nodes),
                releasing=tuple(WorkerPlacement(n, gpus) for n in releasing),
                preempted_for=preempted_for,
                started_at=NOW - ran,
                last_checkpoint_at=None if checkpointed is None else NOW - checkpointed,
                checkpoint_hook=hook,
                idle_since=None if idle_for is None else NOW - idle_for,
            )
        )
        return self

    def preempting(
        self, key: str, gpus: int = 8, workers: int = 1, *, on: str | Sequence[str], for_job: str
    ) -> Self:
        return self.running(
            key, gpus, workers, on=on, preempted_for=for_job, state=JobState.PREEMPTING
        )

    def config(self, **settings: Any) -> Self:
        self.settings = replace(self.settings, **settings)
        return self

    # -- results ---------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self.nodes), tuple(self.teams), tuple(self.jobs), self.settings)

    def plan(self, now: float = NOW) -> Plan:
        return plan(self.snapshot(), now)


def cluster(
    nodes: int = 0,
    gpus: int = 8,
    *,
    per_rack: int | None = None,
    per_nvlink: int | None = None,
    per_zone: int | None = None,
) -> ClusterBuilder:
    """`nodes` nodes named node-1..node-N; racks/NVLink domains/zones of consecutive nodes."""
    builder = ClusterBuilder()
    for i in range(nodes):

        def group(prefix: str, size: int | None, i: int = i) -> str | None:
            return None if size is None else f"{prefix}-{i // size + 1}"

        builder.node(
            f"node-{i + 1}",
            gpus,
            rack=group("rack", per_rack),
            nvlink=group("nvl", per_nvlink),
            zone=group("zone", per_zone),
        )
    return builder
