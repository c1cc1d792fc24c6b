"""The `gpupool` command line (also installed as `kubectl-gpupool`)."""

from __future__ import annotations

import typer

from gpupool.agent.command import agent
from gpupool.bench import bench_app
from gpupool.demo.command import demo
from gpupool.sim.command import simulate
from gpupool.views import commands as views

app = typer.Typer(
    name="gpupool",
    help="gpupool: share one pool of GPUs across teams on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(bench_app, name="bench")
app.command()(agent)
app.command()(demo)
app.command()(simulate)
views.register(app)


@app.command()
def crds(
    out: str = typer.Option("crds", help="Directory for the generated CRD manifests."),
    chart: str = typer.Option(
        "helm/gpupool/crds", help="The Helm chart's copy of the CRDs ('' to skip)."
    ),
) -> None:
    """Generate the CustomResourceDefinitions from the resource models."""
    from gpupool.api.crdgen import write_crds

    for path in write_crds(out, chart or None):
        typer.echo(f"wrote {path}")


@app.command("operator")
def operator_command(
    kubeconfig: str = typer.Option("", help="Kubeconfig file ('' = in-cluster or $KUBECONFIG)."),
    standalone: bool = typer.Option(False, help="No leader election (a single instance)."),
    peering: str = typer.Option("gpupool", help="kopf peering name for leader election."),
    liveness: str = typer.Option("", help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run the operator: indexes, the scheduling loop, checkpoint-then-preempt."""
    from gpupool.controller.main import run

    run(
        kubeconfig=kubeconfig or None,
        standalone=standalone,
        peering_name=peering,
        liveness=liveness or None,
        verbose=verbose,
    )


def main() -> None:
    app()
