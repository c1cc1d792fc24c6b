"""`gpupool simulate`: replay a trace under each policy and compare them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from gpupool.sim.engine import simulate as run_policy
from gpupool.sim.metrics import PolicyResult
from gpupool.sim.model import SimConfig
from gpupool.sim.policy import POLICY_NAMES, make_policy
from gpupool.sim.report import print_table, to_json, write_report
from gpupool.sim.teams import derive_teams, load_teams
from gpupool.sim.trace import load_trace


def _policies(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICY_NAMES]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown policy {', '.join(unknown) or text!r}: choose from {', '.join(POLICY_NAMES)}"
        )
    return list(dict.fromkeys(names))


def simulate(
    trace: Path = typer.Option(..., "--trace", exists=True, dir_okay=False, help="Trace CSV."),
    gpus: int = typer.Option(..., "--gpus", min=1, help="GPUs in the simulated cluster."),
    policy: str = typer.Option(
        ",".join(POLICY_NAMES), "--policy", help="Comma-separated: static, borrow, gpupool."
    ),
    teams: Path | None = typer.Option(
        None, "--teams", exists=True, dir_okay=False, help="TeamQuota-like settings (YAML/JSON)."
    ),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node", min=1),
    checkpoint_interval: float = typer.Option(
        1800.0, "--checkpoint-interval", min=0, help="Seconds between periodic checkpoints."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the utilization model."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N jobs."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    report: Path | None = typer.Option(None, "--report", help="Write PNG plots and HTML here."),
) -> None:
    """Replay a job trace through the planner and the baselines on a simulated cluster."""
    names = _policies(policy)
    try:
        jobs = load_trace(trace, limit)
        settings = load_teams(teams) if teams is not None else derive_teams(jobs, gpus)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    config = SimConfig(
        gpus=gpus,
        gpus_per_node=gpus_per_node,
        checkpoint_interval=checkpoint_interval,
        seed=seed,
    )
    console = Console(stderr=True)
    results: list[PolicyResult] = []
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as bar:
        for name in names:
            task = bar.add_task(name, total=len(jobs))

            def advance(done: int, task: TaskID = task) -> None:
                if done % 500 == 0 or done == len(jobs):
                    bar.update(task, completed=done)

            try:
                result = run_policy(
                    jobs, settings, make_policy(name, settings), config, progress=advance
                )
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
            bar.update(task, completed=len(jobs))
            results.append(result)
    title = f"{trace.name}: {len(jobs):,} jobs on {gpus} GPUs"
    if as_json:
        typer.echo(json.dumps(to_json(results), indent=2))
    else:
        print_table(results, title, Console())
    if report is not None:
        page = write_report(results, title, report)
        console.print(f"report: {page}")
