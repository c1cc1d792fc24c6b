"""The `gpupool` command line, also installed as `kubectl-gpupool`: kubectl runs it for
`kubectl gpupool ...`, and it then presents itself under that name.

The user's commands (gpupool.views.commands) and the admin commands are listed apart
in `--help`; a new command is one registration in its group.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from gpupool import __version__
from gpupool.agent.command import agent
from gpupool.bench import bench_app
from gpupool.demo.command import demo
from gpupool.sim.command import simulate
from gpupool.views import commands as views

ADMIN_PANEL = "Admin commands"
KUBECTL_PLUGIN = "kubectl-gpupool"

app = typer.Typer(
    name="gpupool",
    help="gpupool: share one pool of GPUs across teams on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"gpupool {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """gpupool: share one pool of GPUs across teams on Kubernetes."""


def crds(
    out: str = typer.Option("crds", help="Directory for the generated CRD manifests."),
    chart: str = typer.Option(
        "helm/gpupool/files/crds", help="The Helm chart's copy of the CRDs ('' to skip)."
    ),
    api_reference: str = typer.Option(
        "docs/api.md", help="The API reference generated from the models ('' to skip)."
    ),
    chart_workload: str = typer.Option(
        "helm/gpupool/files/workload.py",
        help="The chart's copy of the workload helper ('' to skip).",
    ),
) -> None:
    """Generate the CRDs, the API reference and the chart's copies from their sources."""
    from gpupool.generate import write_generated

    for path in write_generated(out, chart or None, api_reference or None, chart_workload or None):
        typer.echo(f"wrote {path}")


def operator_command(
    kubeconfig: str = typer.Option("", help="Kubeconfig file ('' = in-cluster or $KUBECONFIG)."),
    standalone: bool = typer.Option(False, help="No leader election (a single instance)."),
    peering: str = typer.Option("gpupool", help="kopf peering name for leader election."),
    liveness: str = typer.Option("", help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the operator: indexes, the scheduling loop, checkpoint-then-preempt."""
    from gpupool.k8s.kubeconfig import leave_out_the_kubernetes_package

    leave_out_the_kubernetes_package(kubeconfig or None)
    from gpupool.controller.main import run

    run(
        kubeconfig=kubeconfig or None,
        standalone=standalone,
        peering_name=peering,
        liveness=liveness or None,
        verbose=verbose,
    )


views.register(app)
app.command(rich_help_panel=views.OFFLINE_PANEL)(simulate)
app.command("operator", rich_help_panel=ADMIN_PANEL)(operator_command)
app.command(rich_help_panel=ADMIN_PANEL)(agent)
app.add_typer(bench_app, name="bench", rich_help_panel=ADMIN_PANEL)
app.command(rich_help_panel=ADMIN_PANEL)(crds)
app.command(rich_help_panel=ADMIN_PANEL)(demo)


def program_name(argv0: str) -> str:
    """`kubectl gpupool` when kubectl runs us as its plugin, else `gpupool`."""
    return "kubectl gpupool" if Path(argv0).name == KUBECTL_PLUGIN else "gpupool"


def main() -> None:
    """Run the CLI. A failure the commands did not foresee is a bug: one line and exit 1,
    its traceback only with -v/--verbose."""
    try:
        app(prog_name=program_name(sys.argv[0]))
    except Exception as error:
        console = Console(stderr=True, highlight=False)
        if "-v" in sys.argv[1:] or "--verbose" in sys.argv[1:]:
            console.print_exception(show_locals=False)
        else:
            console.print(
                Text.assemble(
                    ("error: ", "red"),
                    f"{type(error).__name__}: {error}. This is a bug in gpupool; run again with "
                    "-v for the traceback and report it.",
                ),
                soft_wrap=True,
            )
        sys.exit(1)
