from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gpupool.cli import app
from gpupool.sim.metrics import JSON_KEYS, PolicyResult
from gpupool.sim.report import team_groups

from .test_trace_and_teams import REAL

CSV = (
    "timestamp,duration,num_gpus,gpu_time,cluster\n"
    "2017-09-04 10:00:00,3600,8,28800,a\n"
    "2017-09-04 10:00:00,3600,8,28800,a\n"
    "2017-09-04 10:10:00,600,8,4800,b\n"
)


def _trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(CSV)
    return path


def test_json_is_one_line_with_the_parameters_and_every_metric(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--trace",
            str(_trace(tmp_path)),
            "--gpus",
            "16",
            "--json",
            "--idle-model",
            "passes",
            "--sigterm-save",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    data = json.loads(result.stdout)
    assert list(data) == ["parameters", "policies"]
    given = data["parameters"]
    assert given["gpus"] == 16
    assert given["idle_model"] == "passes"
    assert given["sigterm_save"] == 1.0
    assert given["checkpoint_interval_s"] == 1800.0
    assert [team["name"] for team in given["teams"]] == ["a", "b"]
    assert list(data["policies"]) == ["static", "borrow", "kueue-fair", "gpupool"]
    for metrics in data["policies"].values():
        assert tuple(metrics) == JSON_KEYS
        assert set(metrics["rho"]) == {"a", "b"}


def test_table_and_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--trace",
            str(_trace(tmp_path)),
            "--gpus",
            "16",
            "--policy",
            "static,gpupool",
            "--report",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "avg JCT" in result.stdout
    assert {p.name for p in out.iterdir()} >= {
        "index.html",
        "jct_cdf.png",
        "queue_cdf.png",
        "allocation.png",
        "fairness.png",
        "teams_gpupool.png",
    }
    page = (out / "index.html").read_text()
    assert "static" in page
    # What it was run with, and what each metric means.
    assert "checkpoint_interval_s" in page and "sigterm_save" in page
    assert "Themis" in page


def test_unknown_policy_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--trace", str(_trace(tmp_path)), "--gpus", "16", "--policy", "fifo"]
    )
    assert result.exit_code == 2
    assert "unknown policy" in result.output


def test_a_slice_of_the_real_trace_under_every_policy(tmp_path: Path) -> None:
    if REAL is None:
        return
    result = CliRunner().invoke(
        app, ["simulate", "--trace", str(REAL), "--gpus", "32", "--limit", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    policies = json.loads(result.stdout)["policies"]
    for metrics in policies.values():
        assert metrics["avg_jct_s"] > metrics["avg_queue_s"] >= 0
        assert 0 < metrics["effective_utilization"] <= metrics["allocation_ratio"] <= 1
    assert policies["static"]["preemptions"] == 0


def _held(policy: str, hours: dict[str, list[float]]) -> PolicyResult:
    return PolicyResult(
        policy=policy,
        jobs=0,
        avg_jct_s=0.0,
        p95_jct_s=0.0,
        avg_queue_s=0.0,
        p95_queue_s=0.0,
        allocation_ratio=0.0,
        effective_utilization=0.0,
        lost_gpu_hours=0.0,
        preemptions=0,
        entitlement_jain_index=1.0,
        p99_guaranteed_wait_s=0.0,
        spread_jobs=0,
        mean_spread_slowdown=1.0,
        plans=0,
        runtime_s=0.0,
        team_held_per_hour=hours,
    )


def test_many_teams_share_a_colour_only_as_a_group_of_the_smallest() -> None:
    groups = team_groups([_held("gpupool", {f"t{i:02d}": [float(i)] for i in range(25)})])
    assert len(groups) == 20
    assert [label for label, _ in groups[:2]] == ["t24", "t23"]
    assert groups[-1] == ("other (6 teams)", ["t05", "t04", "t03", "t02", "t01", "t00"])
    few = team_groups([_held("static", {"a": [1.0], "b": [2.0]})])
    assert few == [("b", ["b"]), ("a", ["a"])]
