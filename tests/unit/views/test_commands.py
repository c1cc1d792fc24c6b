"""The commands end to end on the fake API server: output, exit codes, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from gpupool.k8s import ApiError, KubeClient
from gpupool.planner import Snapshot
from gpupool.views import commands

from .cluster import NOW, ClusterKube, pool

WIDE = {"COLUMNS": "240"}


def app() -> typer.Typer:
    application = typer.Typer()
    commands.register(application)
    return application


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app(), list(args), env=WIDE)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> ClusterKube:
    """The fake cluster every command talks to."""
    fake = pool()
    monkeypatch.setattr(KubeClient, "from_kubeconfig", classmethod(lambda *_, **__: fake))
    return fake


def test_snapshot_dumps_what_the_operator_plans_on(kube: ClusterKube) -> None:
    result = invoke("snapshot")
    assert result.exit_code == 0, result.output
    dumped = json.loads(result.stdout)
    snapshot = Snapshot.from_json(result.stdout)
    assert [job.key for job in snapshot.jobs] == ["nlp/bert", "nlp/huge", "vision/a"]
    assert [node.name for node in snapshot.nodes] == ["node-1", "node-2"]
    assert dumped["now"] > NOW


def test_snapshot_to_a_file_then_replay_it(kube: ClusterKube, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    written = invoke("snapshot", "-o", str(path))
    assert written.exit_code == 0, written.output
    assert "2 nodes, 2 teams, 3 jobs" in written.output

    shown = invoke("replay", str(path))
    assert shown.exit_code == 0, shown.output
    assert "Admissions" in shown.stdout and "node-2 1×8" in shown.stdout
    assert "Unschedulable" in shown.stdout and "Teams after the plan" in shown.stdout

    raw = invoke("replay", str(path), "--json")
    plan = json.loads(raw.stdout)
    assert [a["job"] for a in plan["admissions"]] == ["nlp/bert"]
    assert [p["job"] for p in plan["pending"]] == ["nlp/huge"]


def test_replay_plans_at_the_time_asked(kube: ClusterKube, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    invoke("snapshot", "-o", str(path))
    shown = invoke("replay", str(path), "--now", str(NOW))
    assert "Plan at 2026-01-01 13:00:00 UTC for 2 nodes, 2 teams, 3 jobs" in shown.stdout


def test_replay_of_a_missing_or_foreign_file_fails_clearly(tmp_path: Path) -> None:
    missing = invoke("replay", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.output and "nope.json" in missing.output
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": "world"}')
    wrong = invoke("replay", str(foreign))
    assert wrong.exit_code == 2
    assert "is not a gpupool snapshot" in wrong.output and "gpupool snapshot -o" in wrong.output


def test_replay_of_an_empty_snapshot_says_the_plan_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(Snapshot(nodes=(), teams=(), jobs=()).to_json(now=NOW))
    assert "The plan is empty" in invoke("replay", str(path)).stdout


def test_explain_takes_namespace_slash_name_or_dash_n(kube: ClusterKube) -> None:
    slashed = invoke("explain", "nlp/huge")
    assert slashed.exit_code == 0, slashed.output
    assert "Unschedulable" in slashed.stdout and "What would let it run" in slashed.stdout
    flagged = invoke("explain", "huge", "-n", "nlp")
    assert flagged.exit_code == 0 and "Unschedulable" in flagged.stdout


def test_explain_of_an_unknown_job_fails_clearly(kube: ClusterKube) -> None:
    result = invoke("explain", "nlp/ghost")
    assert result.exit_code == 2
    assert "GPUJob nlp/ghost not found" in result.output


@pytest.mark.parametrize("command", [["explain", "nlp/bert"], ["snapshot"]])
def test_missing_crds_say_how_to_install_them(kube: ClusterKube, command: list[str]) -> None:
    kube.list_errors["gpujobs"] = ApiError(404, "NotFound", "the server could not find it")
    result = invoke(*command)
    assert result.exit_code == 2
    assert "gpujobs.gpupool.io resource is not installed" in result.output
    assert "kubectl apply -f crds/" in result.output


@pytest.mark.parametrize("command", [["explain", "nlp/bert"], ["snapshot"]])
def test_forbidden_lists_name_the_resource_and_the_role(
    kube: ClusterKube, command: list[str]
) -> None:
    kube.list_errors["pods"] = ApiError(403, "Forbidden", 'pods is forbidden: User "dev"')
    result = invoke(*command)
    assert result.exit_code == 2
    assert "may not list pods" in result.output
    assert "gpupool's Pods in every namespace" in result.output


def test_forbidden_gpupool_resources_point_at_the_viewer_role(kube: ClusterKube) -> None:
    kube.list_errors["teamquotas"] = ApiError(403, "Forbidden", "teamquotas is forbidden")
    result = invoke("snapshot")
    assert result.exit_code == 2
    assert "may not list teamquotas.gpupool.io" in result.output
    assert "gpupool viewer role" in result.output


def test_replay_reads_stdin(kube: ClusterKube) -> None:
    dumped = invoke("snapshot").stdout
    result = CliRunner().invoke(app(), ["replay", "-", "--json"], input=dumped, env=WIDE)
    assert result.exit_code == 0, result.output
    assert [a["job"] for a in json.loads(result.stdout)["admissions"]] == ["nlp/bert"]
