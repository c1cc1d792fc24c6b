from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from gpupool.planner import IdleMode
from gpupool.sim import derive_teams, load_teams, load_trace

from .synthetic import trace

# The real trace lives in the workspace's shared/ folder beside the checkout.
PHILLY = Path(__file__).resolve().parents[4] / "shared" / "traces" / "philly-2017-09-10.csv"
REAL = PHILLY if PHILLY.exists() else None


def test_trace_times_are_relative_to_the_first_submission(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "timestamp,duration,num_gpus,gpu_time,cluster,utilization\n"
        "2017-09-04 10:00:30,100,2,200,b,\n"
        "2017-09-04 10:00:00,50,1,50,a,42\n"
    )
    jobs = load_trace(path)
    assert [(j.team, j.submitted, j.gpus, j.utilization) for j in jobs] == [
        ("a", 0.0, 1, 42.0),
        ("b", 30.0, 2, None),
    ]


def test_a_trace_without_a_required_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("timestamp,duration\n0,1\n")
    with pytest.raises(ValueError, match="num_gpus, cluster"):
        load_trace(path)


@pytest.mark.skipif(REAL is None, reason="the shipped trace is not available")
def test_a_slice_of_the_real_trace_loads_in_order() -> None:
    assert REAL is not None
    jobs = load_trace(REAL, limit=500)
    assert len(jobs) == 500
    assert jobs[0].submitted == 0.0
    assert all(a.submitted <= b.submitted for a, b in pairwise(jobs))


def test_guarantees_follow_gpu_time_and_add_up_to_the_cluster() -> None:
    # a used 3× b's GPU-time; c is tiny but has an 8-GPU job: it gets 8.
    jobs = trace(("a", 0, 3000, 4), ("b", 0, 1000, 4), ("c", 0, 10, 8))
    guarantees = {team.name: team.guaranteed_gpus for team in derive_teams(jobs, 48)}
    assert guarantees == {"a": 30, "b": 10, "c": 8}
    assert all(
        t.idle_reclaim and t.idle_reclaim.mode is IdleMode.ENFORCE for t in derive_teams(jobs, 48)
    )


def test_teams_file_reads_like_teamquota(tmp_path: Path) -> None:
    path = tmp_path / "teams.yaml"
    path.write_text(
        "teams:\n"
        "- {name: a, guaranteedGPUs: 8, maxGPUs: 16, idleReclaim: {forMinutes: 10, mode: report}}\n"
        "- {name: b, guaranteedGPUs: 8}\n"
    )
    a, b = load_teams(path)
    assert (a.guaranteed_gpus, a.max_gpus, a.weight) == (8, 16, 1.0)
    assert a.idle_reclaim is not None and a.idle_reclaim.for_seconds == 600
    assert a.idle_reclaim.mode is IdleMode.REPORT
    assert b.max_gpus is None
