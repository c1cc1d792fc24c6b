"""The bad-input matrix: what a careless or hostile user can write, on the real API server.

Every case is a manifest and what must come of it, run twice: with the admission webhook
answering and without it (webhook down: only the CRD schema and CEL stand between the
user and the operator). Each case is either *rejected* — the API server's message names
the field — or *handled* — accepted, and the operator says why it will not run it (a
pending reason, a terminal condition, a condition on the TeamQuota, an Event). None may
be harmful: beside the matrix two borrowers run on the GPUs the matrix's team is owed,
and neither may be preempted by any of it; a status someone else writes over theirs is
rewritten; and the operator stays up.

The objects are created with kubectl, as users do (strict field validation: unknown
fields are refused, naming them). The matrix prints one line per case (`-s` shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gpupool.devcluster.cluster import Cluster
from gpupool.k8s import (
    CRDS,
    GPUJOBS,
    GPUNODES,
    JSON_PATCH,
    TEAMQUOTAS,
    ApiError,
    KubeClient,
)
from gpupool.webhook.certs import self_signed

from .harness import WEBHOOK_CONFIGURATIONS, OperatorProcess, Pool, gpupool_webhooks, wait_for

pytestmark = pytest.mark.integration

JSON = dict[str, Any]
TEST_LABEL = "gpupool.io/bad-input-test"
CONTAINERS = [{"name": "train", "image": "train:latest"}]


DEEP = "<nested 1,100 levels deep>"
# Deeper than Python's (and orjson's) encoders go: spliced into the manifest's text.
DEEP_JSON = '{"a":' * 1100 + "{}" + "}" * 1100


def manifest_text(manifest: JSON) -> str:
    return json.dumps(manifest).replace(json.dumps(DEEP), DEEP_JSON)


@dataclass(frozen=True)
class Ctx:
    """Where the matrix's objects go."""

    namespace: str  # team "own"'s namespace, the team the borrowers owe GPUs to
    stray: str  # a namespace no TeamQuota names
    team: str
    lender: str  # the borrowers' team
    label: str


def job(name: str, *, template: JSON | None = None, **spec: Any) -> Callable[[Ctx], JSON]:
    def build(ctx: Ctx) -> JSON:
        body: JSON = {
            "gpusPerWorker": 8,
            "workers": 1,
            "template": template or {"spec": {"containers": CONTAINERS}},
        }
        body.update(spec)
        for key in [key for key, value in body.items() if value is None]:
            del body[key]
        namespace = ctx.stray if name == "stray" else ctx.namespace
        if body.get("team") == "LENDER":
            body["team"] = ctx.lender
        return {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "GPUJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }

    return build


def pod_spec(**fields: Any) -> JSON:
    return {"spec": {"containers": CONTAINERS, **fields}}


def container(**fields: Any) -> JSON:
    return {"spec": {"containers": [{"name": "train", "image": "train:latest", **fields}]}}


def quota(name: str, **spec: Any) -> Callable[[Ctx], JSON]:
    def build(ctx: Ctx) -> JSON:
        body: JSON = {"namespaces": [f"{name}-ns"], "guaranteedGPUs": 1, **spec}
        if body["namespaces"] == ["CLAIM"]:
            body["namespaces"] = [ctx.namespace]
        return {
            "apiVersion": "gpupool.io/v1alpha1",
            "kind": "TeamQuota",
            "metadata": {"name": f"{name}-{ctx.label}", "labels": {TEST_LABEL: ctx.label}},
            "spec": body,
        }

    return build


@dataclass(frozen=True)
class Case:
    """A manifest and what must come of it.

    `field`: what the refusal must name (with and without the webhook). Or, for a case
    the API server alone cannot judge: `webhook` (what the webhook's refusal names) and
    `handled` (what the operator says without the webhook: a pending reason, a Finished
    reason, `InvalidSpec` for an Event, `NamespaceConflict` for the TeamQuotas).
    """

    name: str
    build: Callable[[Ctx], JSON]
    field: str = ""
    webhook: str = ""
    handled: str = ""

    def expected(self, with_webhook: bool) -> tuple[str, str]:
        if self.field:
            return "rejected", self.field
        if with_webhook:
            return "rejected", self.webhook
        return "handled", self.handled


BIG = "x" * (1024 * 1024)
ANNOTATION_300K = "y" * (300 * 1024)

MATRIX: tuple[Case, ...] = (
    # --- nesting, size, count: bounded by the CRD (or refused by the webhook) ----------
    Case(
        "deep-template",
        job("deep", template={"metadata": {"a": DEEP}, **pod_spec()}),
        field='unknown field "spec.template.metadata.a"',
    ),
    Case(
        "deep-container",
        job("deepc", template=container(extra=DEEP)),
        field='unknown field "spec.template.spec.containers[0].extra"',
    ),
    Case(
        "10000-containers",
        job("many", template={"spec": {"containers": CONTAINERS * 10_000}}),
        field="spec.template.spec.containers: Too many: 10000: must have at most 64 items",
    ),
    Case(
        "65-init-containers",
        job("inits", template=pod_spec(initContainers=CONTAINERS * 65)),
        field="spec.template.spec.initContainers: Too many: 65",
    ),
    Case(
        "1MB-template",
        job("huge", template={"metadata": {"annotations": {"big": BIG}}, **pod_spec()}),
        webhook="spec.template: 1024 KiB as JSON",
        handled="InvalidSpec",
    ),
    # --- the pod template: Kubernetes' own schema, plus gpupool's rules ----------------
    Case(
        "typo-imagee",
        job("typo", template={"spec": {"containers": [{"name": "t", "imagee": "x"}]}}),
        field='unknown field "spec.template.spec.containers[0].imagee"',
    ),
    Case(
        "no-image",
        job("noimage", template={"spec": {"containers": [{"name": "t"}]}}),
        field="spec.template.spec.containers[0].image: Required value",
    ),
    Case(
        "env-value-number",
        job("envnum", template=container(env=[{"name": "A", "value": 1}])),
        field="spec.template.spec.containers[0].env[0].value",
    ),
    Case(
        "containers-not-a-list",
        job("notlist", template={"spec": {"containers": "train"}}),
        field="spec.template.spec.containers",
    ),
    Case(
        "label-not-a-string",
        job("labelnum", template={"metadata": {"labels": {"a": 1}}, **pod_spec()}),
        field="spec.template.metadata.labels.a",
    ),
    Case(
        "node-name",
        job("pinned", template=pod_spec(nodeName="gpu-1")),
        field="spec.template.spec.nodeName",
    ),
    Case(
        "gpu-limits",
        job("limits", template=container(resources={"limits": {"nvidia.com/gpu": 8}})),
        field="spec.template.spec.containers[0].resources",
    ),
    Case(
        "checkpoint-address-annotation",
        job(
            "ssrf",
            template={
                "metadata": {"annotations": {"gpupool.io/checkpoint-address": "10.0.0.1:80"}},
                **pod_spec(),
            },
        ),
        field="spec.template.metadata.annotations",
    ),
    Case(
        "no-containers",
        job("empty", template={"spec": {"containers": []}}),
        field="spec.template.spec.containers",
    ),
    Case(
        "300KiB-annotation",
        job("annot", template={"metadata": {"annotations": {"a": ANNOTATION_300K}}, **pod_spec()}),
        webhook="spec.template.metadata.annotations: Too long",
        handled="PodRefused",
    ),
    Case(
        "bad-container-name",
        job("badname", template={"spec": {"containers": [{"name": "Bad_Name", "image": "i"}]}}),
        webhook="spec.template.spec.containers[0].name: Invalid value",
        handled="PodRefused",
    ),
    # --- the GPUJob's own fields -----------------------------------------------------
    Case("zero-gpus", job("zero", gpusPerWorker=0), field="spec.gpusPerWorker"),
    Case("priority-5000", job("prio", priority=5000), field="spec.priority"),
    Case("negative-backoff", job("backoff", backoffLimit=-1), field="spec.backoffLimit"),
    Case(
        "fixed-and-elastic",
        job("both", minWorkers=1, maxWorkers=2),
        field="set either spec.workers",
    ),
    Case(
        "min-above-max",
        job("minmax", workers=None, minWorkers=4, maxWorkers=2),
        field="spec.minWorkers must be less than or equal to spec.maxWorkers",
    ),
    Case(
        "httppost-without-port",
        job("hook", checkpoint={"mode": "httpPost"}),
        field="spec.checkpoint.httpPost",
    ),
    Case(
        "hook-port-70000",
        job("port", checkpoint={"mode": "httpPost", "httpPost": {"port": 70000}}),
        field="spec.checkpoint.httpPost.port",
    ),
    Case(
        "hook-timeout-0",
        job("timeout", checkpoint={"timeoutSeconds": 0}),
        field="spec.checkpoint.timeoutSeconds",
    ),
    Case("team-name-64", job("longteam", team="t" * 64), field="spec.team"),
    Case(
        "65-preferred-nodes",
        job("prefer", placement={"preferredNodes": [f"n{i}" for i in range(65)]}),
        field="spec.placement.preferredNodes",
    ),
    Case(
        "unknown-topology",
        job("topo", placement={"topology": "galaxy"}),
        field="spec.placement.topology",
    ),
    Case("unknown-field", job("unknown", gpus=8), field='unknown field "spec.gpus"'),
    # --- what only other objects can tell: the webhook refuses, the operator explains ---
    Case(
        "no-team",
        job("stray"),
        webhook="spec.team: namespace",
        handled="NoTeamQuota",
    ),
    Case(
        "someone-elses-team",
        job("elsewhere", team="LENDER"),
        webhook="is not one of TeamQuota",
        handled="NamespaceNotInTeam",
    ),
    Case(
        "unknown-priority-class",
        job("pclass", priorityClassName="vip"),
        webhook="spec.priorityClassName: 'vip' is not defined",
        handled="UnknownPriorityClass",
    ),
    Case(
        "larger-than-any-node",
        job("giant", gpusPerWorker=16),
        webhook="spec.gpusPerWorker: 16 GPUs per worker, but the largest node has 8",
        handled="Unschedulable",
    ),
    # --- TeamQuotas ------------------------------------------------------------------
    Case(
        "guarantee-above-max",
        quota("over", guaranteedGPUs=8, maxGPUs=4),
        field="spec.guaranteedGPUs must be less than or equal to spec.maxGPUs",
    ),
    Case("bad-namespace-name", quota("badns", namespaces=["Bad_NS"]), field="spec.namespaces[0]"),
    Case("zero-weight", quota("weight", weight=0), field="spec.weight"),
    Case(
        "utilization-500",
        quota("idle", idleReclaim={"utilizationBelow": 500}),
        field="spec.idleReclaim.utilizationBelow",
    ),
    Case(
        "namespace-claimed-twice",
        quota("grabber", namespaces=["CLAIM"]),
        webhook="already belong to TeamQuota",
        handled="NamespaceConflict",
    ),
)

GPUNODE_STATUS_CASES: tuple[tuple[str, JSON, str], ...] = (
    ("gpunode-negative-count", {"gpuCount": -1}, "status.gpuCount"),
    ("gpunode-utilization-500", {"gpus": [{"index": 0, "utilization": 500}]}, "status.gpus[0]"),
    ("gpunode-healthy-negative", {"healthyGPUs": -3}, "status.healthyGPUs"),
)


# --- running it --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def kubectl_create(cluster: Cluster, manifest: JSON) -> tuple[bool, str]:
    """(created, kubectl's error output) — strict field validation, as kubectl does."""
    completed = subprocess.run(
        [str(cluster.kubectl_binary), "--kubeconfig", str(cluster.kubeconfig), "create", "-f", "-"],
        input=manifest_text(manifest),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return completed.returncode == 0, completed.stderr.strip()


async def handled_reason(kube: KubeClient, pool: Pool, ctx: Ctx, case: Case, body: JSON) -> str:
    """What the operator says about an accepted object ("" while it says nothing yet)."""
    name = body["metadata"]["name"]
    if body["kind"] == "TeamQuota":
        conditions = (await kube.get(TEAMQUOTAS, name)).get("status", {}).get("conditions", [])
        return next(
            (c["type"] for c in conditions if c["type"] == case.handled and c["status"] == "True"),
            "",
        )
    namespace = body["metadata"]["namespace"]
    status = (await kube.get(GPUJOBS, name, namespace)).get("status") or {}
    finished = next((c for c in status.get("conditions", []) if c["type"] == "Finished"), None)
    if finished is not None and finished["status"] == "True":
        return str(finished["reason"])
    if status.get("pendingReason"):
        return str(status["pendingReason"])
    events = await pool.events(namespace, name, case.handled)
    return case.handled if events else ""


@dataclass
class Row:
    case: str
    outcome: str
    detail: str
    expected: tuple[str, str]

    @property
    def ok(self) -> bool:
        kind, what = self.expected
        return self.outcome == kind and what in self.detail


async def start_operator(
    operator: OperatorProcess, kube: KubeClient, pool: Pool, ctx: Ctx, tmp_path: Path, on: bool
) -> str | None:
    """The operator, with its webhook configured when `on`; the configuration's name."""
    if not on:
        operator.start()
        return None
    port = free_port()
    certificate = self_signed(["127.0.0.1"])
    certificate.write(tmp_path / "certs")
    operator.extra_env.update(
        {
            "GPUPOOL_WEBHOOK_PORT": str(port),
            "GPUPOOL_WEBHOOK_HOST": "127.0.0.1",
            "GPUPOOL_WEBHOOK_ADDR": "127.0.0.1",
            "GPUPOOL_WEBHOOK_CERT_DIR": str(tmp_path / "certs"),
        }
    )
    operator.start()
    name = f"gpupool-bad-input-{pool.id}"
    await kube.create(
        WEBHOOK_CONFIGURATIONS,
        gpupool_webhooks(
            name,
            host="127.0.0.1",
            port=port,
            ca=certificate.cert_pem,
            namespaces=[ctx.namespace, ctx.stray],
            labels={TEST_LABEL: ctx.label},
        ),
    )

    async def answering() -> bool:
        # A job in a namespace without a team: refused once the webhook answers.
        body = job("stray")(ctx)
        body["metadata"]["name"] = "probe"
        try:
            await kube.create(GPUJOBS, body, ctx.stray)
        except ApiError as error:
            return "denied the request" in error.message
        await kube.delete(GPUJOBS, "probe", ctx.stray)
        return False

    await wait_for("the webhook to answer", answering, timeout=90, interval=1)
    return name


@pytest.mark.parametrize("with_webhook", [False, True], ids=["webhook-down", "webhook-up"])
@pytest.mark.timeout(600)
async def test_every_bad_input_is_rejected_naming_the_field_or_handled(
    cluster: Cluster,
    kube: KubeClient,
    pool: Pool,
    operator: OperatorProcess,
    tmp_path: Path,
    with_webhook: bool,
) -> None:
    # 2 nodes × 8 GPUs. Team "lend" (guaranteed 0) borrows all 16 for two jobs; team
    # "own" is owed 8 of them: every job of the matrix would have to preempt a borrower.
    await pool.add_nodes(2, gpus=8)
    lender, lend_ns = await pool.add_team("lend", guaranteed=0)
    team, own_ns = await pool.add_team("own", guaranteed=8)
    stray = await pool.add_namespace("stray")
    ctx = Ctx(own_ns, stray, team, lender, pool.id)
    vwc = await start_operator(operator, kube, pool, ctx, tmp_path, with_webhook)
    gpunode = pool.name("gn")
    try:
        for name in ("b1", "b2"):
            await pool.submit(lend_ns, name)
        for name in ("b1", "b2"):
            await pool.wait_phase(lend_ns, name, "Running", timeout=90)

        rows: list[Row] = []
        accepted: list[tuple[Case, JSON]] = []
        for case in MATRIX:
            body = case.build(ctx)
            if body["kind"] == "TeamQuota":
                pool.teams.append(body["metadata"]["name"])
            created, error = await asyncio.to_thread(kubectl_create, cluster, body)
            expected = case.expected(with_webhook)
            if created:
                accepted.append((case, body))
                rows.append(Row(case.name, "handled", "", expected))
            else:
                rows.append(Row(case.name, "rejected", error, expected))

        await kube.create(
            GPUNODES,
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "GPUNode",
                "metadata": {"name": gpunode},
                "spec": {"nodeName": gpunode},
            },
        )
        for name, status, field in GPUNODE_STATUS_CASES:
            try:
                await kube.patch_status(GPUNODES, gpunode, status)
                rows.append(Row(name, "handled", "accepted", ("rejected", field)))
            except ApiError as error:
                rows.append(Row(name, "rejected", error.message, ("rejected", field)))

        # Accepted cases: the operator says why it will not run them.
        for case, body in accepted:
            row = next(row for row in rows if row.case == case.name)

            async def said(case: Case = case, body: JSON = body) -> str:
                return await handled_reason(kube, pool, ctx, case, body)

            with contextlib.suppress(AssertionError):
                row.detail = await wait_for(f"{case.name} handled", said, timeout=60, interval=1)

        # Status is the operator's: an admin's patch over a borrower's is rewritten.
        await kube.patch_status(
            GPUJOBS,
            "b1",
            {"phase": "Succeeded", "preemptions": 99, "lastCheckpoint": {"location": "s3://evil"}},
            lend_ns,
        )

        async def rewritten() -> bool:
            status = (await kube.get(GPUJOBS, "b1", lend_ns))["status"]
            return status["phase"] == "Running" and status.get("preemptions", 0) == 0

        await wait_for("the foreign status patch rewritten", rewritten, timeout=60)
        overwritten = await pool.wait_events(lend_ns, "b1", "StatusOverwritten")
        rows.append(
            Row(
                "foreign-status-patch",
                "handled",
                overwritten[0]["note"],
                ("handled", "status.phase: 'Succeeded'"),
            )
        )

        mode = "webhook up" if with_webhook else "webhook down"
        print(f"\n--- bad-input matrix, {mode}: {len(rows)} cases ---")
        for row in rows:
            mark = "ok " if row.ok else "BAD"
            print(f"{mark} {row.case:32} {row.outcome:8} {row.detail[:150]!r}")
        failed = [row for row in rows if not row.ok]
        assert not failed, failed

        # Nothing of it cost the borrowers anything, and the operator is still up.
        for name in ("b1", "b2"):
            status = (await kube.get(GPUJOBS, name, lend_ns))["status"]
            assert status["phase"] == "Running" and status.get("preemptions", 0) == 0, status
            assert not await pool.events(lend_ns, name, "Preempting")
        assert operator.alive(), operator.tail()
    finally:
        if vwc is not None:
            with contextlib.suppress(ApiError):
                await kube.delete(WEBHOOK_CONFIGURATIONS, vwc)
        with contextlib.suppress(ApiError):
            await kube.delete(GPUNODES, gpunode)


TEMPLATE_SCHEMA = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/template"


@pytest.mark.timeout(300)
async def test_an_object_too_deep_to_decode_is_skipped_and_the_rest_scheduled(
    cluster: Cluster, kube: KubeClient, pool: Pool, operator: OperatorProcess
) -> None:
    """The issue's operator-killer, stored as it once could be: a GPUJob CRD whose
    `spec.template` kept unknown fields (as gpupool's did, and an old CRD still may), and
    a template nested 1,100 levels deep. The operator's watch and its listing after a
    restart both survive it; the job is skipped with an Event naming the field; a job
    beside it runs."""
    await pool.add_nodes(1, gpus=8)
    _, namespace = await pool.add_team("deep", guaranteed=8)
    crd = await kube.get(CRDS, "gpujobs.gpupool.io")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    strict = schema["properties"]["spec"]["properties"]["template"]
    # What gpupool's CRD said before: only the path to the containers was known.
    loose = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "required": ["containers"],
                "properties": {
                    "containers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    }
                },
            }
        },
    }

    async def set_template_schema(value: JSON) -> None:
        patch = [{"op": "replace", "path": TEMPLATE_SCHEMA, "value": value}]
        await kube.patch(CRDS, "gpujobs.gpupool.io", patch, content_type=JSON_PATCH)

    deep = job("deep", template={"metadata": {"a": DEEP}, **pod_spec()})(
        Ctx(namespace, namespace, "", "", pool.id)
    )
    await set_template_schema(loose)
    try:

        async def stored() -> bool:
            created, _ = await asyncio.to_thread(kubectl_create, cluster, deep)
            return created

        await wait_for("the deep GPUJob stored", stored, timeout=60, interval=1)
        operator.start()
        await pool.submit(namespace, "fine", hook=False)
        await pool.wait_phase(namespace, "fine", "Running", timeout=60)
        (skipped,) = await pool.wait_events(namespace, "deep", "InvalidSpec")
        assert "spec.template.metadata.a.a" in skipped["note"]
        assert "nested deeper than 64 levels" in skipped["note"]

        # A restart lists every GPUJob, the deep one included.
        operator.stop()
        operator.start()
        await pool.submit(namespace, "after", hook=False)
        await kube.delete(GPUJOBS, "fine", namespace)
        await pool.wait_phase(namespace, "after", "Running", timeout=60)
        assert operator.alive(), operator.tail()
        assert "has failed" not in operator.tail(400)
    finally:
        with contextlib.suppress(ApiError):
            await kube.delete(GPUJOBS, "deep", namespace)
        await set_template_schema(strict)
