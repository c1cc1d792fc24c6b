"""`gpupool bench e2e`: the operator end to end on a real API server with fake GPU nodes.

1. 500 kwok nodes × 8 GPUs; 4,000 single-GPU GPUJobs of team `batch` (guaranteed 2,000,
   so it borrows the other 2,000) created at once → seconds until all are Running.
2. Team `prod` (guaranteed 2,000) submits 2,000 jobs → 2,000 batch jobs are checkpointed
   (httpPost hooks that answer at once) and requeued → seconds until all prod jobs run.
3. 4,000 more pending jobs (10,000 GPUJobs in all) → the operator's resident memory.

With `--foreign-pods N`, N single-GPU pods that did not come through gpupool (an
inference fleet, in a namespace of no team) are bound round-robin across the nodes
before the clock starts, and ceil(N / GPUs per node) more nodes carry them, so the jobs
have the same free capacity as without them: the difference is what counting every
other GPU pod costs the operator.

Goals: < 60 s for each phase, < 300 MB RSS. The operator runs as a subprocess
(`gpupool operator --standalone`), restricted to the benchmark's nodes by label. The
clock of phase 1 starts once every fake node is Ready (kwok brings 500 nodes up in tens
of seconds on a small machine: that is not scheduling); phases are timed by watching
the GPUJobs, not by listing them over and over (which would load the API server the
operator is measured on).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import typer
from prometheus_client.parser import text_string_to_metric_families

from gpupool.bench.apiserver import phase_writes, write_counts
from gpupool.bench.concurrency import bounded
from gpupool.bench.phases import Phases
from gpupool.k8s import GPUJOBS, NAMESPACES, NODES, PODS, TEAMQUOTAS, ApiError, KubeClient
from gpupool.progress import Steps, following

JSON = dict[str, Any]
POOL_LABEL = "gpupool.io/pool"


@dataclass
class Figures:
    nodes: int
    gpus_per_node: int
    jobs: int
    reclaim_jobs: int
    # Not part of the goals: kwok bringing the fake nodes up, before the clock starts.
    seconds_until_nodes_ready: float | None = None
    seconds_until_all_running: float | None = None
    seconds_until_reclaimed_jobs_run: float | None = None
    # Per phase: seconds until the client had created every job, and until half and 90 %
    # of them had been Running.
    timeline: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # Per phase (and for the baseline): the writes the API server served meanwhile, in
    # all, per second, and the largest by resource (its apiserver_request_total).
    api_writes: dict[str, dict[str, float]] = field(default_factory=dict)
    preempted: int = 0
    # The evicted jobs, and how many of them have the checkpoint their hook returned.
    hook_outcomes: dict[str, int] = field(default_factory=dict)
    # The operator's status writes up to the end of phase 2, by object/class.
    status_writes: dict[str, int] = field(default_factory=dict)
    rss_mb_with_jobs: float | None = None
    total_jobs: int = 0
    foreign_pods: int = 0
    # The floor of phase 1 here: as many worker pods created by a client directly, no
    # operator running (gpupool.bench.baseline).
    seconds_until_pods_alone_run: float | None = None
    goals: dict[str, bool] = field(default_factory=dict)


def _node(name: str, gpus: int, pool: str) -> JSON:
    capacity = {"nvidia.com/gpu": str(gpus), "cpu": "96", "memory": "1Ti", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {POOL_LABEL: pool, "type": "kwok"},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {
            "taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def _job(name: str, namespace: str) -> JSON:
    return {
        "apiVersion": "gpupool.io/v1alpha1",
        "kind": "GPUJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "gpusPerWorker": 1,
            "workers": 1,
            "checkpoint": {
                "mode": "httpPost",
                "timeoutSeconds": 30,
                "httpPost": {"port": 8080, "path": "/checkpoint"},
            },
            "template": {
                "spec": {"containers": [{"name": "train", "image": "train:latest"}]},
            },
        },
    }


def _foreign_pod(name: str, namespace: str, node: str) -> JSON:
    """A single-GPU inference pod gpupool did not create, already bound to `node`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "serving"}},
        "spec": {
            "nodeName": node,
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
            "containers": [
                {
                    "name": "serve",
                    "image": "serve:latest",
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
        },
    }


async def _start_foreign_pods(
    client: KubeClient, namespace: str, nodes: list[str], count: int, timeout: float
) -> None:
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    await bounded(
        64,
        [
            functools.partial(
                client.create,
                PODS,
                _foreign_pod(f"serve-{i:05d}", namespace, nodes[i % len(nodes)]),
                namespace,
            )
            for i in range(count)
        ],
    )
    phases = Phases(client, namespace, PODS)
    follower = asyncio.create_task(phases.follow())
    try:
        if await phases.wait_running(count, timeout, time.monotonic()) is None:
            raise RuntimeError(f"{count} foreign pods were not Running within {timeout:.0f}s")
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


def _ready(node: JSON) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def _wait_nodes_ready(
    client: KubeClient, pool: str, count: int, timeout: float
) -> float | None:
    """Seconds until all `count` nodes of the pool are Ready; None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            listing = await client.list(NODES, label_selector=f"{POOL_LABEL}={pool}")
        except ApiError:
            listing = {}
        if sum(1 for node in listing.get("items") or () if _ready(node)) >= count:
            return time.monotonic() - started
        await asyncio.sleep(1.0)
    return None


async def _hook_outcomes(client: KubeClient, namespace: str) -> dict[str, int]:
    """How the evicted jobs' checkpoints went, from their status."""
    listing = await client.list(GPUJOBS, namespace)
    outcomes = {"preempted_jobs": 0, "checkpoint_from_hook": 0}
    for job in listing.get("items") or ():
        status = job.get("status") or {}
        if status.get("preemptions"):
            outcomes["preempted_jobs"] += 1
            if (status.get("lastCheckpoint") or {}).get("source") == "hook":
                outcomes["checkpoint_from_hook"] += 1
    return outcomes


def _timeline(
    jobs: Phases, pods: Phases, count: int, started: float, submitted: float
) -> dict[str, float | None]:
    def at(phases: Phases, share: float) -> float | None:
        seconds = phases.seconds_until_share_ran(share, count, started)
        return None if seconds is None else round(seconds, 1)

    return {
        "submitted": round(submitted, 1),
        "half_pods_running": at(pods, 0.5),
        "all_pods_running": at(pods, 1.0),
        "half_running": at(jobs, 0.5),
        "p90_running": at(jobs, 0.9),
    }


async def _writes(client: KubeClient) -> Counter[str] | None:
    """The API server's write counters; None where its /metrics may not be read."""
    try:
        return await write_counts(client)
    except ApiError:
        return None


async def _count_phase(
    client: KubeClient,
    figures: Figures,
    phase: str,
    before: Counter[str] | None,
    seconds: float | None,
) -> Counter[str] | None:
    """Record the phase's writes (when /metrics is readable); the counters now."""
    after = await _writes(client)
    if before is not None and after is not None:
        figures.api_writes[phase] = phase_writes(before, after, seconds)
    return after


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _status_writes(port: int) -> dict[str, int]:
    """gpupool_status_writes_total from the operator's metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gpupool_status_writes_total":
                counts[f"{sample.labels['kind']}/{sample.labels['class']}"] = int(sample.value)
    return counts


def _stop(operator: subprocess.Popen[bytes]) -> None:
    if operator.poll() is None:
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(timeout=20)


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class _Hooks:
    """The batch jobs' checkpoint endpoint: answers at once.

    A threaded HTTP server of its own, so the benchmark's polling (parsing thousands of
    GPUJobs) never keeps a hook waiting.
    """

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with hooks._lock:
                    hooks.calls += 1
                    count = hooks.calls
                reply = json.dumps({"checkpoint": f"s3://bench/{body.get('pod')}/{count}"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply.encode())

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


async def run_e2e(
    kubeconfig: str,
    *,
    nodes: int,
    gpus_per_node: int,
    jobs: int,
    reclaim_jobs: int,
    total_jobs: int,
    timeout: float,
    log: Path,
    baseline: bool = True,
    foreign_pods: int = 0,
) -> Figures:
    nodes += -(-foreign_pods // gpus_per_node)
    figures = Figures(
        nodes, gpus_per_node, jobs, reclaim_jobs, total_jobs=total_jobs, foreign_pods=foreign_pods
    )
    run = uuid.uuid4().hex[:6]
    pool = f"bench-{run}"
    batch, prod, base = f"batch-{run}", f"prod-{run}", f"baseline-{run}"
    serving = f"serving-{run}"
    hooks = _Hooks()
    hooks.start()
    operator: subprocess.Popen[bytes] | None = None
    followers: list[asyncio.Task[None]] = []
    steps = Steps()
    async with KubeClient.from_kubeconfig(kubeconfig) as client:
        try:
            node_names = [f"{pool}-{i:04d}" for i in range(nodes)]
            with steps.step(f"{nodes} fake GPU nodes created and Ready"):
                await bounded(
                    32,
                    [
                        functools.partial(client.create, NODES, _node(name, gpus_per_node, pool))
                        for name in node_names
                    ],
                )
                figures.seconds_until_nodes_ready = await _wait_nodes_ready(
                    client, pool, nodes, timeout
                )
            if figures.seconds_until_nodes_ready is None:
                raise RuntimeError(f"the {nodes} fake nodes were not Ready within {timeout:.0f}s")
            if foreign_pods:
                await _start_foreign_pods(client, serving, node_names, foreign_pods, timeout)
            for team in (batch, prod):
                await client.create(
                    NAMESPACES,
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team}},
                )
                await client.create(
                    TEAMQUOTAS,
                    {
                        "apiVersion": "gpupool.io/v1alpha1",
                        "kind": "TeamQuota",
                        "metadata": {"name": team},
                        "spec": {"namespaces": [team], "guaranteedGPUs": reclaim_jobs},
                    },
                )
            metrics_port = _free_port()
            env = {
                **os.environ,
                "KUBECONFIG": kubeconfig,
                "GPUPOOL_NODE_SELECTOR": f"{POOL_LABEL}={pool}",
                "GPUPOOL_MIN_RUNTIME_SECONDS": "0",
                "GPUPOOL_MAX_PREEMPTORS_PER_CYCLE": str(max(32, reclaim_jobs)),
                "GPUPOOL_METRICS_PORT": str(metrics_port),
                "GPUPOOL_METRICS_ADDR": "127.0.0.1",
                # 2,000 borrowers' hooks, one server: kwok pods' IPs have nobody behind them.
                "GPUPOOL_CHECKPOINT_ADDRESS": f"127.0.0.1:{hooks.port}",
            }
            with log.open("ab") as out:
                operator = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        "from gpupool.cli import main; main()",
                        "operator",
                        "--standalone",
                    ],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            await asyncio.sleep(3.0)

            batch_phases, prod_phases = Phases(client, batch), Phases(client, prod)
            # The worker pods too: when they ran tells the control plane's share of a
            # phase from the operator's (reporting Running in the GPUJob's status).
            batch_pods, prod_pods = Phases(client, batch, PODS), Phases(client, prod, PODS)
            followers += [
                asyncio.create_task(phases.follow())
                for phases in (batch_phases, prod_phases, batch_pods, prod_pods)
            ]

            # Phase 1: everyone at once.
            writes = await _writes(client)
            started = time.monotonic()
            with steps.step(f"phase 1: {jobs} jobs submitted at once, running", jobs) as step:
                async with following(step, batch_phases.running):
                    await bounded(
                        64,
                        [
                            functools.partial(
                                client.create, GPUJOBS, _job(f"j{i:05d}", batch), batch
                            )
                            for i in range(jobs)
                        ],
                    )
                    submitted = time.monotonic() - started
                    figures.seconds_until_all_running = await batch_phases.wait_running(
                        jobs, timeout, started
                    )
            figures.timeline["phase1"] = _timeline(
                batch_phases, batch_pods, jobs, started, submitted
            )
            writes = await _count_phase(
                client, figures, "phase1", writes, figures.seconds_until_all_running
            )

            # Phase 2: the owner claims its guarantee back.
            started = time.monotonic()
            with steps.step(
                f"phase 2: the owner's {reclaim_jobs} jobs reclaim its guarantee", reclaim_jobs
            ) as step:
                async with following(step, prod_phases.running):
                    await bounded(
                        64,
                        [
                            functools.partial(client.create, GPUJOBS, _job(f"p{i:05d}", prod), prod)
                            for i in range(reclaim_jobs)
                        ],
                    )
                    submitted = time.monotonic() - started
                    figures.seconds_until_reclaimed_jobs_run = await prod_phases.wait_running(
                        reclaim_jobs, timeout, started
                    )
            figures.timeline["phase2"] = _timeline(
                prod_phases, prod_pods, reclaim_jobs, started, submitted
            )
            await _count_phase(
                client, figures, "phase2", writes, figures.seconds_until_reclaimed_jobs_run
            )
            figures.preempted = hooks.calls
            with contextlib.suppress(OSError):
                figures.status_writes = await asyncio.to_thread(_status_writes, metrics_port)
            figures.hook_outcomes = await _hook_outcomes(client, batch)

            # Phase 3: memory with many GPUJobs (the rest stay pending).
            extra = max(0, total_jobs - jobs - reclaim_jobs)
            with steps.step(f"phase 3: the operator's memory with {total_jobs} GPUJobs"):
                await bounded(
                    64,
                    [
                        functools.partial(client.create, GPUJOBS, _job(f"x{i:05d}", batch), batch)
                        for i in range(extra)
                    ],
                )
                await asyncio.sleep(15.0)
                figures.rss_mb_with_jobs = _rss_mb(operator.pid)
            _stop(operator)

            # The control plane alone, for comparison with phase 1.
            if baseline:
                from gpupool.api import GPUJobSpec
                from gpupool.bench.baseline import pods_only

                writes = await _writes(client)
                with steps.step(f"baseline: {jobs} pods created without the operator"):
                    figures.seconds_until_pods_alone_run = await pods_only(
                        client,
                        GPUJobSpec.model_validate(_job("b", batch)["spec"]),
                        namespace=base,
                        nodes=node_names,
                        count=jobs,
                        timeout=timeout,
                    )
                await _count_phase(
                    client, figures, "pods_alone", writes, figures.seconds_until_pods_alone_run
                )
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            if operator is not None:
                _stop(operator)
            for team in (batch, prod):
                with contextlib.suppress(ApiError):
                    await client.delete(TEAMQUOTAS, team)
                with contextlib.suppress(ApiError):
                    await client.delete(NAMESPACES, team)
            for namespace in (base, serving):
                with contextlib.suppress(ApiError):
                    await client.delete(NAMESPACES, namespace)
            await bounded(
                32,
                [functools.partial(client.delete, NODES, f"{pool}-{i:04d}") for i in range(nodes)],
            )
            hooks.stop()
    figures.goals = {
        "all_running_under_60s": (figures.seconds_until_all_running or 1e9) < 60,
        "reclaimed_under_60s": (figures.seconds_until_reclaimed_jobs_run or 1e9) < 60,
        "rss_under_300mb": (figures.rss_mb_with_jobs or 1e9) < 300,
    }
    return figures


def e2e_bench(
    kubeconfig: str = typer.Option(
        "", help="Cluster to run on ('' = $KUBECONFIG, else a local control plane started here)."
    ),
    nodes: int = typer.Option(500, help="Fake GPU nodes."),
    gpus_per_node: int = typer.Option(8),
    jobs: int = typer.Option(4000, help="Single-GPU jobs created at once (phase 1)."),
    reclaim_jobs: int = typer.Option(2000, help="The owning team's jobs (phase 2)."),
    total_jobs: int = typer.Option(10000, help="GPUJobs in all for the memory figure."),
    timeout: float = typer.Option(300, help="Give up on a phase after this many seconds."),
    baseline: bool = typer.Option(
        True, help="Also time as many pods created without the operator (the floor)."
    ),
    foreign_pods: int = typer.Option(
        0,
        help="Single-GPU pods outside gpupool bound across the nodes first (more nodes carry "
        "them, so the jobs' capacity is the same).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The operator end to end: admission burst, reclaim burst, memory."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "")
    log = Path(tempfile.gettempdir()) / f"gpupool-bench-e2e-{os.getpid()}.log"
    with contextlib.ExitStack() as stack:
        if not path:
            from gpupool.devcluster import DevCluster, binaries
            from gpupool.devcluster.binaries import REPO_ROOT

            binaries.ensure()
            with Steps().step("starting a local control plane"):
                cluster = stack.enter_context(
                    DevCluster.start(
                        name=f"gpupool-bench-{os.getpid()}", nodes=0, crds=REPO_ROOT / "crds"
                    )
                )
            path = str(cluster.kubeconfig)
        figures = asyncio.run(
            run_e2e(
                path,
                nodes=nodes,
                gpus_per_node=gpus_per_node,
                jobs=jobs,
                reclaim_jobs=reclaim_jobs,
                total_jobs=total_jobs,
                timeout=timeout,
                log=log,
                baseline=baseline,
                foreign_pods=foreign_pods,
            )
        )
    if as_json:
        typer.echo(json.dumps(asdict(figures) | {"operator_log": str(log)}, indent=2))
    else:
        for key, value in asdict(figures).items():
            typer.echo(f"{key:34} {value}")
        typer.echo(f"{'operator_log':34} {log}")
