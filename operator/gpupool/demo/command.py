"""`gpupool demo`: start the local control plane, play the story, clean up."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from gpupool.demo.run import Summary

CLUSTER_NAME = "gpupool-demo"


def _print_summary(console: Console, summary: Summary) -> None:
    console.rule("summary")
    peak = max(summary.peak_node_load.values(), default=0)
    console.print(
        f"llm-gateway (outside gpupool) kept its GPUs on {summary.unmanaged_node} throughout; "
        f"no node ever had more than {peak} of its {summary.capacity} GPUs requested"
    )
    console.print(f"research borrowed {summary.borrowed_gpus} idle GPUs while nobody needed them")
    console.print(
        f"train-4 got the stuck job's GPUs {summary.idle_reclaim_seconds:.0f} s after submitting"
        " (idle for 1 minute: checkpointed, then reclaimed)"
    )
    console.print(
        f"vision got its guaranteed GPUs back {summary.reclaim_seconds:.1f} s after submitting"
    )
    console.print(f"{len(summary.requeued)} preemptions, each after a checkpoint, none failed:")
    for line in summary.requeued:
        console.print(f"  {line}", highlight=False)
    for job, location in summary.resumed_from.items():
        console.print(f"{job} resumed with GPUPOOL_RESUME_FROM={location}", highlight=False)
    console.print(f"the story took {summary.seconds:.0f} s")


def demo(
    keep: bool = typer.Option(
        False, "--keep", help="Leave the cluster running and print how to use kubectl on it."
    ),
    nodes: int = typer.Option(4, help="Fake GPU nodes (8 GPUs each, 2 racks)."),
) -> None:
    """Teams sharing 32 GPUs beside an inference Deployment outside gpupool: borrowing,
    reclaim after a checkpoint, idle reclaim, resume."""
    # Imported here: the story drives the operator (kopf), which other commands never load.
    from gpupool.api.crdgen import write_crds
    from gpupool.demo.run import DemoFailed, play
    from gpupool.devcluster import DevCluster, binaries
    from gpupool.progress import Steps

    console = Console()
    steps = Steps()
    work = Path(tempfile.mkdtemp(prefix="gpupool-demo-"))
    crds = work / "crds"
    write_crds(crds, None)
    binaries.ensure()  # the first time: builds the control plane, with its own progress
    with steps.step(f"starting the local control plane ({nodes} fake nodes × 8 GPUs, 2 racks)"):
        cluster = DevCluster.start(
            name=CLUSTER_NAME, nodes=nodes, gpus_per_node=8, racks=2, crds=crds
        )
    if not keep:
        cluster.stop_at_exit()
    try:
        summary, _ = asyncio.run(play(cluster.kubeconfig, console, work / "logs"))
    except DemoFailed as error:
        console.print(f"[red]demo failed:[/] {error}; logs in {work / 'logs'}")
        raise typer.Exit(1) from error
    finally:
        if not keep:
            cluster.stop()
    _print_summary(console, summary)
    if keep:
        console.print(
            f"\nThe cluster is still up. Try:\n"
            f"  export KUBECONFIG={cluster.kubeconfig}\n"
            f"  kubectl get gpujobs -A; kubectl get teamquotas; kubectl get gpunodes\n"
            f"  gpupool status; gpupool queue -A; gpupool top\n"
            f"The operator and agents have stopped: run `gpupool operator --standalone` to "
            f"continue, `make cluster-down` (or python -m gpupool.devcluster down --name "
            f"{CLUSTER_NAME}) to delete it."
        )
