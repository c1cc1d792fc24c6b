"""`gpupool status | queue | top`: the platform engineer's view of the pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console

from gpupool.k8s import KubeClient, NotReachable
from gpupool.views.state import CliError, ClusterState, load_state
from gpupool.views.tables import queue_table, status_table, top_table

T = TypeVar("T")

KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file.")
ContextOption = typer.Option(None, "--context", help="kubeconfig context.")


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
        Console(stderr=True).print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from error


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
    Console().print(top_table(_state(kubeconfig, context).nodes))


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(queue)
    app.command()(top)
