"""Draws docs/architecture.png: gpupool's components and what flows between them.

.venv/bin/python docs/architecture.py    # needs matplotlib (the `sim` extra)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).resolve().parent / "architecture.png"

# One colour per kind of thing (colour-blind-safe Okabe-Ito hues, lightened).
CLUSTER = "#d6e9f8"  # the Kubernetes API server and its objects
GPUPOOL = "#fde2c4"  # gpupool's own processes
PURE = "#dff2e1"  # the pure planner and what runs it offline
WORKLOAD = "#f3dcef"  # the user's training pods
OUTSIDE = "#eeeeee"  # hardware and other systems


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w, self.y + self.h / 2)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    def at(self, fx: float, fy: float) -> tuple[float, float]:
        return (self.x + fx * self.w, self.y + fy * self.h)


def box(ax: Axes, where: Box, title: str, body: str, colour: str) -> Box:
    ax.add_patch(
        FancyBboxPatch(
            (where.x, where.y),
            where.w,
            where.h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=colour,
            edgecolor="#555555",
            linewidth=1.2,
        )
    )
    ax.text(
        where.x + 0.12,
        where.y + where.h - 0.14,
        title,
        fontsize=11.5,
        fontweight="bold",
        va="top",
    )
    ax.text(where.x + 0.12, where.y + where.h - 0.5, body, fontsize=9, va="top", linespacing=1.4)
    return where


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    *,
    bend: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.0),
    both: bool = False,
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="<|-|>" if both else "-|>",
            mutation_scale=14,
            linewidth=1.3,
            color="#333333",
            connectionstyle=f"arc3,rad={bend}",
            shrinkA=3,
            shrinkB=3,
        )
    )
    if label:
        mid = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
        ax.text(
            *mid,
            label,
            fontsize=8.5,
            ha="center",
            va="center",
            style="italic",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5, "alpha": 0.9},
        )


def link(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A dashed line without direction: two things that share code, not data."""
    ax.plot(*zip(start, end, strict=True), linestyle="--", color="#333333", linewidth=1.2)


def draw() -> None:
    fig, ax = plt.subplots(figsize=(16, 9.6), dpi=110)
    ax.set_xlim(0, 16)
    ax.set_ylim(0, 9.6)
    ax.axis("off")
    ax.text(
        0.2,
        9.35,
        "gpupool: one pool of GPUs shared by teams",
        fontsize=16,
        fontweight="bold",
        va="top",
    )

    gpus = box(
        ax,
        Box(0.3, 0.4, 3.0, 1.5),
        "GPU node (× N)",
        "NVML: utilization, memory,\nECC/XID health, processes\nkubelet PodResources API",
        OUTSIDE,
    )
    agent = box(
        ax,
        Box(0.3, 2.6, 3.0, 2.1),
        "node agent",
        "DaemonSet, one per GPU node\nwindowed 1/5/15 min means\nwhich pod holds which GPU\n"
        "writes only on change",
        GPUPOOL,
    )
    api = box(
        ax,
        Box(4.4, 2.6, 3.6, 4.9),
        "Kubernetes API server",
        "GPUJob        (teams, namespaced)\nTeamQuota   (admins, cluster)\n"
        "GPUNode      (agents, cluster)\nNode, Pod, Service, Event\n\n"
        "CRDs with CEL validation,\nprinter columns, status\nsubresource",
        CLUSTER,
    )
    operator = box(
        ax,
        Box(9.1, 4.0, 3.9, 4.2),
        "operator (Deployment, kopf)",
        "in-memory indexes (no listing)\n   ↓  snapshot\nplanner: plan(snapshot, now)\n"
        "   ↓  admissions, preemptions,\n       resizes, reasons\n"
        "executor: pods, checkpoint hooks,\n"
        "evict, requeue\nstatus, conditions, Events\nleader schedules (kopf peering)\n"
        "validating webhook",
        GPUPOOL,
    )
    pods = box(
        ax,
        Box(9.1, 0.4, 3.9, 2.5),
        "training pods (the teams')",
        "gpupool.workload: one stdlib-only\nfile from the chart's ConfigMap\n"
        "SIGTERM → save → termination\nmessage; or POST /checkpoint\n"
        "resume from GPUPOOL_RESUME_FROM",
        WORKLOAD,
    )
    cli = box(
        ax,
        Box(4.4, 0.4, 3.6, 1.6),
        "gpupool / kubectl gpupool",
        "status, queue, top, explain\nsnapshot → replay (offline plan)",
        GPUPOOL,
    )
    sim = box(
        ax,
        Box(13.5, 4.6, 2.3, 2.0),
        "simulator",
        "cluster traces through\nthe operator's planner\n(the same code) and\nKueue-like baselines",
        PURE,
    )
    prom = box(
        ax,
        Box(0.3, 5.5, 3.0, 1.9),
        "Prometheus + Grafana",
        "per GPU and pod (agents),\nper team and cycle (operator);\n"
        "the dashboard ships in the chart",
        OUTSIDE,
    )

    arrow(ax, gpus.top, agent.bottom, "samples, pod ↔ GPU")
    arrow(ax, agent.right, api.at(0, 0.15), "GPUNode status", offset=(0, 0.18))
    arrow(ax, api.at(1, 0.72), operator.at(0, 0.72), "watch", offset=(0, 0.18))
    arrow(ax, operator.at(0, 0.35), api.at(1, 0.35), "pods, status, Events", offset=(0, -0.2))
    arrow(
        ax,
        api.at(1, 0.9),
        operator.at(0, 0.92),
        "admission review",
        bend=-0.25,
        offset=(-0.45, 0.35),
    )
    arrow(ax, operator.bottom, pods.top, "checkpoint hook, then evict", offset=(0, 0.0))
    arrow(
        ax, pods.at(0, 0.75), api.at(0.85, 0), "termination message", bend=-0.2, offset=(-0.2, -0.3)
    )
    arrow(ax, cli.top, api.bottom, "list / read", offset=(0.0, 0.0))
    link(ax, operator.at(1, 0.62), sim.left)
    arrow(ax, agent.top, prom.bottom, "/metrics", offset=(0.35, 0))
    arrow(ax, operator.at(0.25, 1), prom.at(0.75, 1), "/metrics", bend=0.12, offset=(0, 0.55))

    legend = [
        (CLUSTER, "Kubernetes"),
        (GPUPOOL, "gpupool's processes"),
        (PURE, "offline, same planner"),
        (WORKLOAD, "the teams' workloads"),
        (OUTSIDE, "hardware, other systems"),
    ]
    x = 7.3
    for colour, text in legend:
        ax.add_patch(
            FancyBboxPatch(
                (x, 8.95),
                0.25,
                0.25,
                boxstyle="round,pad=0.01",
                facecolor=colour,
                edgecolor="#555555",
            )
        )
        ax.text(x + 0.33, 9.07, text, fontsize=8.5, va="center")
        x += 0.6 + 0.085 * len(text)
    fig.savefig(OUT, bbox_inches="tight", facecolor="white")


if __name__ == "__main__":
    draw()
