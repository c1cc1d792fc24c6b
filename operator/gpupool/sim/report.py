"""Showing results: the terminal table, the --json document, PNG plots and HTML."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gpupool.sim.metrics import PolicyResult

HOUR = 3600.0


def to_json(results: Sequence[PolicyResult]) -> dict[str, Any]:
    return {"policies": {result.policy: result.to_json() for result in results}}


def _hours(seconds: float) -> str:
    return f"{seconds / HOUR:,.2f} h"


ROWS: tuple[tuple[str, Any], ...] = (
    ("jobs finished", lambda r: f"{r.jobs:,}"),
    ("avg JCT", lambda r: _hours(r.avg_jct_s)),
    ("p95 JCT", lambda r: _hours(r.p95_jct_s)),
    ("avg queueing delay", lambda r: _hours(r.avg_queue_s)),
    ("p95 queueing delay", lambda r: _hours(r.p95_queue_s)),
    ("GPU allocation ratio", lambda r: f"{r.allocation_ratio:.1%}"),
    ("effective utilization", lambda r: f"{r.effective_utilization:.1%}"),
    ("GPU-hours lost to preemption", lambda r: f"{r.lost_gpu_hours:,.1f}"),
    ("preemptions", lambda r: f"{r.preemptions:,}"),
    ("Jain's index (share / entitlement)", lambda r: f"{r.jain_index:.3f}"),
    ("p99 time-to-GPUs within guarantee", lambda r: f"{r.p99_guaranteed_wait_s:,.0f} s"),
    ("multi-node jobs: mean slowdown", lambda r: f"{r.mean_spread_slowdown:.3f}×"),
    ("runs slowed by spreading", lambda r: f"{r.spread_jobs:,}"),
    ("scheduling cycles planned", lambda r: f"{r.plans:,}"),
    ("simulation runtime", lambda r: f"{r.runtime_s:,.1f} s"),
)


def table(results: Sequence[PolicyResult], title: str) -> Table:
    grid = Table(title=title)
    grid.add_column("metric")
    for result in results:
        grid.add_column(result.policy, justify="right")
    for label, cell in ROWS:
        grid.add_row(label, *(cell(result) for result in results))
    return grid


def print_table(results: Sequence[PolicyResult], title: str, console: Console) -> None:
    console.print(table(results, title))


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    count = len(ordered)
    return ordered, [(i + 1) / count for i in range(count)]


def write_report(results: Sequence[PolicyResult], title: str, directory: str | Path) -> Path:
    """PNG plots and an index.html summing them up; returns the HTML file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for name, label, attribute in (
        ("jct_cdf.png", "job completion time (h)", "jcts"),
        ("queue_cdf.png", "queueing delay (h)", "queues"),
    ):
        figure, axes = plt.subplots(figsize=(7, 4))
        for result in results:
            values, fraction = _cdf([v / HOUR for v in getattr(result, attribute)])
            axes.plot([max(v, 1e-3) for v in values], fraction, label=result.policy)
        axes.set_xscale("log")
        axes.set_xlabel(label)
        axes.set_ylabel("fraction of jobs")
        axes.legend()
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
        images.append(name)
    figure, axes = plt.subplots(figsize=(9, 4))
    for result in results:
        axes.plot(
            [h / 24 for h in range(len(result.held_per_hour))],
            result.held_per_hour,
            label=result.policy,
            linewidth=0.8,
        )
    axes.set_xlabel("day of the trace")
    axes.set_ylabel("GPUs allocated (hourly mean)")
    axes.legend()
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "allocation.png", dpi=110)
    plt.close(figure)
    images.append("allocation.png")
    for result in results:
        name = f"teams_{result.policy}.png"
        figure, axes = plt.subplots(figsize=(9, 4))
        series = result.team_held_per_hour
        days = [h / 24 for h in range(len(result.held_per_hour))]
        axes.stackplot(
            days, *[values[: len(days)] for values in series.values()], labels=list(series)
        )
        axes.set_title(f"{result.policy}: GPUs per team")
        axes.set_xlabel("day of the trace")
        axes.set_ylabel("GPUs (hourly mean)")
        axes.legend(fontsize=6, ncol=3, loc="upper left")
        figure.tight_layout()
        figure.savefig(out / name, dpi=110)
        plt.close(figure)
        images.append(name)
    head = "".join(f"<th>{html.escape(r.policy)}</th>" for r in results)
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(cell(r))}</td>" for r in results)
        + "</tr>"
        for label, cell in ROWS
    )
    pictures = "".join(f'<p><img src="{name}" alt="{name}"></p>' for name in images)
    page = out / "index.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table><tr><th>metric</th>{head}</tr>{rows}</table>"
        f"{pictures}</body></html>"
    )
    return page
