"""The demo's live view: teams, jobs and the story so far, as rich renderables."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

JSON = dict[str, Any]

PHASE_STYLES = {
    "Running": "green",
    "Pending": "yellow",
    "Preempting": "magenta",
    "Succeeded": "cyan",
    "Failed": "red",
}


@dataclass
class Board:
    """What the demo shows: refreshed from the cluster, plus the narrator's log."""

    started: float = field(default_factory=time.monotonic)
    teams: list[JSON] = field(default_factory=list)
    jobs: list[JSON] = field(default_factory=list)
    log: list[tuple[float, str]] = field(default_factory=list)
    # GPU pods that did not come through gpupool: (namespace/name, node, GPUs).
    unmanaged: list[tuple[str, str, int]] = field(default_factory=list)

    def say(self, line: str) -> str:
        self.log.append((time.monotonic() - self.started, line))
        return f"[{self.log[-1][0]:5.1f}s] {line}"

    def render(self) -> Group:
        return Group(self.team_table(), self.job_table(), self.unmanaged_table(), self.story())

    def unmanaged_table(self) -> Table:
        table = Table(
            title="GPU pods outside gpupool (counted, never placed onto, never preempted)",
            title_justify="left",
            expand=True,
        )
        for column in ("pod", "node", "GPUs"):
            table.add_column(column)
        for pod, node, gpus in self.unmanaged:
            table.add_row(pod, node or "(not placed yet)", str(gpus))
        return table

    def team_table(self) -> Table:
        table = Table(title="TeamQuotas", title_justify="left", expand=True)
        for column in (
            "team",
            "guaranteed",
            "max",
            "allocated",
            "borrowed",
            "pending",
            "fair share",
        ):
            table.add_column(column, justify="left" if column == "team" else "right")
        for team in sorted(self.teams, key=lambda t: t["metadata"]["name"]):
            spec, status = team.get("spec") or {}, team.get("status") or {}
            borrowed = int(status.get("borrowedGPUs") or 0)
            table.add_row(
                team["metadata"]["name"],
                str(spec.get("guaranteedGPUs", 0)),
                str(spec.get("maxGPUs", "-")),
                str(status.get("allocatedGPUs", 0)),
                Text(str(borrowed), style="bold blue" if borrowed else ""),
                str(status.get("pendingGPUs", 0)),
                f"{float(status.get('fairShareGPUs') or 0):g}",
            )
        return table

    def job_table(self) -> Table:
        table = Table(title="GPUJobs", title_justify="left", expand=True)
        for column in ("job", "team", "shape", "phase", "util", "preempted", "checkpoint"):
            table.add_column(column)
        table.add_column("where it runs / why it waits", ratio=1)
        for job in sorted(
            self.jobs, key=lambda j: (j["metadata"]["namespace"], j["metadata"]["name"])
        ):
            status = job.get("status") or {}
            phase = str(status.get("phase") or "Pending")
            utilization = (status.get("utilization") or {}).get("mean1m")
            checkpoint = (status.get("lastCheckpoint") or {}).get("location", "")
            table.add_row(
                job["metadata"]["name"],
                str(status.get("team", "")),
                str(status.get("shape", "")),
                Text(phase, style=PHASE_STYLES.get(phase, "")),
                "" if utilization is None else f"{utilization:.0f}%",
                str(status.get("preemptions", 0)),
                "/".join(checkpoint.split("/")[-2:]),
                str(status.get("detail", "")),
            )
        return table

    def story(self) -> Table:
        table = Table(title="What happened", title_justify="left", expand=True, show_header=False)
        table.add_column("t", justify="right", width=7)
        table.add_column("event", ratio=1)
        for at, line in self.log[-8:]:
            table.add_row(f"{at:5.1f}s", line)
        return table
