"""Synthetic traces with answers computed by hand (scheduling cycles every 30 s).

`DIES`: no job saves on SIGTERM (a victim resumes from its last periodic
checkpoint); `SAVES`: every job does (it holds its GPUs 60 s while it saves)."""

from __future__ import annotations

import pytest

from gpupool.planner import WorkerPlacement
from gpupool.sim import SimConfig
from gpupool.sim.model import RACK_PENALTY, build_nodes, slowdown
from gpupool.sim.state import SimJob

from .synthetic import run, teams, trace

DIES = SimConfig(gpus=16, cycle_seconds=30, sigterm_save=0.0)
SAVES = SimConfig(gpus=16, cycle_seconds=30, sigterm_save=1.0)
TWO_NODES = DIES


def jct(jobs: dict[str, SimJob], key: str) -> float:
    job = jobs[key]
    assert job.finished_at is not None
    return job.finished_at - job.trace.submitted


def test_static_keeps_a_team_inside_its_guarantee() -> None:
    # Team a has 8 of 16 GPUs and two 8-GPU jobs; team b is idle. Fixed allocation
    # runs a's jobs one after the other; the second waits the first one's hour.
    jobs = trace(("a", 0, 3600, 8), ("a", 0, 3600, 8))
    result, by_key = run("static", jobs, teams(a=8, b=8), TWO_NODES)
    assert jct(by_key, "a/job-0") == 3600
    assert jct(by_key, "a/job-1") == 7200
    assert result.avg_jct_s == 5400
    assert result.avg_queue_s == 1800
    assert result.preemptions == 0


@pytest.mark.parametrize("policy", ["borrow", "kueue-fair", "gpupool"])
def test_idle_guarantee_is_lent(policy: str) -> None:
    jobs = trace(("a", 0, 3600, 8), ("a", 0, 3600, 8))
    result, _ = run(policy, jobs, teams(a=8, b=8), TWO_NODES)
    assert result.avg_jct_s == 3600
    assert result.avg_queue_s == 0
    assert result.allocation_ratio == 1.0


def test_borrow_evicts_the_newest_borrower_and_loses_its_work() -> None:
    # a borrows b's node at t=0; b submits at t=1000. At the 1020 s cycle Kueue
    # reclaims: a's newest job (job-1) is killed, 1020 s × 8 GPUs of work lost (no
    # periodic checkpoint yet); b starts on the next cycle (1050) and ends at 2050;
    # job-1 restarts from scratch on the cycle after (2070) and ends at 12070.
    jobs = trace(("a", 0, 10_000, 8), ("a", 0, 10_000, 8), ("b", 1000, 1000, 8))
    result, by_key = run("borrow", jobs, teams(a=8, b=8), TWO_NODES)
    assert result.preemptions == 1
    assert result.lost_gpu_hours == pytest.approx(1020 * 8 / 3600)
    assert jct(by_key, "b/job-2") == 1050
    assert jct(by_key, "a/job-1") == 12_070
    assert jct(by_key, "a/job-0") == 10_000


def test_borrow_keeps_the_work_of_the_last_periodic_checkpoint() -> None:
    jobs = trace(("a", 0, 10_000, 8), ("a", 0, 10_000, 8), ("b", 1000, 1000, 8))
    config = SimConfig(gpus=16, checkpoint_interval=600, cycle_seconds=30, sigterm_save=0.0)
    result, by_key = run("borrow", jobs, teams(a=8, b=8), config)
    # Checkpointed at 600 s: 420 s lost; 9400 s left from 2070.
    assert result.lost_gpu_hours == pytest.approx(420 * 8 / 3600)
    assert jct(by_key, "a/job-1") == 2070 + 9400


@pytest.mark.parametrize("policy", ["borrow", "kueue-fair", "gpupool"])
def test_a_victim_that_saves_on_sigterm_saves_under_every_policy(policy: str) -> None:
    # At 1020 s every policy reclaims one of a's borrowed jobs for b (within its
    # guarantee); the victim saves for 60 s holding its GPUs, b starts at 1080 and
    # ends at 2080; the victim kept its 1020 s of work and resumes at the 2100 s
    # cycle: 8980 s left. Kueue takes the newest (job-1), gpupool the cheapest
    # (equal cost: the lowest key, job-0).
    jobs = trace(("a", 0, 10_000, 8), ("a", 0, 10_000, 8), ("b", 1000, 1000, 8))
    result, by_key = run(policy, jobs, teams(a=8, b=8), SAVES)
    victim = "a/job-0" if policy == "gpupool" else "a/job-1"
    assert result.preemptions == 1
    assert result.lost_gpu_hours == pytest.approx(60 * 8 / 3600)
    assert jct(by_key, "b/job-2") == 1080
    assert jct(by_key, victim) == 2100 + 8980
    assert by_key[victim].preemptions == 1


def test_gpupool_does_not_preempt_a_job_younger_than_the_minimum_runtime() -> None:
    # a's borrower started at 0; b arrives at 100: the planner waits for the
    # 300 s minimum runtime, then reclaims (saved by 360), b starts at 360.
    jobs = trace(("a", 0, 10_000, 8), ("a", 0, 10_000, 8), ("b", 100, 1000, 8))
    _, by_key = run("gpupool", jobs, teams(a=8, b=8), SAVES)
    assert by_key["b/job-2"].first_start == 360


def test_kueue_fair_preempts_a_bigger_borrower_for_a_borrowing_job() -> None:
    # c has no guarantee; a borrows b's 8 GPUs with four 4-GPU jobs. c's 4-GPU job
    # would borrow too, so classic Kueue preempts nothing for it (it waits for a's
    # jobs to end); with fair sharing, c's share with the job (4/16 = 250) is <= a's
    # share without one of its jobs (4/16 = 250), so a's newest job is preempted
    # (LessThanOrEqualToFinalShare) at 1020 and c starts at 1050.
    rows = [("a", 0, 10_000, 4)] * 4 + [("c", 1000, 1000, 4)]
    settings = teams(a=8, b=8, c=0)
    _, fair = run("kueue-fair", trace(*rows), settings, DIES)
    assert fair["c/job-4"].first_start == 1050
    assert fair["a/job-3"].preemptions == 1
    _, classic = run("borrow", trace(*rows), settings, DIES)
    assert classic["c/job-4"].first_start == 10_020


def test_kueue_fair_does_not_preempt_between_equal_shares() -> None:
    # a borrows 8 GPUs with one 8-GPU job; c's 8-GPU job would take c to the same
    # share (500) a has now: neither strategy lets it preempt.
    rows = [("a", 0, 10_000, 8), ("a", 0, 10_000, 8), ("c", 1000, 1000, 8)]
    _, by_key = run("kueue-fair", trace(*rows), teams(a=8, b=8, c=0), DIES)
    assert by_key["c/job-2"].first_start == 10_020


def test_first_fit_spreads_a_gang_across_racks_and_gpupool_does_not() -> None:
    # 4 nodes, 2 per rack. A 1-GPU job lands on node-1; then a 2 × 8 job: first fit
    # takes node-2 (rack 1) and node-3 (rack 2); gpupool keeps it in rack 2.
    config = SimConfig(gpus=32, nodes_per_rack=2, cycle_seconds=30)
    jobs = trace(("a", 0, 100_000, 1), ("a", 60, 10_000, 16))
    static, by_key = run("static", jobs, teams(a=32), config)
    assert jct(by_key, "a/job-1") == pytest.approx(10_000 * (1 + RACK_PENALTY))
    assert static.mean_spread_slowdown == pytest.approx(1 + RACK_PENALTY)
    gpupool, by_key = run("gpupool", jobs, teams(a=32), config)
    assert jct(by_key, "a/job-1") == 10_000
    assert gpupool.mean_spread_slowdown == 1.0


def test_a_job_within_its_guarantee_gets_gpus_at_the_next_cycle() -> None:
    jobs = trace(("a", 0, 10_000, 8), ("a", 0, 10_000, 8), ("b", 1000, 1000, 8))
    result, _ = run("borrow", jobs, teams(a=8, b=8), TWO_NODES)
    # Within their guarantee when submitted: a's first job (no wait) and b's (50 s).
    assert result.p99_guaranteed_wait_s == 50


def test_the_rack_penalty_counts_only_racks_beyond_the_fewest_needed() -> None:
    # 4 nodes to a rack: a 64-GPU job needs 8 nodes, so 2 racks, and a 128-GPU job
    # 4 racks; neither is slowed there. One rack more costs one rack penalty.
    config = SimConfig(gpus=256)
    nodes = build_nodes(config)
    racks = {node.name: node.rack for node in nodes}

    def factor(*indices: int) -> float:
        workers = [WorkerPlacement(nodes[i].name, 8) for i in indices]
        return slowdown(workers, racks, 8, config)

    assert factor(*range(8)) == 1.0
    assert factor(*range(16)) == 1.0
    assert factor(*range(2, 10)) == pytest.approx(1 + RACK_PENALTY)
    assert factor(0) == 1.0
