"""The planner's invariants, checked on every scenario and on random clusters."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import replace

from gpupool.planner import (
    JobState,
    Plan,
    PreemptionReason,
    ResizeKind,
    Snapshot,
    TopologyLevel,
    plan,
)


def check_invariants(snapshot: Snapshot, result: Plan, now: float) -> None:
    nodes = {node.name: node for node in snapshot.nodes}
    jobs = {job.key: job for job in snapshot.jobs}
    teams = {team.name: team for team in snapshot.teams}
    config = snapshot.config
    grows = [r for r in result.resizes if r.kind is ResizeKind.GROW]
    shrinks = [r for r in result.resizes if r.kind is ResizeKind.SHRINK]
    failed = {p.job for p in result.preemptions if p.reason is PreemptionReason.NODE_FAILURE}

    # No node over-committed (pods outside gpupool included), no GPU on unhealthy
    # capacity or unusable nodes.
    held: Counter[str] = Counter({node.name: node.unmanaged_gpus for node in snapshot.nodes})
    for job in snapshot.jobs:
        if job.state is not JobState.PENDING:
            for worker in job.workers:
                held[worker.node] += worker.gpus
    added: Counter[str] = Counter()
    for entry in [*result.admissions, *grows]:
        for worker in entry.workers:
            added[worker.node] += worker.gpus
    for name, gpus in added.items():
        node = nodes[name]
        assert node.ready and node.schedulable, f"placed on unusable node {name}"
        assert held[name] + gpus <= node.healthy_gpus, (
            f"{name}: {held[name]} held + {gpus} new > {node.healthy_gpus} healthy"
        )

    # Gang all-or-nothing, shapes and required topology honoured.
    admitted = {a.job for a in result.admissions}
    assert len(admitted) == len(result.admissions), "a job admitted twice"
    for admission in result.admissions:
        job = jobs[admission.job]
        assert job.state is JobState.PENDING
        assert job.min_workers <= len(admission.workers) <= job.max_workers
        assert all(w.gpus == job.gpus_per_worker for w in admission.workers)
        level = job.placement.topology
        if job.placement.required and level is not TopologyLevel.NONE and job.min_workers > 1:
            domains = {nodes[w.node].domain(level) for w in admission.workers}
            assert len(domains) == 1 and None not in domains, f"{job.key} spans {domains}"
    for resize in grows:
        job = jobs[resize.job]
        active = len(job.workers) - len(job.releasing)
        assert job.elastic and active + len(resize.workers) <= job.max_workers

    # Borrowing limit: admissions and grows never take a team past maxGPUs.
    for name, team in teams.items():
        if team.max_gpus is None:
            continue
        gained = sum(
            w.gpus
            for entry in [*result.admissions, *grows]
            if entry.team == name
            for w in entry.workers
        )
        if gained:
            before = team.unmanaged_gpus + sum(
                j.held_gpus - sum(w.gpus for w in j.releasing)
                for j in snapshot.jobs
                if j.team == name and j.state is JobState.RUNNING and j.key not in failed
            )
            assert before + gained <= max(team.max_gpus, before), f"team {name} past maxGPUs"

    # Victims: running, preemptible, old enough (failures excepted), never twice.
    victims = Counter(p.job for p in result.preemptions)
    assert all(count == 1 for count in victims.values()), victims
    old_enough = now - config.min_runtime_seconds
    for preemption in result.preemptions:
        job = jobs[preemption.job]
        assert job.state is JobState.RUNNING, f"{job.key} is {job.state}"
        if preemption.reason is PreemptionReason.NODE_FAILURE:
            continue
        assert job.preemptible, f"non-preemptible {job.key} preempted"
        started = job.started_at if job.started_at is not None else job.submitted_at
        assert started <= old_enough, f"{job.key} preempted before min runtime"
        assert preemption.for_job is not None and preemption.for_job not in admitted
    for resize in shrinks:
        job = jobs[resize.job]
        assert job.preemptible and job.elastic and resize.job not in victims
        active = len(job.workers) - len(job.releasing)
        assert active - len(resize.workers) >= job.min_workers
        started = job.started_at if job.started_at is not None else job.submitted_at
        assert started <= old_enough
    for_jobs = {p.for_job for p in result.preemptions} | {r.for_job for r in shrinks}
    for key in for_jobs - {None}:
        entry = result.pending_for(str(key))
        assert entry is not None and entry.reason.value == "WaitingForPreemption", key

    # A team at or below its guarantee never loses GPUs to another team.
    lost: Counter[str] = Counter()
    for preemption in result.preemptions:
        if preemption.for_team not in (None, preemption.team):
            lost[preemption.team] += preemption.gpus
    for resize in shrinks:
        if resize.for_team != resize.team:
            lost[resize.team] += resize.gpus
    claimed: Counter[str] = Counter()
    for entry in result.pending:
        if entry.reason.value == "WaitingForPreemption":
            claimed[entry.team] += jobs[entry.job].min_gpus
    for name, gpus in lost.items():
        # A team's unmanaged pods are its allocation too, and never a victim.
        active = teams[name].unmanaged_gpus + sum(
            j.held_gpus - sum(w.gpus for w in j.releasing)
            for j in snapshot.jobs
            if j.team == name and j.state is JobState.RUNNING and j.key not in failed
        )
        gained = sum(w.gpus for a in result.admissions if a.team == name for w in a.workers)
        keeps = active + gained + claimed[name] - gpus
        assert keeps >= teams[name].guaranteed_gpus, (
            f"team {name} taken below its guarantee ({keeps} < {teams[name].guaranteed_gpus})"
        )

    # Every pending job is admitted or explained, with positions 1..N.
    pending = {job.key for job in snapshot.jobs if job.state is JobState.PENDING}
    explained = {entry.job for entry in result.pending}
    assert admitted | explained == pending and not admitted & explained
    assert [e.queue_position for e in result.pending] == list(range(1, len(result.pending) + 1))
    per_team: defaultdict[str, list[int]] = defaultdict(list)
    for entry in result.pending:
        assert entry.message, f"{entry.job} has no message"
        per_team[entry.team].append(entry.team_position)
    for positions in per_team.values():
        assert positions == list(range(1, len(positions) + 1))


def shuffled(snapshot: Snapshot, seed: int) -> Snapshot:
    rng = random.Random(seed)
    nodes, teams, jobs = list(snapshot.nodes), list(snapshot.teams), list(snapshot.jobs)
    rng.shuffle(nodes)
    rng.shuffle(teams)
    rng.shuffle(jobs)
    return replace(snapshot, nodes=tuple(nodes), teams=tuple(teams), jobs=tuple(jobs))


def check_deterministic(snapshot: Snapshot, result: Plan, now: float) -> None:
    """Same snapshot in any list order: the same plan, byte for byte."""
    expected = result.to_json()
    for seed in (1, 2):
        assert plan(shuffled(snapshot, seed), now).to_json() == expected
