"""`gpupool status | queue | top | explain | snapshot | replay`: the platform engineer's view.

Every command that reads the cluster takes kubectl's flags (gpupool.views.connection)
and prints with `-o` as kubectl does (gpupool.views.output). `explain` and `snapshot`
build the scheduler's snapshot with the operator's own code (gpupool.views.inspect),
imported when they run: it brings the operator's modules.

A new command is a function here and one entry in CLUSTER_COMMANDS or OFFLINE_COMMANDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from gpupool.k8s import KubeClient
from gpupool.planner import Plan, Snapshot, plan
from gpupool.views.connection import (
    OUTPUT_HELP,
    AllNamespaces,
    Context,
    Kubeconfig,
    ListingOutput,
    Namespace,
    RequestTimeout,
    Target,
    Verbose,
    exclusive,
    fail,
    resolve_namespace,
    run_on_cluster,
)
from gpupool.views.explain import Explanation, explain_job, explanation_record
from gpupool.views.failures import CliError, did_you_mean
from gpupool.views.output import print_document, print_listing
from gpupool.views.plan_tables import plan_tables
from gpupool.views.replay import read_snapshot
from gpupool.views.state import ClusterState, load_state
from gpupool.views.tables import queue_listing, status_listing, team_namespaces, top_listing

CLUSTER_PANEL = "Reading the cluster"
OFFLINE_PANEL = "Offline"

NodeSelector = Annotated[
    str,
    typer.Option(
        "--node-selector",
        envvar="GPUPOOL_NODE_SELECTOR",
        help="The operator's node selector (its GPUPOOL_NODE_SELECTOR), if it has one.",
    ),
]


def status(
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="Only the teams that own this namespace.", show_default=False
        ),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every team (the default).")
    ] = False,
    output: ListingOutput = "table",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    request_timeout: RequestTimeout = "30s",
    verbose: Verbose = False,
) -> None:
    """Per team: guaranteed, allocated, borrowed, pending, fair share, utilization."""
    target = Target(kubeconfig, context, request_timeout, verbose)
    exclusive(namespace, all_namespaces)
    state: ClusterState = run_on_cluster(
        target, lambda client: load_state(client, namespace, teams=True, jobs=True, nodes=True)
    )
    print_listing(status_listing(state, namespace), output)


def queue(
    team: Annotated[
        str | None,
        typer.Option(
            "--team", help="Only this team's jobs (in all its namespaces unless -n is given)."
        ),
    ] = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    output: ListingOutput = "table",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    request_timeout: RequestTimeout = "30s",
    verbose: Verbose = False,
) -> None:
    """Pending jobs in scheduling order, with the planner's reason."""
    target = Target(kubeconfig, context, request_timeout, verbose)
    # A team spans namespaces: --team alone reads all of them.
    everywhere = all_namespaces or (team is not None and not namespace)
    scope = resolve_namespace(target, namespace, everywhere)

    async def read(client: KubeClient) -> ClusterState:
        state = await load_state(client, scope, teams=False, nodes=False)
        try:
            state.teams = (await load_state(client, jobs=False, nodes=False)).teams
        except CliError:
            # A team member may read the jobs of their namespace but not the cluster's
            # TeamQuotas: the jobs' status names their team, which is all the queue needs.
            if team is not None:
                raise
        return state

    state = run_on_cluster(target, read)
    if team is not None and team not in {known.name for known in state.teams}:
        fail(
            CliError(
                f"no TeamQuota named {team!r}."
                + did_you_mean(team, (known.name for known in state.teams))
                + " `gpupool status` lists the teams."
            ),
            LookupError(team),
            verbose,
        )
    print_listing(queue_listing(state, team, scope), output)


def top(
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Only the GPUs held by pods of this namespace.",
            show_default=False,
        ),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Every GPU (the default).")
    ] = False,
    output: ListingOutput = "table",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    request_timeout: RequestTimeout = "30s",
    verbose: Verbose = False,
) -> None:
    """Every GPU: utilization, memory, health and the pod using it (nvidia-smi for the cluster)."""
    target = Target(kubeconfig, context, request_timeout, verbose)
    exclusive(namespace, all_namespaces)

    async def read(client: KubeClient) -> tuple[ClusterState, set[str] | None]:
        state = await load_state(client, None, teams=False, jobs=False, nodes=True)
        try:
            teams = team_namespaces(await load_state(client, jobs=False, nodes=False))
        except CliError:
            teams = None  # not allowed to list TeamQuotas: pods are shown unmarked
        return state, teams

    state, teams = run_on_cluster(target, read)
    print_listing(top_listing(state.nodes, namespace, teams), output)


def explain(
    job: Annotated[str, typer.Argument(help="The GPUJob: NAMESPACE/NAME, or NAME with -n.")],
    namespace: Namespace = None,
    output: Annotated[
        Literal["table", "json", "yaml", "name"], typer.Option("--output", "-o", help=OUTPUT_HELP)
    ] = "table",
    node_selector: NodeSelector = "",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    request_timeout: RequestTimeout = "30s",
    verbose: Verbose = False,
) -> None:
    """Why a job is pending or was preempted, what would let it run, its checkpoints."""
    from gpupool.views.inspect import load_explanation

    target = Target(kubeconfig, context, request_timeout, verbose)
    if "/" in job:
        where, _, name = job.partition("/")
    else:
        where, name = resolve_namespace(target, namespace, False) or "default", job
    found: Explanation = run_on_cluster(
        target, lambda client: load_explanation(client, where, name, node_selector)
    )
    if output == "table":
        Console().print(explain_job(found))
    elif output == "name":
        typer.echo(f"gpujob.gpupool.io/{found.record.name}")
    else:
        print_document(explanation_record(found), output)


def _snapshot_format(value: str) -> str:
    if value not in ("json", "yaml"):
        moved = " (the file to write is --output-file FILE)" if "." in value or "/" in value else ""
        raise typer.BadParameter(f"{value!r} is not one of 'json', 'yaml'{moved}")
    return value


def snapshot(
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Output format: json or yaml.", callback=_snapshot_format
        ),
    ] = "json",
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output-file", help="Write to this file instead of stdout.", show_default=False
        ),
    ] = None,
    node_selector: NodeSelector = "",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    request_timeout: RequestTimeout = "30s",
    verbose: Verbose = False,
) -> None:
    """Dump the scheduler's snapshot of the whole cluster (replay it with `gpupool replay`)."""
    from gpupool.views.inspect import load_offline

    target = Target(kubeconfig, context, request_timeout, verbose)
    offline = run_on_cluster(
        target, lambda client: load_offline(client, node_selector, time.time())
    )
    text = offline.snapshot.to_json(now=offline.now, indent=2)
    if output == "yaml":
        import yaml

        text = yaml.safe_dump(offline.snapshot.to_dict() | {"now": offline.now}, sort_keys=True)
    if output_file is None:
        typer.echo(text.rstrip("\n"))
        return
    output_file.write_text(text.rstrip("\n") + "\n")
    Console(stderr=True).print(
        f"wrote {output_file}: {len(offline.snapshot.nodes)} nodes, "
        f"{len(offline.snapshot.teams)} teams, {len(offline.snapshot.jobs)} jobs",
        highlight=False,
    )


def replay(
    file: Annotated[
        Path, typer.Argument(help="A snapshot from `gpupool snapshot`, JSON or YAML ('-': stdin).")
    ],
    output: Annotated[
        Literal["table", "json", "yaml"], typer.Option("--output", "-o", help=OUTPUT_HELP)
    ] = "table",
    now: Annotated[
        float | None,
        typer.Option(help="Plan at this time (Unix seconds; default: the snapshot's)."),
    ] = None,
) -> None:
    """Run the planner offline on a dumped snapshot and print its plan."""
    try:
        recorded, recorded_now = read_snapshot(file)
    except CliError as error:
        fail(error, error, verbose=False)
    at = now if now is not None else recorded_now if recorded_now is not None else time.time()
    result: Plan = plan(recorded, at)
    if output != "table":
        print_document(result.to_dict(), output)
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


CLUSTER_COMMANDS: tuple[Callable[..., Any], ...] = (status, queue, top, explain, snapshot)
OFFLINE_COMMANDS: tuple[Callable[..., Any], ...] = (replay,)


def register(app: typer.Typer) -> None:
    for command in CLUSTER_COMMANDS:
        app.command(rich_help_panel=CLUSTER_PANEL)(command)
    for command in OFFLINE_COMMANDS:
        app.command(rich_help_panel=OFFLINE_PANEL)(command)
