"""`gpupool bench agent`: the node agent's own overhead (CPU of one core, RSS).

The figures come from `gpupool.agent.overhead`, run in a fresh interpreter so the
CLI's own imports do not inflate them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import typer

from gpupool.agent.overhead import CPU_GOAL_PERCENT, RSS_GOAL_MB
from gpupool.progress import Steps


def agent_bench(
    gpus: int = typer.Option(8, help="GPUs on the stand-in node.", min=1),
    seconds: float = typer.Option(30.0, help="Measured seconds (after a short warm-up).", min=1),
    interval: float = typer.Option(1.0, help="Sampling interval, seconds.", min=0.05),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Agent overhead: sampling GPUs through the real NVML code path, publishing, metrics."""
    command = [
        sys.executable,
        "-m",
        "gpupool.agent.overhead",
        str(gpus),
        str(seconds),
        str(interval),
    ]
    with Steps().step(f"sampling {gpus} stand-in GPUs for {seconds:g} s (after a warm-up)"):
        completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    if completed.returncode != 0:
        typer.echo(completed.stderr, err=True)
        raise typer.Exit(completed.returncode)
    figures = json.loads(completed.stdout)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    typer.echo(
        f"agent, {figures['gpus']} GPUs at {1 / figures['interval']:.0f} Hz for "
        f"{figures['seconds']}s: {figures['cpu_percent_of_one_core']:.2f}% of one core "
        f"({figures['cpu_ms_per_sample']:.2f} ms per sample, goal < {CPU_GOAL_PERCENT}%), "
        f"RSS {figures['rss_mb']:.0f} MB (after imports {figures['rss_after_imports_mb']:.0f} MB, "
        f"goal < {RSS_GOAL_MB:.0f} MB), {figures['publishes']} GPUNode writes"
    )
