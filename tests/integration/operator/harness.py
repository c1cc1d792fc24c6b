"""What the operator's integration tests share: a pool of fake GPU nodes, teams, jobs, a
checkpoint endpoint, the operator as a subprocess, and bounded waits.

Every test gets its own pool: kwok nodes labelled `gpupool.io/pool=<id>`, and an operator
started with that node selector, so tests never see each other's (or the fixture's)
capacity. Every wait polls with a timeout; every process and object is cleaned up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from gpupool.controller.manifests import LABEL_JOB
from gpupool.k8s import (
    EVENTS,
    GPUJOBS,
    GPUNODES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    TEAMQUOTAS,
    ApiError,
    KubeClient,
    Resource,
)
from gpupool.webhook.certs import self_signed
from gpupool.webhook.handlers import GPUJOBS_WEBHOOK, TEAMQUOTAS_WEBHOOK

JSON = dict[str, Any]
T = TypeVar("T")

DEPLOYMENTS = Resource("apps", "v1", "deployments", True, "Deployment")

POOL_LABEL = "gpupool.io/pool"
WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    False,
    "ValidatingWebhookConfiguration",
)
# Where the API server reaches this machine (kind: the network's gateway).
WEBHOOK_HOST = os.environ.get("GPUPOOL_TEST_WEBHOOK_HOST", "127.0.0.1")
NOT_READY_ANNOTATION = "gpupool.io/fake-not-ready"


async def wait_for(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except ApiError as error:
            if not (error.retryable or error.not_found):
                raise
            last = None
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


HOOK_PORT = 8080


def loopback_cidr(pool_id: str) -> ipaddress.IPv4Network:
    """A /26 of 127.0.0.0/8 for one pool's pods: kwok gives its pods IPs from the node's
    podCIDR, every 127.x.y.z is this machine's, so the hooks reach the pods' own IPs."""
    digest = hashlib.sha256(pool_id.encode()).digest()
    return ipaddress.IPv4Network(f"127.{1 + digest[0] % 254}.{digest[1]}.{digest[2] & 0xC0}/26")


class CheckpointServer:
    """The workers' checkpoint endpoints (httpPost hooks): one server listening on every
    IP of the pool's pod CIDR, at the port of the jobs' spec (`HOOK_PORT`).

    Each POST answers `{"checkpoint": "<prefix>/<pod>/step-<n>"}`, after `delay` seconds,
    and records which address it came to (`calls[i]["_to"]`).
    """

    def __init__(self) -> None:
        self.calls: list[JSON] = []
        self.delay = 0.0
        self.fail = False
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/checkpoint", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()

    async def serve_pods(self, cidr: ipaddress.IPv4Network, port: int = HOOK_PORT) -> None:
        assert self._runner is not None
        for ip in cidr.hosts():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((str(ip), port))
            await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        body["_to"] = sockname[0] if sockname else ""
        self.calls.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            return web.Response(status=500, text="cannot save")
        location = f"s3://ckpt/{body['namespace']}/{body['job']}/step-{len(self.calls)}"
        return web.json_response({"checkpoint": location})


class PodDeleteTrap:
    """An admission webhook that sees a job's first pod DELETE: the exact moment after
    which a crash can no longer ask the pods for anything.

    `on_delete` runs once, inside the API server's admission call (before the pod is
    touched); the DELETE is then refused. The webhook configuration is removed by
    `close()` (a dead webhook would block later deletions; failurePolicy Ignore too).
    """

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        job: str,
        on_delete: Callable[[], Awaitable[None]],
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.job = job
        self.on_delete = on_delete
        self.name = f"gpupool-delete-trap-{uuid.uuid4().hex[:6]}"
        self.sprung = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> PodDeleteTrap:
        certificate = self_signed([WEBHOOK_HOST])
        with tempfile.TemporaryDirectory() as directory:
            cert, key = certificate.write(Path(directory))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_post("/trap", self._review)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("0.0.0.0" if WEBHOOK_HOST != "127.0.0.1" else "127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        await self.kube.create(
            WEBHOOK_CONFIGURATIONS,
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": self.name},
                "webhooks": [
                    {
                        "name": "trap.gpupool.io",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Ignore",
                        "timeoutSeconds": 15,
                        "rules": [
                            {
                                "apiGroups": [""],
                                "apiVersions": ["v1"],
                                "operations": ["DELETE"],
                                "resources": ["pods"],
                                "scope": "Namespaced",
                            }
                        ],
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": self.namespace}
                        },
                        "objectSelector": {"matchLabels": {LABEL_JOB: self.job}},
                        "clientConfig": {
                            "url": f"https://{WEBHOOK_HOST}:{port}/trap",
                            "caBundle": base64.b64encode(certificate.cert_pem).decode(),
                        },
                    }
                ],
            },
        )
        return self

    async def _review(self, request: web.Request) -> web.Response:
        review = await request.json()
        uid = review["request"]["uid"]
        if not self.sprung.is_set():
            self.sprung.set()
            await self.on_delete()
        return web.json_response(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": uid,
                    "allowed": False,
                    "status": {"message": "held by the test's delete trap"},
                },
            }
        )

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(ApiError):
            await self.kube.delete(WEBHOOK_CONFIGURATIONS, self.name)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class OperatorProcess:
    """`gpupool operator` in a subprocess, logging to a file."""

    kubeconfig: str
    node_selector: str
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # A kopf peering name: leader election among the instances that share it.
    peering: str | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "GPUPOOL_NODE_SELECTOR": self.node_selector,
            "GPUPOOL_MIN_RUNTIME_SECONDS": "0",
            "GPUPOOL_TICK_SECONDS": "1",
            "GPUPOOL_DEBOUNCE_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        argv = [
            sys.executable,
            "-c",
            "from gpupool.cli import main; main()",
            "operator",
            *(["--peering", self.peering] if self.peering else ["--standalone"]),
            "--kubeconfig",
            self.kubeconfig,
        ]
        with self.log.open("ab") as out:
            out.write(f"\n===== start {time.strftime('%X')} =====\n".encode())
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Pool:
    """One test's slice of the cluster: nodes, teams, namespaces, jobs."""

    def __init__(self, kube: KubeClient, checkpoints: CheckpointServer) -> None:
        self.kube = kube
        self.id = uuid.uuid4().hex[:6]
        self.pod_cidr = loopback_cidr(self.id)
        self.checkpoints = checkpoints
        self.nodes: list[str] = []
        self.teams: list[str] = []
        self.namespaces: list[str] = []

    @property
    def selector(self) -> str:
        return f"{POOL_LABEL}={self.id}"

    def name(self, base: str) -> str:
        return f"{base}-{self.id}"

    # --- objects --------------------------------------------------------------------------

    async def add_nodes(
        self, count: int, gpus: int = 8, *, rack: str | None = None, prefix: str = "gpu"
    ) -> list[str]:
        names = []
        for _ in range(count):
            name = self.name(f"{prefix}{len(self.nodes)}")
            labels = {POOL_LABEL: self.id, "type": "kwok"}
            if rack is not None:
                labels["gpupool.io/rack"] = rack
            await self.kube.create(NODES, fake_node(name, gpus, labels, str(self.pod_cidr)))
            self.nodes.append(name)
            names.append(name)
        for name in names:
            await wait_for(f"node {name} Ready", lambda n=name: self.node_ready(n))  # type: ignore[misc]
        return names

    async def node_ready(self, name: str) -> bool:
        node = await self.kube.get(NODES, name)
        conditions = (node.get("status") or {}).get("conditions") or ()
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    async def _namespace(self, name: str) -> None:
        """A namespace, once its default ServiceAccount exists (pods need it)."""
        await self.kube.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        self.namespaces.append(name)

        async def account() -> bool:
            await self.kube.get(SERVICE_ACCOUNTS, "default", name)
            return True

        await wait_for(f"the default ServiceAccount of {name}", account)

    async def add_team(
        self, base: str, guaranteed: int, *, max_gpus: int | None = None, **spec: Any
    ) -> tuple[str, str]:
        """A TeamQuota and its namespace; returns (team, namespace)."""
        team = self.name(base)
        namespace = team
        await self._namespace(namespace)
        body: JSON = {"namespaces": [namespace], "guaranteedGPUs": guaranteed, **spec}
        if max_gpus is not None:
            body["maxGPUs"] = max_gpus
        await self.kube.create(
            TEAMQUOTAS,
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "TeamQuota",
                "metadata": {"name": team},
                "spec": body,
            },
        )
        self.teams.append(team)
        return team, namespace

    async def add_namespace(self, base: str) -> str:
        namespace = self.name(base)
        await self._namespace(namespace)
        return namespace

    async def submit(
        self,
        namespace: str,
        name: str,
        *,
        gpus: int = 8,
        workers: int | None = 1,
        hook: bool | str = True,
        hook_timeout: int = 20,
        pod_annotations: dict[str, str] | None = None,
        **spec: Any,
    ) -> JSON:
        template: JSON = {
            "metadata": {"annotations": dict(pod_annotations or {})},
            "spec": {"containers": [{"name": "train", "image": "train:latest"}]},
        }
        body: JSON = {"gpusPerWorker": gpus, "template": template, **spec}
        if workers is not None and "minWorkers" not in spec:
            body["workers"] = workers
        if hook == "signal":
            body["checkpoint"] = {"mode": "signal", "timeoutSeconds": hook_timeout}
        elif hook:
            body["checkpoint"] = {
                "mode": "httpPost",
                "timeoutSeconds": hook_timeout,
                "httpPost": {"port": HOOK_PORT, "path": "/checkpoint"},
            }
        created: JSON = await self.kube.create(
            GPUJOBS,
            {
                "apiVersion": "gpupool.io/v1alpha1",
                "kind": "GPUJob",
                "metadata": {"name": name, "namespace": namespace},
                "spec": body,
            },
            namespace,
        )
        return created

    # --- reading --------------------------------------------------------------------------

    async def job(self, namespace: str, name: str) -> JSON:
        job: JSON = await self.kube.get(GPUJOBS, name, namespace)
        return job

    async def status(self, namespace: str, name: str) -> JSON:
        status: JSON = (await self.job(namespace, name)).get("status") or {}
        return status

    async def phase(self, namespace: str, name: str) -> str:
        return str((await self.status(namespace, name)).get("phase", ""))

    async def wait_phase(
        self, namespace: str, name: str, phase: str, *, timeout: float = 30.0
    ) -> JSON:
        async def probe() -> JSON | None:
            status = await self.status(namespace, name)
            return status if status.get("phase") == phase else None

        return await wait_for(f"{namespace}/{name} {phase}", probe, timeout=timeout)

    async def pods(self, namespace: str | None = None, *, live: bool = True) -> list[JSON]:
        namespaces = [namespace] if namespace else self.namespaces
        found: list[JSON] = []
        for ns in namespaces:
            listing = await self.kube.list(
                PODS, ns, label_selector="app.kubernetes.io/managed-by=gpupool"
            )
            for pod in listing["items"]:
                phase = (pod.get("status") or {}).get("phase")
                if not live or phase not in ("Succeeded", "Failed"):
                    found.append(pod)
        return found

    async def job_pods(self, namespace: str, name: str) -> list[JSON]:
        return [
            pod
            for pod in await self.pods(namespace)
            if any(ref.get("name") == name for ref in pod["metadata"].get("ownerReferences", ()))
        ]

    async def preempted(self, namespace: str, names: list[str], times: int = 1) -> str:
        """Wait until exactly one of `names` was preempted `times` times; its name."""

        async def probe() -> str | None:
            hit = [
                n for n in names if (await self.status(namespace, n)).get("preemptions") == times
            ]
            return hit[0] if len(hit) == 1 else None

        return await wait_for(f"one of {names} preempted", probe)

    async def add_serving(
        self,
        namespace: str,
        name: str,
        *,
        gpus: int,
        replicas: int = 1,
        node: str | None = None,
    ) -> None:
        """An inference Deployment gpupool does not govern: kube-scheduler places its pods
        on this pool's nodes (on `node`, when given), as it would in any cluster."""
        labels = {"app": name}
        pod_spec: JSON = {"nodeSelector": {POOL_LABEL: self.id}}
        if node is not None:
            field = {"key": "metadata.name", "operator": "In", "values": [node]}
            term = {"matchFields": [field]}
            pod_spec["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
                }
            }
        pod_spec |= {
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
            "containers": [
                {
                    "name": "serve",
                    "image": "vllm:latest",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        }
        await self.kube.create(
            DEPLOYMENTS,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": pod_spec},
                },
            },
            namespace,
        )

    async def running_pods_on_nodes(self) -> list[JSON]:
        """Every live pod bound to one of this pool's nodes, whoever created it."""
        found: list[JSON] = []
        for node in self.nodes:
            listing = await self.kube.list(PODS, field_selector=f"spec.nodeName={node}")
            for pod in listing["items"]:
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    found.append(pod)
        return found

    async def gpus_by_node(self) -> dict[str, int]:
        """GPUs requested by every live pod on the pool's nodes, gpupool's or not (what
        must never exceed capacity)."""
        held: dict[str, int] = {}
        for pod in await self.running_pods_on_nodes():
            node = pod["spec"].get("nodeName")
            gpus = sum(
                int((c.get("resources") or {}).get("limits", {}).get("nvidia.com/gpu", 0))
                for c in pod["spec"]["containers"]
            )
            held[node] = held.get(node, 0) + gpus
        return held

    async def events(self, namespace: str, name: str, reason: str | None = None) -> list[JSON]:
        listing = await self.kube.list(EVENTS, namespace)
        return [
            event
            for event in listing["items"]
            if event.get("regarding", {}).get("name") == name
            and (reason is None or event.get("reason") == reason)
        ]

    async def wait_events(
        self, namespace: str, name: str, reason: str, *, containing: str = ""
    ) -> list[JSON]:
        """Events are posted in the background: wait for one whose note has `containing`."""

        async def probe() -> list[JSON] | None:
            found = await self.events(namespace, name, reason)
            return found if any(containing in e.get("note", "") for e in found) else None

        return await wait_for(f"a {reason} event of {name}", probe)

    async def set_gpunode(
        self,
        node: str,
        gpus: int,
        *,
        users: dict[int, str],
        utilization: float,
        unhealthy: dict[int, str] | None = None,
        checkpoints: list[JSON] | None = None,
    ) -> None:
        """Write a GPUNode as the node's agent would (GPU index -> "namespace/pod"; the
        checkpoints running pods reported, as `status.checkpoints` entries)."""
        devices = []
        for index in range(gpus):
            device: JSON = {
                "index": index,
                "healthy": index not in (unhealthy or {}),
                "healthReason": (unhealthy or {}).get(index, ""),
                "utilization": utilization,
                "utilization1m": utilization,
                "utilization5m": utilization,
                "utilization15m": utilization,
            }
            if index in users:
                namespace, _, pod = users[index].partition("/")
                device["pod"] = {"namespace": namespace, "name": pod}
            devices.append(device)
        status = {
            "gpuCount": gpus,
            "reporting": True,
            "backend": "fake",
            "gpus": devices,
            "checkpoints": checkpoints or [],
        }
        try:
            await self.kube.get(GPUNODES, node)
        except ApiError as error:
            if not error.not_found:
                raise
            await self.kube.create(
                GPUNODES,
                {
                    "apiVersion": "gpupool.io/v1alpha1",
                    "kind": "GPUNode",
                    "metadata": {"name": node},
                    "spec": {"nodeName": node},
                },
            )
        await self.kube.patch_status(GPUNODES, node, status)

    async def mark_not_ready(self, node: str) -> None:
        """Make kwok report the node NotReady (the devcluster's stage reacts to this)."""
        await self.kube.patch(
            NODES, node, {"metadata": {"annotations": {NOT_READY_ANNOTATION: "true"}}}
        )
        await wait_for(f"node {node} NotReady", lambda: self._not_ready(node), timeout=30)

    async def _not_ready(self, node: str) -> bool:
        return not await self.node_ready(node)

    # --- clean-up -------------------------------------------------------------------------

    async def cleanup(self) -> None:
        for namespace in self.namespaces:
            with contextlib.suppress(ApiError):
                listing = await self.kube.list(GPUJOBS, namespace)
                for job in listing["items"]:
                    await self.kube.delete(GPUJOBS, job["metadata"]["name"], namespace)
                pods = await self.kube.list(PODS, namespace)
                for pod in pods["items"]:
                    await self.kube.delete(
                        PODS, pod["metadata"]["name"], namespace, grace_period_seconds=0
                    )
            with contextlib.suppress(ApiError):
                await self.kube.delete(NAMESPACES, namespace)
        for team in self.teams:
            with contextlib.suppress(ApiError):
                await self.kube.delete(TEAMQUOTAS, team)
        for node in self.nodes:
            with contextlib.suppress(ApiError):
                await self.kube.delete(GPUNODES, node)
            with contextlib.suppress(ApiError):
                await self.kube.delete(NODES, node)


def fake_node(name: str, gpus: int, labels: dict[str, str], pod_cidr: str) -> JSON:
    """A kwok-managed node advertising `gpus` nvidia.com/gpu, its pods' IPs in `pod_cidr`."""
    capacity = {"nvidia.com/gpu": str(gpus), "cpu": "96", "memory": "1Ti", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {
            "podCIDR": pod_cidr,
            "taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}],
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def env_of(pod: JSON) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0].get("env", ())}


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)[:4000]


class CapacityMonitor:
    """Samples the GPUs held on every node in the background: none may ever be over-booked."""

    def __init__(self, pool: Pool, capacity: int) -> None:
        self.pool = pool
        self.capacity = capacity
        self.worst: dict[str, int] = {}
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CapacityMonitor:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.check()

    async def _sample(self) -> None:
        while True:
            with contextlib.suppress(ApiError):
                for node, gpus in (await self.pool.gpus_by_node()).items():
                    self.worst[node] = max(self.worst.get(node, 0), gpus)
                self.samples += 1
            await asyncio.sleep(0.2)

    def check(self) -> None:
        over = {node: gpus for node, gpus in self.worst.items() if gpus > self.capacity}
        assert not over, f"GPUs double-booked (capacity {self.capacity}/node): {over}"


def gpupool_webhooks(
    name: str, *, host: str, port: int, ca: bytes, namespaces: list[str], labels: dict[str, str]
) -> JSON:
    """The chart's two validating webhooks, pointed at `host:port` and scoped to a test's
    objects: GPUJobs in `namespaces`, TeamQuotas carrying `labels`."""

    def webhook(handler: str, plural: str, scope: str) -> JSON:
        entry: JSON = {
            "name": f"{handler}.gpupool.io",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "rules": [
                {
                    "apiGroups": ["gpupool.io"],
                    "apiVersions": ["v1alpha1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": [plural],
                    "scope": scope,
                }
            ],
            "clientConfig": {
                "url": f"https://{host}:{port}/{handler}",
                "caBundle": base64.b64encode(ca).decode(),
            },
        }
        if scope == "Namespaced":
            entry["namespaceSelector"] = {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
                ]
            }
        else:
            entry["objectSelector"] = {"matchLabels": labels}
        return entry

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            webhook(GPUJOBS_WEBHOOK, "gpujobs", "Namespaced"),
            webhook(TEAMQUOTAS_WEBHOOK, "teamquotas", "Cluster"),
        ],
    }
