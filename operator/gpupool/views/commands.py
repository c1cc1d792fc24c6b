"""`gpupool status | queue | top | explain | snapshot | replay`: the platform engineer's view.

`explain` and `snapshot` build the scheduler's snapshot with the operator's own code
(gpupool.views.inspect), imported when they run: it brings the operator's modules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from gpupool.k8s import KubeClient, NotReachable
from gpupool.k8s.listing import context_namespace
from gpupool.planner import Plan, Snapshot, plan
from gpupool.views.explain import Explanation, explain_job
from gpupool.views.plan_tables import plan_tables
from gpupool.views.replay import read_snapshot
from gpupool.views.state import CliError, ClusterState, load_state
from gpupool.views.tables import queue_table, status_table, team_namespaces, top_table

T = TypeVar("T")

KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file.")
ContextOption = typer.Option(None, "--context", help="kubeconfig context.")
NodeSelectorOption = typer.Option(
    "",
    "--node-selector",
    envvar="GPUPOOL_NODE_SELECTOR",
    help="The operator's node selector (its GPUPOOL_NODE_SELECTOR), if it has one.",
)


def fail(error: CliError) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/] {error}", highlight=False)
    return typer.Exit(2)


def run_with_client(
    kubeconfig: str | None, context: str | None, work: Callable[[KubeClient], Awaitable[T]]
) -> T:
    """Run one async read against the cluster, turning failures into clear exits."""

    async def main() -> T:
        try:
            client = KubeClient.from_kubeconfig(kubeconfig, context)
        except Exception as error:
            raise CliError(f"cannot load Kubernetes credentials: {error}") from error
        async with client:
            return await work(client)

    try:
        return asyncio.run(main())
    except NotReachable as error:
        Console(stderr=True).print(f"[red]error:[/] the API server is not reachable ({error})")
        raise typer.Exit(2) from error
    except CliError as error:
        raise fail(error) from error


def _state(kubeconfig: str | None, context: str | None, *, nodes: bool = True) -> ClusterState:
    return run_with_client(kubeconfig, context, lambda client: load_state(client, nodes=nodes))


def status(kubeconfig: str | None = KubeconfigOption, context: str | None = ContextOption) -> None:
    """Per team: guaranteed, allocated, borrowed, pending, fair share, utilization."""
    Console().print(status_table(_state(kubeconfig, context)))


def queue(
    team: str | None = typer.Option(None, "--team", help="Only this team's jobs."),
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Pending jobs in scheduling order, with the planner's reason."""
    Console().print(queue_table(_state(kubeconfig, context, nodes=False), team))


def top(kubeconfig: str | None = KubeconfigOption, context: str | None = ContextOption) -> None:
    """Every GPU: utilization, memory, health and the pod using it (nvidia-smi for the cluster)."""
    state = _state(kubeconfig, context)
    Console().print(top_table(state.nodes, team_namespaces(state)))


def explain(
    job: str = typer.Argument(..., help="The GPUJob: namespace/name, or name with -n."),
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Its namespace (default: the context's)."
    ),
    node_selector: str = NodeSelectorOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Why a job is pending or was preempted, what would let it run, its checkpoints."""
    from gpupool.views.inspect import load_explanation

    if "/" in job:
        namespace, _, name = job.partition("/")
    else:
        name = job
        namespace = namespace or context_namespace(kubeconfig, context)
    found: Explanation = run_with_client(
        kubeconfig,
        context,
        lambda client: load_explanation(client, namespace or "default", name, node_selector),
    )
    Console().print(explain_job(found))


def snapshot(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file."),
    node_selector: str = NodeSelectorOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Dump the scheduler's snapshot as JSON (replay it with `gpupool replay`)."""
    from gpupool.views.inspect import load_offline

    offline = run_with_client(
        kubeconfig, context, lambda client: load_offline(client, node_selector, time.time())
    )
    text = offline.snapshot.to_json(now=offline.now, indent=2)
    if output is None:
        typer.echo(text)
        return
    output.write_text(text + "\n")
    Console(stderr=True).print(
        f"wrote {output}: {len(offline.snapshot.nodes)} nodes, {len(offline.snapshot.teams)} "
        f"teams, {len(offline.snapshot.jobs)} jobs"
    )


def replay(
    file: Path = typer.Argument(..., help="A snapshot from `gpupool snapshot` ('-': stdin)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    now: float | None = typer.Option(
        None, "--now", help="Plan at this time (Unix seconds; default: the snapshot's)."
    ),
) -> None:
    """Run the planner offline on a dumped snapshot and print its plan."""
    try:
        recorded, recorded_now = read_snapshot(file)
    except CliError as error:
        raise fail(error) from error
    at = now if now is not None else recorded_now if recorded_now is not None else time.time()
    result: Plan = plan(recorded, at)
    if as_json:
        typer.echo(result.to_json(indent=2))
        return
    console = Console()
    console.print(_replay_title(recorded, at), highlight=False)
    console.print(plan_tables(result))


def _replay_title(recorded: Snapshot, at: float) -> str:
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"Plan at {when} for {len(recorded.nodes)} nodes, {len(recorded.teams)} teams, "
        f"{len(recorded.jobs)} jobs"
    )


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(queue)
    app.command()(top)
    app.command()(explain)
    app.command()(snapshot)
    app.command()(replay)
