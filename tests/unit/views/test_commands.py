"""The commands end to end on the fake API server: output, exit codes, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from gpupool.k8s import ApiError, Credentials
from gpupool.planner import Snapshot
from gpupool.views import commands, connection

from .cluster import NOW, ClusterKube, pool

WIDE = {"COLUMNS": "240"}


def app() -> typer.Typer:
    application = typer.Typer()
    commands.register(application)
    return application


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app(), list(args), env=WIDE)


CREDENTIALS = Credentials(
    server="https://api.test:6443", namespace="nlp", source="kubeconfig test.yaml (context 'test')"
)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> ClusterKube:
    """The fake cluster every command talks to; the kubeconfig's namespace is nlp."""
    fake = pool()
    monkeypatch.setattr(connection, "credentials_for", lambda _: CREDENTIALS)
    monkeypatch.setattr(connection, "KubeClient", lambda *_: fake)
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
    written = invoke("snapshot", "--output-file", str(path))
    assert written.exit_code == 0, written.output
    assert "2 nodes, 2 teams, 3 jobs" in written.output

    shown = invoke("replay", str(path))
    assert shown.exit_code == 0, shown.output
    assert "Admissions" in shown.stdout and "node-2 1×8" in shown.stdout
    assert "Unschedulable" in shown.stdout and "Teams after the plan" in shown.stdout

    raw = invoke("replay", str(path), "-o", "json")
    plan = json.loads(raw.stdout)
    assert [a["job"] for a in plan["admissions"]] == ["nlp/bert"]
    assert [p["job"] for p in plan["pending"]] == ["nlp/huge"]


def test_replay_plans_at_the_time_asked(kube: ClusterKube, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    invoke("snapshot", "--output-file", str(path))
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
    assert (
        "is not a gpupool snapshot" in wrong.output
        and "gpupool snapshot --output-file" in wrong.output
    )


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


def test_explain_of_an_unknown_job_says_what_it_may_have_meant(kube: ClusterKube) -> None:
    result = invoke("explain", "nlp/ghost")
    assert result.exit_code == 2
    assert "GPUJob nlp/ghost not found." in result.output
    assert "gpupool queue -n nlp" in result.output and "Did you mean" not in result.output
    typo = invoke("explain", "nlp/hgue")
    assert "Did you mean huge?" in typo.output
    elsewhere = invoke("explain", "vision/bert")
    assert "Did you mean nlp/bert?" in elsewhere.output


def test_explain_takes_the_context_namespace_by_default(kube: ClusterKube) -> None:
    result = invoke("explain", "huge")
    assert result.exit_code == 0, result.output
    assert "nlp/huge" in result.stdout


def test_explain_as_json_yaml_and_name(kube: ClusterKube) -> None:
    found = json.loads(invoke("explain", "nlp/huge", "-o", "json").stdout)
    assert found["name"] == "huge" and found["planner"]["reason"] == "Unschedulable"
    assert "fewer workers" in found["planner"]["hint"]
    assert "reason: Unschedulable" in invoke("explain", "nlp/huge", "-o", "yaml").stdout
    assert invoke("explain", "nlp/huge", "-o", "name").stdout == "gpujob.gpupool.io/huge\n"
    wide = invoke("explain", "nlp/huge", "-o", "wide")
    assert wide.exit_code == 2 and "'wide' is not one of" in wide.output


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
    kube.list_errors["pods"] = ApiError(
        403,
        "Forbidden",
        'pods is forbidden: User "dev" cannot list resource "pods" in API group "" at the '
        "cluster scope",
    )
    result = invoke(*command)
    assert result.exit_code == 2
    assert "forbidden: dev may not list pods cluster-wide" in result.output
    assert "Nodes, and the Pods and Events of every namespace" in result.output
    assert "gpupool-cluster-viewer" in result.output and "rbac.clusterViewers" in result.output


def test_forbidden_gpupool_resources_point_at_the_viewer_role(kube: ClusterKube) -> None:
    kube.list_errors["teamquotas"] = ApiError(403, "Forbidden", "teamquotas is forbidden")
    result = invoke("snapshot")
    assert result.exit_code == 2
    assert "your credentials may not list teamquotas.gpupool.io (cluster-scoped)" in result.output
    assert "ClusterRoleBinding to the ClusterRole gpupool-teamquota-viewer" in result.output


def test_replay_reads_stdin(kube: ClusterKube) -> None:
    dumped = invoke("snapshot").stdout
    result = CliRunner().invoke(app(), ["replay", "-", "-o", "json"], input=dumped, env=WIDE)
    assert result.exit_code == 0, result.output
    assert [a["job"] for a in json.loads(result.stdout)["admissions"]] == ["nlp/bert"]


def test_queue_reads_the_context_namespace_or_every_one(kube: ClusterKube) -> None:
    mine = invoke("queue")
    assert mine.exit_code == 0, mine.output
    assert "Queue in namespace nlp" in mine.stdout and "huge" in mine.stdout
    assert "lost" not in mine.stdout and "Namespace" not in mine.stdout
    everywhere = invoke("queue", "-A")
    assert "orphans" in everywhere.stdout and "Namespace" in everywhere.stdout
    other = invoke("queue", "-n", "vision")
    assert "No pending GPUJobs in namespace vision. (-A: every namespace)" in other.output


def test_queue_formats(kube: ClusterKube) -> None:
    items = json.loads(invoke("queue", "-o", "json").stdout)["items"]
    assert {(item["namespace"], item["name"]) for item in items} == {
        ("nlp", "huge"),
        ("nlp", "bert"),
    }
    assert "name: huge" in invoke("queue", "-o", "yaml").stdout
    names = invoke("queue", "-o", "name").stdout.split()
    assert sorted(names) == ["gpujob.gpupool.io/bert", "gpujob.gpupool.io/huge"]
    assert "Priority class" in invoke("queue", "-o", "wide").stdout
    assert "Priority class" not in invoke("queue").stdout


def test_queue_of_an_unknown_team_says_which_exist(kube: ClusterKube) -> None:
    for verbose in ([], ["-v"]):
        result = invoke("queue", "--team", "visoin", *verbose)
        assert result.exit_code == 2, result.output
        assert "no TeamQuota named 'visoin'. Did you mean vision?" in result.output


def test_status_and_top_formats_and_namespace_filter(kube: ClusterKube) -> None:
    status = json.loads(invoke("status", "-o", "json").stdout)
    assert [team["name"] for team in status["items"]] == ["nlp", "vision"]
    assert status["items"][0]["spec"]["guaranteedGPUs"] == 8 and "cluster" in status
    only = invoke("status", "-n", "vision", "-o", "name").stdout
    assert only == "teamquota.gpupool.io/vision\n"
    assert "Namespaces" in invoke("status", "-o", "wide").stdout
    assert invoke("top", "-o", "json").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["queue", "-n", "nlp", "-A"], "either -n/--namespace or -A/--all-namespaces"),
        (["status", "-o", "xml"], "'xml' is not one of"),
        (["snapshot", "-o", "snap.json"], "(the file to write is --output-file FILE)"),
        (["queue", "--request-timeout", "soon"], "'soon' is not a duration"),
        (["queue", "--namspace", "nlp"], "No such option: --namspace"),
    ],
)
def test_bad_flags_say_what_is_wrong(kube: ClusterKube, args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_yaml_snapshot_replays_like_a_json_one(kube: ClusterKube, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.yaml"
    assert invoke("snapshot", "-o", "yaml", "--output-file", str(path)).exit_code == 0
    plan = json.loads(invoke("replay", str(path), "-o", "json").stdout)
    assert [a["job"] for a in plan["admissions"]] == ["nlp/bert"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), ("0", None)],
)
def test_request_timeouts_read_as_kubectl_reads_them(text: str, seconds: float | None) -> None:
    assert connection.parse_duration(text) == seconds
