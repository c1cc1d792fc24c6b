"""The `gpupool` commands against a real API server: what they show, and their errors.

Each test gets its own pool (kwok GPU nodes labelled `gpupool.io/pool=<id>`, teams and
namespaces; see operator/harness.py) and passes `--node-selector` so the snapshot holds
only that pool's nodes. The commands run through typer's CliRunner in a thread (they
call `asyncio.run` themselves).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from gpupool.cli import app
from gpupool.devcluster import Cluster, DevCluster
from gpupool.k8s import GPUJOBS, GPUNODES, ApiError, KubeClient
from gpupool.planner import Snapshot

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
    assert f"{namespace}/resnet" in queue.stdout and "2×8" in queue.stdout

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
        kubeconfig, "snapshot", "--node-selector", pool.selector, "-o", str(path)
    )
    assert written.exit_code == 0, written.output
    assert "wrote" in written.output

    shown = await asyncio.to_thread(run, "replay", str(path))
    assert shown.exit_code == 0, shown.output
    assert "Admissions" in shown.stdout and f"{namespace}/fits" in shown.stdout
    assert "Unschedulable" in shown.stdout

    raw = await asyncio.to_thread(run, "replay", str(path), "--json")
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
    assert f"GPUJob {namespace}/ghost not found" in ghost.output


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


async def test_rbac_refusals_name_what_may_not_be_listed(
    cluster: Cluster, pool: Pool, reader: tuple[Path, str]
) -> None:
    account, account_namespace = reader
    await pool.add_nodes(1, 8)
    _, namespace = await pool.add_team("vision", 8)
    await pool.submit(namespace, "fits")

    for command in (["status"], ["queue"], ["top"]):
        refused = await gpupool(account, *command)
        assert refused.exit_code == 2, (command, refused.output)
        assert "forbidden: your credentials may not list" in refused.output
        assert "gpupool viewer role" in refused.output

    await asyncio.to_thread(grant_reader, cluster, account_namespace)

    async def allowed() -> Result | None:
        answer = await gpupool(account, "status")
        return answer if answer.exit_code == 0 else None

    await wait_for("the reader role to take effect", allowed, timeout=30)
    for command in (["snapshot"], ["explain", f"{namespace}/fits"]):
        refused = await gpupool(account, *command, "--node-selector", pool.selector)
        assert refused.exit_code == 2, (command, refused.output)
        assert "may not list pods" in refused.output


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
