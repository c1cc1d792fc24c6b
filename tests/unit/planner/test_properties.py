"""Property tests: the invariants hold on random clusters, teams and jobs.

Derandomized and without an example database, so CI runs the same examples each time.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    plan,
)

from .builders import NOW
from .invariants import check_deterministic, check_invariants

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TEAMS = ("a", "b", "c")


@st.composite
def nodes(draw: st.DrawFn) -> list[Node]:
    count = draw(st.integers(2, 6))
    result = []
    for i in range(count):
        gpus = draw(st.sampled_from((4, 8, 8, 8)))
        result.append(
            Node(
                name=f"n{i}",
                gpus=gpus,
                unhealthy_gpus=draw(st.sampled_from((0, 0, 0, 0, 1))),
                ready=draw(st.sampled_from((True,) * 7 + (False,))),
                schedulable=draw(st.sampled_from((True,) * 7 + (False,))),
                rack=draw(st.sampled_from(("r1", "r2", None))),
                zone=draw(st.sampled_from(("z1", "z2"))),
                nvlink_domain=draw(st.sampled_from(("v1", "v2", "v3", None))),
                # GPUs of pods gpupool does not govern (kube-scheduler placed them).
                unmanaged_gpus=draw(st.sampled_from((0, 0, 0, 1, 2, gpus))),
            )
        )
    return result


@st.composite
def teams(draw: st.DrawFn) -> list[Team]:
    result = []
    for name in TEAMS[: draw(st.integers(1, len(TEAMS)))]:
        guaranteed = draw(st.integers(0, 16))
        limit = draw(st.one_of(st.none(), st.integers(guaranteed, 32)))
        idle = draw(
            st.one_of(
                st.none(),
                st.builds(
                    IdleReclaimPolicy,
                    st.just(5.0),
                    st.sampled_from((600.0, 1800.0)),
                    st.sampled_from(tuple(IdleMode)),
                ),
            )
        )
        result.append(
            Team(
                name,
                guaranteed,
                limit,
                draw(st.sampled_from((0.5, 1.0, 2.0))),
                draw(st.floats(0, 100)),
                idle,
            )
        )
    return result


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    node_list = draw(nodes())
    team_list = draw(teams())
    # Some of the unmanaged GPUs are in the teams' namespaces: charged to those teams.
    unmanaged = sum(node.unmanaged_gpus for node in node_list)
    charged = []
    for team in team_list:
        share = draw(st.integers(0, unmanaged))
        unmanaged -= share
        charged.append(replace(team, unmanaged_gpus=share))
    team_list = charged
    # Room by total GPUs, so unhealthy or failed nodes may really be over-committed.
    room = {node.name: node.gpus - node.unmanaged_gpus for node in node_list}
    jobs: list[Job] = []
    for i in range(draw(st.integers(0, 20))):
        team = draw(st.sampled_from([t.name for t in team_list] * 5 + ["ghost"]))
        gpus = draw(st.sampled_from((1, 2, 4, 8)))
        low = draw(st.sampled_from((1, 1, 1, 2, 3)))
        high = low + draw(st.sampled_from((0, 0, 1, 2)))
        state = draw(st.sampled_from((JobState.PENDING, JobState.RUNNING, JobState.RUNNING)))
        placement = PlacementPolicy(
            draw(st.sampled_from(tuple(TopologyLevel))),
            draw(st.booleans()),
            tuple(draw(st.lists(st.sampled_from(sorted(room)), max_size=2))),
        )
        job = Job(
            key=f"{team}/j{i}",
            team=team,
            gpus_per_worker=gpus,
            min_workers=low,
            max_workers=high,
            priority=draw(st.sampled_from((0, 0, 5, 10))),
            preemptible=draw(st.sampled_from((True, True, True, False))),
            submitted_at=NOW - draw(st.floats(0, 20_000)),
            checkpoint_hook=draw(st.booleans()),
            placement=placement,
        )
        if state is JobState.RUNNING:
            count = draw(st.integers(low, high))
            workers = []
            for _ in range(count):
                fitting = sorted(name for name, free in room.items() if free >= gpus)
                if not fitting:
                    break
                name = draw(st.sampled_from(fitting))
                room[name] -= gpus
                workers.append(WorkerPlacement(name, gpus))
            if len(workers) == count:
                started = NOW - draw(st.sampled_from((30.0, 3600.0, 7200.0, 20_000.0)))
                job = replace(
                    job,
                    state=draw(st.sampled_from((JobState.RUNNING,) * 6 + (JobState.PREEMPTING,))),
                    workers=tuple(workers),
                    started_at=started,
                    last_checkpoint_at=draw(st.one_of(st.none(), st.just(started + 10))),
                    idle_since=draw(st.one_of(st.none(), st.just(NOW - 2000.0))),
                    preempted_for=draw(st.one_of(st.none(), st.just(f"{team}/j0"))),
                )
            else:
                for worker in workers:
                    room[worker.node] += worker.gpus
        jobs.append(job)
    config = PlannerConfig(max_preemptors_per_cycle=draw(st.sampled_from((1, 32))))
    return Snapshot(tuple(node_list), tuple(team_list), tuple(jobs), config)


@SETTINGS
@given(snapshots())
def test_invariants_hold_on_random_clusters(snapshot: Snapshot) -> None:
    check_invariants(snapshot, plan(snapshot, NOW), NOW)


@settings(SETTINGS, max_examples=60)
@given(snapshots())
def test_plans_are_deterministic(snapshot: Snapshot) -> None:
    check_deterministic(snapshot, plan(snapshot, NOW), NOW)


@settings(SETTINGS, max_examples=60)
@given(snapshots())
def test_json_round_trip_replays_the_same_plan(snapshot: Snapshot) -> None:
    again = Snapshot.from_json(snapshot.to_json(now=NOW))
    assert again == snapshot
    assert plan(again, NOW) == plan(snapshot, NOW)


@settings(SETTINGS, max_examples=80)
@given(snapshots())
def test_applying_the_plan_converges(snapshot: Snapshot) -> None:
    """Re-planning with the admissions applied places nothing on top of them."""
    first = plan(snapshot, NOW)
    admitted = {a.job: a.workers for a in first.admissions}
    applied = tuple(
        replace(job, state=JobState.RUNNING, workers=admitted[job.key], started_at=NOW)
        if job.key in admitted
        else job
        for job in snapshot.jobs
    )
    after = replace(snapshot, jobs=applied)
    check_invariants(after, plan(after, NOW + 1), NOW + 1)
