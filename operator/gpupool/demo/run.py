"""Run the demo's story on a cluster: the operator and the fake node agents as
subprocesses, the story's steps driven by what the cluster reports (never by sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live

from gpupool.controller.manifests import LABEL_JOB
from gpupool.demo.board import JSON, Board
from gpupool.demo.scenario import (
    CHAT,
    GATEWAY,
    RESEARCH_JOBS,
    RESNET,
    TEAMS,
    TRAIN_1,
    TRAIN_4,
    JobSpec,
    phase,
)
from gpupool.k8s import (
    EVENTS,
    GPUJOBS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    TEAMQUOTAS,
    ApiError,
    KubeClient,
    Resource,
)

DEPLOYMENTS = Resource("apps", "v1", "deployments", True, "Deployment")
STEP_TIMEOUT = 150.0
# The operator's Events that tell the story: preempted jobs requeued, and resumed.
NARRATED = ("Requeued", "Resumed")
POLL_SECONDS = 1.0

OPERATOR_ENV = {
    "GPUPOOL_MIN_RUNTIME_SECONDS": "5",
    "GPUPOOL_TICK_SECONDS": "1",
    "GPUPOOL_DEBOUNCE_SECONDS": "0.2",
    "PYTHONUNBUFFERED": "1",
}


class DemoFailed(RuntimeError):
    """A step of the story did not happen in time."""


@dataclass
class Summary:
    seconds: float = 0.0
    borrowed_gpus: int = 0
    reclaim_seconds: float = 0.0
    idle_reclaim_seconds: float = 0.0
    requeued: list[str] = field(default_factory=list)
    resumed_from: dict[str, str] = field(default_factory=dict)
    # Where kube-scheduler put the Deployment outside gpupool, and the most GPUs any
    # node had requested by all its pods (gpupool's and the others) at any refresh.
    unmanaged_node: str = ""
    peak_node_load: dict[str, int] = field(default_factory=dict)
    capacity: int = 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from gpupool.cli import main; main()", *args]


@contextlib.contextmanager
def components(kubeconfig: Path, nodes: list[str], logs: Path) -> Iterator[None]:
    """The operator and one process of fake agents for all nodes, ended on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), **OPERATOR_ENV}
    agent_args = ["agent", "--fake", "--kubeconfig", str(kubeconfig), "--metrics-port", "0"]
    agent_args += ["--publish-interval", "2"]
    for node in nodes:
        agent_args += ["--node", node]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in (
            ("operator", _cli("operator", "--standalone", "--kubeconfig", str(kubeconfig))),
            ("agents", _cli(*agent_args)),
        ):
            with (logs / f"{name}.log").open("ab") as out:
                processes.append(
                    subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


class Demo:
    def __init__(self, client: KubeClient, board: Board, console: Console) -> None:
        self.client = client
        self.board = board
        self.console = console
        self.jobs: dict[str, JSON] = {}
        self.live: Live | None = None
        self.seen_events: set[str] = set()
        self.summary = Summary()

    # -- the cluster's view ----------------------------------------------------------

    async def refresh(self) -> None:
        teams = await self.client.list(TEAMQUOTAS)
        names = {team.name for team in TEAMS}
        self.board.teams = [t for t in teams.get("items") or () if t["metadata"]["name"] in names]
        jobs: list[JSON] = []
        for team in TEAMS:
            jobs.extend((await self.client.list(GPUJOBS, team.namespace)).get("items") or ())
        self.board.jobs = jobs
        self.jobs = {f"{j['metadata']['namespace']}/{j['metadata']['name']}": j for j in jobs}
        await self.watch_gpus()
        await self.narrate()
        if self.live is not None:
            self.live.update(self.board.render())

    async def watch_gpus(self) -> None:
        """Every live pod's GPUs per node, whoever created it: the load must never pass
        a node's capacity. Pods outside gpupool are listed on the board."""
        load: dict[str, int] = {}
        unmanaged: list[tuple[str, str, int]] = []
        for pod in (await self.client.list(PODS)).get("items") or ():
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            gpus = sum(
                int(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0))
                for c in pod["spec"]["containers"]
            )
            node = str(pod["spec"].get("nodeName") or "")
            if not gpus:
                continue
            if node:
                load[node] = load.get(node, 0) + gpus
            labels = pod["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/managed-by") != "gpupool":
                unmanaged.append(
                    (f"{pod['metadata']['namespace']}/{pod['metadata']['name']}", node, gpus)
                )
                if node:
                    self.summary.unmanaged_node = node
        peak = self.summary.peak_node_load
        for node, gpus in load.items():
            peak[node] = max(peak.get(node, 0), gpus)
        self.board.unmanaged = sorted(unmanaged)

    async def narrate(self) -> None:
        """Tell each new Requeued / Resumed Event of the operator's, in order."""
        fresh: list[JSON] = []
        for team in TEAMS:
            listing = await self.client.list(EVENTS, team.namespace)
            for event in listing.get("items") or ():
                uid = event["metadata"]["uid"]
                if event.get("reason") in NARRATED and uid not in self.seen_events:
                    self.seen_events.add(uid)
                    fresh.append(event)
        fresh.sort(key=lambda e: str(e.get("eventTime") or e["metadata"]["creationTimestamp"]))
        for event in fresh:
            name = (event.get("regarding") or {}).get("name", "?")
            note = str(event.get("note") or "")
            if event["reason"] == "Requeued":
                self.summary.requeued.append(f"{name}: {note}")
            self.say(f"{name} {event['reason'].lower()}: {note}")

    def job(self, spec: JobSpec) -> JSON:
        return self.jobs.get(spec.key, {})

    async def until(
        self, what: str, done: Callable[[], bool], timeout: float = STEP_TIMEOUT
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(ApiError):
                await self.refresh()
                if done():
                    return
            if time.monotonic() > deadline:
                raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(POLL_SECONDS)

    def say(self, line: str) -> None:
        stamped = self.board.say(line)
        if self.live is None:
            self.console.print(stamped, highlight=False)
        else:
            self.live.update(self.board.render())

    # -- set-up ----------------------------------------------------------------------

    async def create_teams(self) -> None:
        for team in TEAMS:
            await self.client.create(NAMESPACES, team.namespace_manifest())
            await self.client.create(TEAMQUOTAS, team.manifest())

        async def accounts() -> bool:
            for team in TEAMS:
                await self.client.get(SERVICE_ACCOUNTS, "default", team.namespace)
            return True

        await self._poll("the namespaces' default ServiceAccounts", accounts)

    async def _poll(self, what: str, probe: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(ApiError):
                if await probe():
                    return
            await asyncio.sleep(0.5)
        raise DemoFailed(f"timed out waiting for {what}")

    async def submit(self, *specs: JobSpec) -> None:
        for spec in specs:
            await self.client.create(GPUJOBS, spec.manifest(), spec.team.namespace)

    async def resume_from(self, spec: JobSpec) -> str:
        """GPUPOOL_RESUME_FROM as the operator set it on the job's running pod."""
        pods = await self.client.list(
            PODS, spec.team.namespace, label_selector=f"{LABEL_JOB}={spec.name}"
        )
        for pod in pods.get("items") or ():
            if pod["metadata"].get("deletionTimestamp"):
                continue
            for container in pod["spec"]["containers"]:
                for variable in container.get("env") or ():
                    if variable.get("name") == "GPUPOOL_RESUME_FROM":
                        return str(variable.get("value", ""))
        return ""

    # -- the story -------------------------------------------------------------------

    async def start_gateway(self) -> None:
        """The platform team's inference Deployment, placed by kube-scheduler."""
        await self.client.create(NAMESPACES, GATEWAY.namespace_manifest())

        async def account() -> bool:
            await self.client.get(SERVICE_ACCOUNTS, "default", GATEWAY.namespace)
            return True

        await self._poll("the platform namespace's default ServiceAccount", account)
        await self.client.create(DEPLOYMENTS, GATEWAY.manifest(), GATEWAY.namespace)
        await self.until("llm-gateway to be placed", lambda: bool(self.summary.unmanaged_node))
        self.say(
            f"{GATEWAY.namespace}/{GATEWAY.name}, an inference Deployment outside gpupool, "
            f"holds {GATEWAY.gpus} GPUs on {self.summary.unmanaged_node} (placed by "
            "kube-scheduler)"
        )

    async def play(self) -> Summary:
        summary = self.summary
        started = time.monotonic()
        summary.capacity = await node_capacity(self.client)
        await self.start_gateway()
        await self.create_teams()
        self.say("TeamQuotas: research (guaranteed 8, max 32), serving (8), vision (16)")

        await self.submit(TRAIN_1)
        await self.until("train-1 to run", lambda: phase(self.job(TRAIN_1)) == "Running")
        filling = (*RESEARCH_JOBS[1:3], CHAT)
        await self.submit(*filling)
        self.say("research: 3 × 8-GPU training jobs (train-1 is stuck at 3%); serving: inference")
        await self.until(
            "the pool to fill",
            lambda: all(phase(self.job(s)) == "Running" for s in (TRAIN_1, *filling)),
        )
        research = next(t for t in self.board.teams if t["metadata"]["name"] == "research")
        summary.borrowed_gpus = int((research.get("status") or {}).get("borrowedGPUs") or 0)
        self.say(f"the pool is full: research borrows {summary.borrowed_gpus} idle GPUs")

        await self.submit(TRAIN_4)
        waiting = time.monotonic()
        self.say("research submits train-4: no free GPUs, it waits")
        await self.until("train-4 to get train-1's idle GPUs", lambda: self._running(TRAIN_4))
        summary.idle_reclaim_seconds = time.monotonic() - waiting

        await self.submit(RESNET)
        arrived = time.monotonic()
        self.say("vision (guaranteed 16) submits resnet-ddp, 2 workers × 8 GPUs")
        await self.until("resnet-ddp to run", lambda: self._running(RESNET))
        summary.reclaim_seconds = time.monotonic() - arrived
        self.say(f"resnet-ddp runs {summary.reclaim_seconds:.1f} s after it was submitted")

        await self.until("resnet-ddp to finish", lambda: phase(self.job(RESNET)) == "Succeeded")
        self.say("resnet-ddp finished: its 16 GPUs are free again")
        await self.until("research to resume its requeued jobs", self._resumed)
        for spec in RESEARCH_JOBS:
            location = await self.resume_from(spec) if self._running(spec) else ""
            if location:
                summary.resumed_from[spec.name] = location
        await self.refresh()
        summary.seconds = time.monotonic() - started
        return summary

    def _running(self, spec: JobSpec) -> bool:
        return phase(self.job(spec)) == "Running"

    def _resumed(self) -> bool:
        """Research runs 3 jobs again, and two of them were preempted before."""
        running = [s for s in RESEARCH_JOBS if self._running(s)]
        again = [s for s in running if (self.job(s).get("status") or {}).get("preemptions")]
        return len(running) >= 3 and len(again) >= 2


async def node_capacity(client: KubeClient) -> int:
    """GPUs per node (the demo's nodes are all alike)."""
    listing = await client.list(NODES, label_selector="gpupool.io/gpu-node=true")
    return max(
        (
            int((node.get("status") or {}).get("allocatable", {}).get("nvidia.com/gpu", 0))
            for node in listing.get("items") or ()
        ),
        default=0,
    )


async def gpu_nodes(client: KubeClient) -> list[str]:
    listing = await client.list(NODES, label_selector="gpupool.io/gpu-node=true")
    return sorted(node["metadata"]["name"] for node in listing.get("items") or ())


async def play(kubeconfig: Path, console: Console, logs: Path) -> tuple[Summary, Board]:
    board = Board()
    async with KubeClient.from_kubeconfig(str(kubeconfig)) as client:
        nodes = await gpu_nodes(client)
        demo = Demo(client, board, console)
        with components(kubeconfig, nodes, logs):
            if console.is_terminal:
                with Live(board.render(), console=console, refresh_per_second=4) as live:
                    demo.live = live
                    summary = await demo.play()
            else:
                summary = await demo.play()
                console.print(board.render())
    return summary, board
