"""The `gpupool` commands against a real API server: what they show, and their errors.

Each test gets its own pool (kwok GPU nodes labelled `gpupool.io/pool=<id>`, teams and
namespaces; see operator/harness.py) and passes `--node-selector` so the snapshot holds
only that pool's nodes. The commands run through typer's CliRunner in a thread (they
call `asyncio.run` themselves).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from gpupool.cli import app
from gpupool.devcluster import Cluster, DevCluster
from gpupool.k8s import GPUJOBS, GPUNODES, ApiError, KubeClient
from gpupool.planner import Snapshot
from gpupool.webhook.certs import self_signed

from .operator.harness import CheckpointServer, OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
READER = "gpupool-cli-test-reader"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


async def gpupool(kubeconfig: Path | str, *args: str) -> Result:
    """`gpupool ARGS --kubeconfig KUBECONFIG`, off the event loop."""
    return await asyncio.to_thread(run, *args, "--kubeconfig", str(kubeconfig))


@pytest.fixture
async def kube(kubeconfig: Path) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        yield client


@pytest.fixture
async def pool(kube: KubeClient) -> AsyncIterator[Pool]:
    checkpoints = CheckpointServer()
    await checkpoints.start()
    made = Pool(kube, checkpoints)
    # The httpPost hook goes to the worker pods' own IPs: serve the pool's pod CIDR.
    await checkpoints.serve_pods(made.pod_cidr)
    yield made
    await made.cleanup()
    await checkpoints.stop()


@pytest.fixture
def operator(kubeconfig: Path, pool: Pool, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(str(kubeconfig), pool.selector, tmp_path / "operator.log")
    yield process
    process.stop()


async def test_status_queue_and_top_show_the_pool(kubeconfig: Path, pool: Pool) -> None:
    (node, _) = await pool.add_nodes(2, 8)
    team, namespace = await pool.add_team("vision", 8, max_gpus=16)
    await pool.submit(namespace, "resnet", gpus=8, workers=2)
    await pool.set_gpunode(node, 8, users={0: f"{namespace}/resnet-0-0"}, utilization=73)

    status = await gpupool(kubeconfig, "status")
    assert status.exit_code == 0, status.output
    assert team in status.stdout and "Cluster" in status.stdout

    queue = await gpupool(kubeconfig, "queue", "--team", team)
    assert queue.exit_code == 0, queue.output
    assert namespace in queue.stdout and "resnet" in queue.stdout and "2×8" in queue.stdout

    top = await gpupool(kubeconfig, "top")
    assert top.exit_code == 0, top.output
    assert node in top.stdout and f"{namespace}/resnet-0-0" in top.stdout and "73%" in top.stdout


async def test_snapshot_dumps_the_pool_and_replay_plans_on_it(
    kubeconfig: Path, pool: Pool, tmp_path: Path
) -> None:
    nodes = await pool.add_nodes(2, 8)
    team, namespace = await pool.add_team("vision", 8)
    await pool.submit(namespace, "fits", gpus=8)
    await pool.submit(namespace, "huge", gpus=8, workers=3)

    dumped = await gpupool(kubeconfig, "snapshot", "--node-selector", pool.selector)
    assert dumped.exit_code == 0, dumped.output
    snapshot = Snapshot.from_json(dumped.stdout)
    assert [node.name for node in snapshot.nodes] == sorted(nodes)
    assert all(node.gpus == 8 and node.ready for node in snapshot.nodes)
    assert team in {team.name for team in snapshot.teams}
    ours = {job.key: job for job in snapshot.jobs if job.team == team}
    assert set(ours) == {f"{namespace}/fits", f"{namespace}/huge"}
    assert all(job.state.value == "pending" for job in ours.values())

    path = tmp_path / "snapshot.json"
    written = await gpupool(
        kubeconfig, "snapshot", "--node-selector", pool.selector, "--output-file", str(path)
    )
    assert written.exit_code == 0, written.output
    assert "wrote" in written.output

    shown = await asyncio.to_thread(run, "replay", str(path))
    assert shown.exit_code == 0, shown.output
    assert "Admissions" in shown.stdout and f"{namespace}/fits" in shown.stdout
    assert "Unschedulable" in shown.stdout

    raw = await asyncio.to_thread(run, "replay", str(path), "-o", "json")
    plan = json.loads(raw.stdout)
    assert [a["job"] for a in plan["admissions"]] == [f"{namespace}/fits"]
    assert plan["admissions"][0]["workers"][0]["node"] in nodes
    assert [(p["job"], p["reason"]) for p in plan["pending"]] == [
        (f"{namespace}/huge", "Unschedulable")
    ]


async def test_explain_says_why_a_job_waits_and_what_would_let_it_run(
    kubeconfig: Path, pool: Pool
) -> None:
    await pool.add_nodes(2, 8)
    _, namespace = await pool.add_team("vision", 8)
    stray = await pool.add_namespace("stray")
    await pool.submit(namespace, "fits", gpus=8)
    await pool.submit(namespace, "huge", gpus=8, workers=3)
    await pool.submit(stray, "lost", gpus=1)
    selector = ("--node-selector", pool.selector)

    fits = await gpupool(kubeconfig, "explain", f"{namespace}/fits", *selector)
    assert fits.exit_code == 0, fits.output
    assert "would be admitted now" in fits.stdout and "next cycle" in fits.stdout

    huge = await gpupool(kubeconfig, "explain", "huge", "-n", namespace, *selector)
    assert huge.exit_code == 0, huge.output
    assert "Unschedulable" in huge.stdout and "needs 24 GPUs" in huge.stdout
    assert "fewer workers" in huge.stdout

    lost = await gpupool(kubeconfig, "explain", f"{stray}/lost", *selector)
    assert lost.exit_code == 0, lost.output
    assert "NoTeamQuota" in lost.stdout and "spec.namespaces" in lost.stdout

    ghost = await gpupool(kubeconfig, "explain", f"{namespace}/ghost", *selector)
    assert ghost.exit_code == 2
    assert f"GPUJob {namespace}/ghost not found." in ghost.output
    assert f"gpupool queue -n {namespace}" in ghost.output
    typo = await gpupool(kubeconfig, "explain", f"{namespace}/hgue", *selector)
    assert typo.exit_code == 2 and "Did you mean huge?" in typo.output
    elsewhere = await gpupool(kubeconfig, "explain", f"{namespace}/lost", *selector)
    assert elsewhere.exit_code == 2 and f"Did you mean {stray}/lost?" in elsewhere.output


async def test_explain_shows_a_preemption_its_checkpoint_and_events(
    kubeconfig: Path, pool: Pool, operator: OperatorProcess
) -> None:
    """vision borrows nlp's idle 8 GPUs; nlp claims them; explain tells the victim's story."""
    await pool.add_nodes(2, 8)
    _, vision_ns = await pool.add_team("vision", 8)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    for name in ("a", "b"):
        await pool.submit(vision_ns, name)
    for name in ("a", "b"):
        await pool.wait_phase(vision_ns, name, "Running")
    await pool.submit(nlp_ns, "bert")
    await pool.wait_phase(nlp_ns, "bert", "Running", timeout=45)
    victim = await pool.preempted(vision_ns, ["a", "b"])
    await pool.wait_events(vision_ns, victim, "Requeued")
    checkpoint = (await pool.status(vision_ns, victim))["lastCheckpoint"]["location"]

    shown = await gpupool(
        kubeconfig, "explain", f"{vision_ns}/{victim}", "--node-selector", pool.selector
    )
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert checkpoint in text and "(hook," in text
    assert "Preempted" in text and "ReclaimBorrowed" in text
    assert "Preempting" in text and "Requeued" in text
    assert "1 (restarts 0, failures 0)" in text
    # The pool is full: the fresh plan keeps it waiting, with the planner's reason.
    assert "pending (queue position" in text


@pytest.fixture
def reader(cluster: Cluster, pool: Pool, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A ServiceAccount with no permissions yet: its kubeconfig and namespace."""
    namespace = f"cli-rbac-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(namespace)
    yield (
        cluster.service_account_kubeconfig(namespace, "default", tmp_path / "reader.yaml"),
        namespace,
    )
    cluster.kubectl(
        "delete", "clusterrolebinding,clusterrole", READER, "--ignore-not-found", "--wait=false"
    )
    cluster.delete_namespace(namespace)


def grant_reader(cluster: Cluster, namespace: str) -> None:
    """Let the reader list gpupool's resources and nodes, but not pods."""
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": ["gpupool.io"],
            "resources": ["gpujobs", "teamquotas", "gpunodes"],
            "verbs": ["get", "list"],
        },
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
    ]
    cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": READER},
                "rules": rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": READER},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": READER,
                },
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
            },
        ]
    )


def grant_namespace_reader(cluster: Cluster, namespace: str, account_namespace: str) -> None:
    """Let the reader list GPUJobs in `namespace` only (what `view` there would give)."""
    cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": READER, "namespace": namespace},
                "rules": [
                    {"apiGroups": ["gpupool.io"], "resources": ["gpujobs"], "verbs": ["list"]}
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": READER, "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": READER,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "default", "namespace": account_namespace}
                ],
            },
        ]
    )


async def test_rbac_refusals_name_what_may_not_be_listed(
    cluster: Cluster, pool: Pool, reader: tuple[Path, str]
) -> None:
    account, account_namespace = reader
    await pool.add_nodes(1, 8)
    _, namespace = await pool.add_team("vision", 8)
    await pool.submit(namespace, "fits")

    user = f"system:serviceaccount:{account_namespace}:default"
    for command, refusals in (
        (["status"], ["teamquotas.gpupool.io (cluster-scoped)", "gpujobs.gpupool.io cluster-wide"]),
        (["queue", "-A"], ["gpujobs.gpupool.io cluster-wide"]),
        (["queue", "-n", namespace], [f"gpujobs.gpupool.io in namespace {namespace}"]),
        (["top"], ["gpunodes.gpupool.io (cluster-scoped)"]),
    ):
        refused = await gpupool(account, *command)
        assert refused.exit_code == 2, (command, refused.output)
        for refusal in refusals:  # every refused list, in one message
            assert f"forbidden: {user} may not list {refusal}" in refused.output, refused.output
        assert "viewer" in refused.output and "Traceback" not in refused.output
    namespaced = await gpupool(account, "queue", "-n", namespace)
    assert "a RoleBinding to `view` (or `edit`) in your team's namespace" in namespaced.output
    assert "teamquotas" not in namespaced.output  # queue -n needs only the namespace's jobs

    # A team member's grant: read GPUJobs in the team's namespace, nothing cluster-wide.
    await asyncio.to_thread(grant_namespace_reader, cluster, namespace, account_namespace)

    async def team_member() -> Result | None:
        answer = await gpupool(account, "queue", "-n", namespace)
        return answer if answer.exit_code == 0 else None

    mine = await wait_for("the namespace role to take effect", team_member, timeout=30)
    assert "fits" in mine.stdout
    cluster_scoped = await gpupool(account, "top")
    assert "ClusterRoleBinding to the ClusterRole gpupool-gpunode-viewer" in cluster_scoped.output

    await asyncio.to_thread(grant_reader, cluster, account_namespace)

    async def allowed() -> Result | None:
        answer = await gpupool(account, "status")
        return answer if answer.exit_code == 0 else None

    await wait_for("the reader role to take effect", allowed, timeout=30)
    for command in (["snapshot"], ["explain", f"{namespace}/fits"]):
        refused = await gpupool(account, *command, "--node-selector", pool.selector)
        assert refused.exit_code == 2, (command, refused.output)
        assert f"forbidden: {user} may not list pods cluster-wide" in refused.output
        assert "gpupool-cluster-viewer" in refused.output


async def test_missing_crds_say_how_to_install_them(
    cluster: Cluster, kubeconfig: Path, kube: KubeClient
) -> None:
    """The GPUNode CRD removed (and restored): every command that lists GPUNodes says so."""
    if not isinstance(cluster, DevCluster):
        pytest.skip("removes a CRD: only on the local control plane")
    crd = f"{GPUNODES.plural}.{GPUNODES.group}"
    await asyncio.to_thread(cluster.kubectl, "delete", "crd", crd, "--wait=true")
    try:

        async def gone() -> bool:
            try:
                await kube.list(GPUNODES)
            except ApiError as error:
                return error.not_found
            return False

        await wait_for("the GPUNode API to go away", gone)
        for command in (["top"], ["status"], ["snapshot"]):
            failed = await gpupool(kubeconfig, *command)
            assert failed.exit_code == 2, (command, failed.output)
            assert f"the {crd} resource is not installed" in failed.output
            assert "kubectl apply -f crds/" in failed.output
    finally:
        await asyncio.to_thread(cluster.apply_crd_directory, ROOT / "crds")

    async def back() -> bool:
        await kube.list(GPUNODES)
        await kube.list(GPUJOBS)
        return True

    await wait_for("the GPUNode API to come back", back)


def _server_and_context(kubeconfig: Path) -> tuple[str, str]:
    config = yaml.safe_load(kubeconfig.read_text())
    context = config["current-context"]
    cluster = next(c for c in config["contexts"] if c["name"] == context)["context"]["cluster"]
    server = next(c for c in config["clusters"] if c["name"] == cluster)["cluster"]["server"]
    return str(server), str(context)


async def test_a_stopped_api_server_is_named_with_its_context(cluster: Cluster) -> None:
    """On a control plane of its own: while the session's API server was down, another
    cluster on this machine could take its port, and the session would not get it back."""
    if not isinstance(cluster, DevCluster):
        pytest.skip("stops an API server: only with the local control plane")
    down = await asyncio.to_thread(
        DevCluster.start, name=f"gpupool-cli-down-{os.getpid()}", nodes=0
    )
    try:
        server, context = _server_and_context(down.kubeconfig)
        await asyncio.to_thread(down.stop_component, "kube-apiserver")
        for command in (["status"], ["top", "-o", "json"]):
            answer = await gpupool(down.kubeconfig, *command, "--request-timeout", "5s")
            assert answer.exit_code == 2, (command, answer.output)
            text = " ".join(answer.output.split())
            assert f"cannot reach the API server {server}" in text, text
            assert f"(context {context!r})" in text and "connection refused" in text
            assert "Is the cluster up?" in text
            assert "Traceback" not in text and "ClientConnectorError" not in text
        verbose = await gpupool(down.kubeconfig, "status", "-v")
        assert verbose.exit_code == 2 and "Traceback" in verbose.output
    finally:
        await asyncio.to_thread(down.stop)


async def test_a_server_certificate_from_another_ca_is_a_tls_failure(
    kubeconfig: Path, tmp_path: Path
) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    foreign = self_signed(["127.0.0.1"]).cert_pem
    for entry in config["clusters"]:
        entry["cluster"].pop("certificate-authority", None)
        entry["cluster"]["certificate-authority-data"] = base64.b64encode(foreign).decode()
    wrong_ca = tmp_path / "wrong-ca.yaml"
    wrong_ca.write_text(yaml.safe_dump(config))
    server, context = _server_and_context(kubeconfig)

    failed = await gpupool(wrong_ca, "status")
    assert failed.exit_code == 2, failed.output
    text = " ".join(failed.output.split())
    assert f"TLS with the API server {server}" in text and f"(context {context!r})" in text
    assert "the server's certificate is not trusted" in text
    assert "certificate-authority" in text and "Traceback" not in text


async def test_a_revoked_token_says_the_credentials_are_refused(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """The ServiceAccount behind a token is deleted: the API server refuses the token."""
    cluster.kubectl("create", "serviceaccount", "leaver", "-n", namespace)
    account = cluster.service_account_kubeconfig(namespace, "leaver", tmp_path / "leaver.yaml")
    first = await gpupool(account, "status")
    assert first.exit_code == 2 and "forbidden" in first.output  # authenticated, no role
    cluster.kubectl("delete", "serviceaccount", "leaver", "-n", namespace, "--wait=true")

    async def refused() -> Result | None:
        answer = await gpupool(account, "status")
        return answer if "401 Unauthorized" in answer.output else None

    answer = await wait_for("the token to be refused", refused, timeout=30)
    text = " ".join(answer.output.split())
    assert answer.exit_code == 2
    assert "does not accept these credentials (401 Unauthorized)" in text
    assert "expired, were revoked" in text and "kubectl create token" in text


async def test_bad_flags_say_what_is_wrong(kubeconfig: Path) -> None:
    for args, message in (
        (["queue", "--namspace", "x"], "No such option: --namspace"),
        (["queue", "-n", "x", "-A"], "either -n/--namespace or -A/--all-namespaces"),
        (["status", "-o", "xml"], "'xml' is not one of"),
        (["top", "--request-timeout", "soon"], "'soon' is not a duration"),
    ):
        result = await gpupool(kubeconfig, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)


async def test_kubectl_conventions_on_the_real_server(
    cluster: Cluster, kubeconfig: Path, pool: Pool, tmp_path: Path
) -> None:
    """-n, -A, the context's namespace, -o json/yaml/name/wide, --context."""
    await pool.add_nodes(1, 8)
    team, namespace = await pool.add_team("vision", 8)
    await pool.submit(namespace, "huge", gpus=8, workers=3)

    everywhere = await gpupool(kubeconfig, "queue", "-A", "-o", "json")
    assert everywhere.exit_code == 0, everywhere.output
    keys = {(i["namespace"], i["name"]) for i in json.loads(everywhere.stdout)["items"]}
    assert (namespace, "huge") in keys
    named = await gpupool(kubeconfig, "queue", "-n", namespace, "-o", "name")
    assert named.stdout.split() == ["gpujob.gpupool.io/huge"]
    assert (
        "name: huge" in (await gpupool(kubeconfig, "queue", "-n", namespace, "-o", "yaml")).stdout
    )
    wide = await gpupool(kubeconfig, "status", "-n", namespace, "-o", "wide")
    assert wide.exit_code == 0 and team in wide.stdout and "Namespaces" in wide.stdout

    # A context whose namespace is the team's: plain `queue` reads it; --context picks it.
    config = yaml.safe_load(kubeconfig.read_text())
    base = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    config["contexts"].append(
        {"name": "team", "context": {**base["context"], "namespace": namespace}}
    )
    with_team = tmp_path / "contexts.yaml"
    with_team.write_text(yaml.safe_dump(config))
    mine = await gpupool(with_team, "queue", "--context", "team", "-o", "name")
    assert mine.exit_code == 0, mine.output
    assert mine.stdout.split() == ["gpujob.gpupool.io/huge"]
    missing = await gpupool(with_team, "queue", "--context", "nope")
    assert missing.exit_code == 2
    assert "no context named 'nope'" in missing.output and "get-contexts" in missing.output
