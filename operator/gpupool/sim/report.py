"""Showing results: the terminal table, the --json document, PNG plots and HTML.

Every output says what the run assumed (`parameters`) and what each figure means
(`ROWS`: label, definition, cell).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gpupool.planner import PlannerConfig, Team
from gpupool.sim.metrics import PolicyResult
from gpupool.sim.model import SimConfig
from gpupool.sim.trace import TraceJob

HOUR = 3600.0
# Teams beyond this many share one colour ("other") in the per-team plots.
MAX_TEAM_COLOURS = 19
POLICY_COLOURS = {
    "static": "#7f7f7f",
    "borrow": "#1f77b4",
    "kueue-fair": "#ff7f0e",
    "gpupool": "#2ca02c",
}


def parameters(
    trace: Path,
    jobs: Sequence[TraceJob],
    teams: Sequence[Team],
    config: SimConfig,
    planner: PlannerConfig,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    teams_file: Path | None,
) -> dict[str, Any]:
    """Everything the run depended on, by name (the JSON's and the report's)."""
    return {
        "trace": trace.name,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "limit": limit,
        "jobs": len(jobs),
        "gpus": config.gpus,
        "gpus_per_node": config.gpus_per_node,
        "nodes_per_rack": config.nodes_per_rack,
        "teams_source": str(teams_file) if teams_file else "derived from the trace",
        "teams": [
            {
                "name": team.name,
                "guaranteed_gpus": team.guaranteed_gpus,
                "max_gpus": team.max_gpus,
                "weight": team.weight,
                "idle_reclaim": None if team.idle_reclaim is None else team.idle_reclaim.to_dict(),
            }
            for team in teams
        ],
        "seed": config.seed,
        "idle_model": config.idle_model.value,
        "sigterm_save": config.sigterm_save,
        "save_seconds": config.save_seconds,
        "grace_seconds": config.hook_timeout,
        "checkpoint_interval_s": config.checkpoint_interval,
        "idle_window_s": config.idle_window,
        "publish_interval_s": config.publish_seconds,
        "cycle_s": config.cycle_seconds,
        "node_penalty": round(config.node_penalty, 4),
        "rack_penalty": round(config.rack_penalty, 4),
        "planner": planner.to_dict(),
    }


def to_json(results: Sequence[PolicyResult], given: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": given,
        "policies": {result.policy: result.to_json() for result in results},
    }


def _hours(seconds: float) -> str:
    return f"{seconds / HOUR:,.2f} h"


Cell = Callable[[PolicyResult], str]
ROWS: tuple[tuple[str, str, Cell], ...] = (
    ("jobs finished", "jobs that completed in the replay", lambda r: f"{r.jobs:,}"),
    (
        "avg JCT",
        "job completion time: completion − submission, mean",
        lambda r: _hours(r.avg_jct_s),
    ),
    ("p95 JCT", "95th percentile (nearest rank) of JCT", lambda r: _hours(r.p95_jct_s)),
    (
        "avg queueing delay",
        "all the time a job spent pending, including after preemptions, mean",
        lambda r: _hours(r.avg_queue_s),
    ),
    ("p95 queueing delay", "95th percentile of queueing delay", lambda r: _hours(r.p95_queue_s)),
    (
        "GPU allocation ratio",
        "GPU-seconds held (running or saving) ÷ (GPUs × first submission to last completion)",
        lambda r: f"{r.allocation_ratio:.1%}",
    ),
    (
        "effective utilization",
        "GPU-seconds used (held × the job's utilization) ÷ the same",
        lambda r: f"{r.effective_utilization:.1%}",
    ),
    (
        "GPU-hours lost to preemption",
        "work thrown away: GPUs × time since the last checkpoint for a job that dies on "
        "SIGTERM, GPUs × the save time for one that saves",
        lambda r: f"{r.lost_gpu_hours:,.1f}",
    ),
    ("preemptions", "evictions of whole jobs", lambda r: f"{r.preemptions:,}"),
    (
        "p99 time-to-GPUs within guarantee",
        "first start − submission, 99th percentile, of the jobs whose team's whole demand, "
        "them included, was within its guarantee when they were submitted",
        lambda r: f"{r.p99_guaranteed_wait_s:,.0f} s",
    ),
    (
        "finish-time fairness: max ρ",
        "ρ = a team's avg JCT under the policy ÷ its avg JCT alone on its guaranteed GPUs "
        "(Themis); the worst team's (> 1: sharing cost it)",
        lambda r: f"{r.max_rho:.3f}",
    ),
    (
        "finish-time fairness: Jain over ρ",
        "Jain's index over the teams' ρ (1: every team gained or lost alike)",
        lambda r: f"{r.jain_rho:.3f}",
    ),
    (
        "entitlement index (gpupool's formula)",
        "Jain's index of GPUs held ÷ the gpupool planner's entitlement, time-averaged: "
        "grades every policy on gpupool's own goal, not a neutral measure",
        lambda r: f"{r.entitlement_jain_index:.3f}",
    ),
    (
        "multi-node jobs: mean slowdown",
        "mean run-time factor of multi-node runs from spreading over more nodes or racks "
        "than needed",
        lambda r: f"{r.mean_spread_slowdown:.3f}×",
    ),
    ("runs slowed by spreading", "runs with a slowdown above 1", lambda r: f"{r.spread_jobs:,}"),
    ("scheduling cycles planned", "cycles the policy was asked to plan", lambda r: f"{r.plans:,}"),
    ("simulation runtime", "wall time of this policy's replay", lambda r: f"{r.runtime_s:,.1f} s"),
)


def table(results: Sequence[PolicyResult], title: str) -> Table:
    grid = Table(title=title)
    grid.add_column("metric")
    for result in results:
        grid.add_column(result.policy, justify="right")
    for label, _, cell in ROWS:
        grid.add_row(label, *(cell(result) for result in results))
    return grid


def print_table(results: Sequence[PolicyResult], title: str, console: Console) -> None:
    console.print(table(results, title))


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    count = len(ordered)
    return ordered, [(i + 1) / count for i in range(count)]


def team_groups(results: Sequence[PolicyResult]) -> list[tuple[str, list[str]]]:
    """Teams by GPU-time held (most first), the smallest grouped as "other" beyond
    the colours a plot can tell apart."""
    totals: dict[str, float] = {}
    for result in results:
        for team, series in result.team_held_per_hour.items():
            totals[team] = totals.get(team, 0.0) + sum(series)
    ranked = sorted(totals, key=lambda team: (-totals[team], team))
    if len(ranked) <= MAX_TEAM_COLOURS + 1:
        return [(team, [team]) for team in ranked]
    head, rest = ranked[:MAX_TEAM_COLOURS], ranked[MAX_TEAM_COLOURS:]
    return [(team, [team]) for team in head] + [(f"other ({len(rest)} teams)", rest)]


def write_report(
    results: Sequence[PolicyResult], title: str, given: dict[str, Any], directory: str | Path
) -> Path:
    """PNG plots and an index.html summing them up; returns the HTML file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, str]] = []

    def colour(policy: str) -> str | None:
        return POLICY_COLOURS.get(policy)

    def save(figure: Any, name: str, caption: str) -> None:
        figure.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
        images.append((name, caption))

    for name, label, attribute, caption in (
        ("jct_cdf.png", "job completion time (h)", "jcts", "CDF of job completion time"),
        ("queue_cdf.png", "queueing delay (h)", "queues", "CDF of queueing delay"),
    ):
        figure, axes = plt.subplots(figsize=(8, 4))
        for result in results:
            values, fraction = _cdf([v / HOUR for v in getattr(result, attribute)])
            axes.plot(
                [max(v, 1e-3) for v in values],
                fraction,
                label=result.policy,
                color=colour(result.policy),
            )
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("fraction of jobs")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="policy")
        axes.grid(True, alpha=0.3)
        save(figure, name, caption)
    figure, axes = plt.subplots(figsize=(10, 4))
    for result in results:
        axes.plot(
            [h / 24 for h in range(len(result.held_per_hour))],
            result.held_per_hour,
            label=result.policy,
            linewidth=0.8,
            color=colour(result.policy),
        )
    axes.axhline(given["gpus"], color="black", linewidth=0.6, linestyle="--", label="capacity")
    axes.set_xlabel("day of the replay")
    axes.set_ylabel("GPUs allocated (hourly mean)")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="policy")
    axes.grid(True, alpha=0.3)
    save(figure, "allocation.png", "GPUs allocated per hour, all teams")
    figure, axes = plt.subplots(figsize=(10, 4))
    teams = sorted({team for result in results for team in result.rho})
    width = 0.8 / max(1, len(results))
    for i, result in enumerate(results):
        axes.bar(
            [t + i * width for t in range(len(teams))],
            [result.rho.get(team, 0.0) for team in teams],
            width=width,
            label=result.policy,
            color=colour(result.policy),
        )
    axes.axhline(1.0, color="black", linewidth=0.6, linestyle="--")
    axes.set_xticks([t + 0.4 - width / 2 for t in range(len(teams))], teams, rotation=60)
    axes.set_ylabel("ρ = avg JCT shared ÷ alone")
    axes.set_yscale("log")
    axes.set_xlabel("team")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="policy")
    axes.grid(True, axis="y", alpha=0.3)
    save(figure, "fairness.png", "Finish-time fairness ρ per team (log scale; 1 = as if alone)")
    groups = team_groups(results)
    palette = [plt.get_cmap("tab20")(i) for i in range(20)]
    for result in results:
        name = f"teams_{result.policy}.png"
        figure, axes = plt.subplots(figsize=(10, 4.5))
        series = result.team_held_per_hour
        days = [h / 24 for h in range(len(result.held_per_hour))]
        stacks = [
            [
                sum(series.get(team, [0.0] * len(days))[h] for team in members)
                for h in range(len(days))
            ]
            for _, members in groups
        ]
        axes.stackplot(
            days,
            *stacks,
            labels=[label for label, _ in groups],
            colors=[palette[i % len(palette)] for i in range(len(groups))],
        )
        axes.axhline(given["gpus"], color="black", linewidth=0.6, linestyle="--")
        axes.set_title(f"{result.policy}: GPUs per team")
        axes.set_xlabel("day of the replay")
        axes.set_ylabel("GPUs (hourly mean)")
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, title="team", ncol=1)
        save(figure, name, f"GPUs held per team per hour under {result.policy}")
    page = out / "index.html"
    page.write_text(_html(results, title, given, images))
    return page


def _html(
    results: Sequence[PolicyResult],
    title: str,
    given: dict[str, Any],
    images: Sequence[tuple[str, str]],
) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(r.policy)}</th>" for r in results)
    rows = "".join(
        f"<tr><td title='{esc(definition)}'>{esc(label)}</td>"
        + "".join(f"<td>{esc(cell(r))}</td>" for r in results)
        + "</tr>"
        for label, definition, cell in ROWS
    )
    terms = "".join(f"<dt>{esc(label)}</dt><dd>{esc(text)}</dd>" for label, text, _ in ROWS)
    settings = "".join(
        f"<tr><td>{esc(key)}</td><td>{esc(str(value))}</td></tr>"
        for key, value in given.items()
        if key not in ("teams", "planner")
    )
    planner = "".join(
        f"<tr><td>planner {esc(key)}</td><td>{esc(str(value))}</td></tr>"
        for key, value in given["planner"].items()
    )
    teams = "".join(
        f"<tr><td>{esc(t['name'])}</td><td>{t['guaranteed_gpus']}</td>"
        f"<td>{'—' if t['max_gpus'] is None else t['max_gpus']}</td><td>{t['weight']:g}</td>"
        f"<td>{esc(str(t['idle_reclaim']))}</td>"
        + "".join(f"<td>{r.rho.get(t['name'], 0.0):.2f}</td>" for r in results)
        + "</tr>"
        for t in given["teams"]
    )
    rho_head = "".join(f"<th>ρ {esc(r.policy)}</th>" for r in results)
    pictures = "".join(
        f'<figure><img src="{name}" alt="{esc(caption)}"><figcaption>{esc(caption)}'
        "</figcaption></figure>"
        for name, caption in images
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px}td,th{padding:2px 10px;"
        "text-align:right}td:first-child{text-align:left}dt{font-weight:bold}"
        "figure{margin:1em 0}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<h2>Results</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>"
        f"<h2>What the metrics mean</h2><dl>{terms}</dl>"
        f"<h2>What it was run with</h2><table>{settings}{planner}</table>"
        "<h2>Teams</h2><table><tr><th>team</th><th>guaranteed</th><th>max</th>"
        f"<th>weight</th><th>idleReclaim</th>{rho_head}</tr>{teams}</table>"
        f"<h2>Plots</h2>{pictures}"
        "<p>Model and assumptions: docs/simulator.md.</p></body></html>"
    )
