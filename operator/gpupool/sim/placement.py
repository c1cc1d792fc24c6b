"""First-fit placement, as a scheduler without topology awareness does it: each
worker goes to the first node (in a fixed order) with enough free GPUs."""

from __future__ import annotations

from collections.abc import Sequence

from gpupool.planner import Node, WorkerPlacement


def first_fit(
    free: Sequence[int], nodes: Sequence[Node], gpus: int, workers: int
) -> tuple[WorkerPlacement, ...] | None:
    """All `workers` × `gpus` on the first nodes that hold them, or None (gang)."""
    placed: list[WorkerPlacement] = []
    for i, room in enumerate(free):
        while room >= gpus and len(placed) < workers:
            placed.append(WorkerPlacement(nodes[i].name, gpus))
            room -= gpus
        if len(placed) == workers:
            return tuple(placed)
    return None


def fits(free: Sequence[int], gpus: int, workers: int) -> bool:
    """Whether `first_fit` would place the gang (cheap: counts only)."""
    if workers == 1:
        return max(free, default=0) >= gpus
    return sum(room // gpus for room in free) >= workers
