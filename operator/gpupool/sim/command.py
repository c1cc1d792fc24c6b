"""`gpupool simulate`: replay a trace under each policy and compare them."""

from __future__ import annotations

import json
from datetime import datetime
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

from gpupool.planner import PlannerConfig
from gpupool.sim.engine import simulate as run_policy
from gpupool.sim.fairness import apply_finish_time_fairness, jct_alone
from gpupool.sim.metrics import PolicyResult
from gpupool.sim.model import IdleModel, SimConfig
from gpupool.sim.policy import POLICY_NAMES, make_policy
from gpupool.sim.report import parameters, print_table, to_json, write_report
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
        ",".join(POLICY_NAMES), "--policy", help=f"Comma-separated: {', '.join(POLICY_NAMES)}."
    ),
    teams: Path | None = typer.Option(
        None, "--teams", exists=True, dir_okay=False, help="TeamQuota-like settings (YAML/JSON)."
    ),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node", min=1),
    checkpoint_interval: float = typer.Option(
        1800.0, "--checkpoint-interval", min=0, help="Seconds between periodic checkpoints."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the utilization and SIGTERM models."),
    idle_model: IdleModel = typer.Option(
        IdleModel.OWED,
        "--idle-model",
        help="owed: an idle stretch is part of the job's progress; passes: of the wall clock.",
    ),
    sigterm_save: float = typer.Option(
        0.5,
        "--sigterm-save",
        min=0.0,
        max=1.0,
        help="Fraction of jobs that save on SIGTERM (others resume from their last checkpoint).",
    ),
    since: datetime | None = typer.Option(
        None,
        "--since",
        formats=["%Y-%m-%d", "%Y-%m-%d %H:%M:%S"],
        help="Jobs submitted from (UTC).",
    ),
    until: datetime | None = typer.Option(
        None, "--until", formats=["%Y-%m-%d", "%Y-%m-%d %H:%M:%S"], help="…and before (UTC)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N jobs."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    report: Path | None = typer.Option(None, "--report", help="Write PNG plots and HTML here."),
) -> None:
    """Replay a job trace through the planner and the baselines on a simulated cluster."""
    names = _policies(policy)
    try:
        jobs = load_trace(trace, limit, since=since, until=until)
        settings = load_teams(teams) if teams is not None else derive_teams(jobs, gpus)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if not jobs:
        raise typer.BadParameter(f"{trace}: no jobs in the chosen period")
    config = SimConfig(
        gpus=gpus,
        gpus_per_node=gpus_per_node,
        checkpoint_interval=checkpoint_interval,
        seed=seed,
        sigterm_save=sigterm_save,
        idle_model=idle_model,
    )
    console = Console(stderr=True)
    results: list[PolicyResult] = []
    with Progress(
        TextColumn("{task.description:>22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs finished"),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as bar:
        teams_task = bar.add_task("teams alone (ρ)", total=len(settings))

        def team_done(name: str) -> None:
            bar.update(teams_task, advance=1, description=f"alone: {name}"[:22])

        alone = jct_alone(jobs, settings, config, progress=team_done)
        bar.update(teams_task, completed=len(settings), description="teams alone (ρ)")
        for name in names:
            task = bar.add_task(name, total=len(jobs))

            def advance(done: int, task: TaskID = task) -> None:
                if done % 200 == 0 or done == len(jobs):
                    bar.update(task, completed=done)

            try:
                result = run_policy(
                    jobs, settings, make_policy(name, settings), config, progress=advance
                )
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
            bar.update(task, completed=len(jobs))
            apply_finish_time_fairness(result, alone)
            results.append(result)
    period = f" submitted {jobs_period(since, until)}" if since or until else ""
    title = f"{trace.name}{period}: {len(jobs):,} jobs on {gpus} GPUs"
    given = parameters(trace, jobs, settings, config, PlannerConfig(), since, until, limit, teams)
    if as_json:
        typer.echo(json.dumps(to_json(results, given), separators=(",", ":")))
    else:
        print_table(results, title, Console())
    if report is not None:
        page = write_report(results, title, given, report)
        console.print(f"report: {page}")


def jobs_period(since: datetime | None, until: datetime | None) -> str:
    start = since.strftime("%Y-%m-%d %H:%M") if since else "the start"
    end = until.strftime("%Y-%m-%d %H:%M") if until else "the end"
    return f"from {start} to {end}"
