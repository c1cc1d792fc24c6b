"""Placement: gang, best-fit on the fewest nodes, topology domains, data locality.

`Capacity` indexes the free GPUs of usable nodes in buckets by free count, for the
whole cluster and for every rack, NVLink domain and zone, so that a placement costs
O(distinct free counts) instead of a scan over the nodes:

- best fit: the smallest free block that holds the remaining workers, so single-GPU
  jobs fill partly used nodes and whole nodes stay free for the jobs that need them;
- fewest nodes: while no single node holds the rest, the node with most free GPUs;
- a domain (rack, ...) is chosen best-fit too: the one with the least free GPUs
  that holds the whole gang, preferring one that holds a data-locality node.

The index only ever answers for healthy GPUs on ready, schedulable nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from gpupool.planner.snapshot import Node, TopologyLevel

DOMAIN_LEVELS = (TopologyLevel.RACK, TopologyLevel.NVLINK_DOMAIN, TopologyLevel.ZONE)
_LEVEL_INDEX = {level: index for index, level in enumerate(DOMAIN_LEVELS)}

Bucket = dict[int, None]
# A placement: (node index, number of workers on it), in the order chosen.
Layout = list[tuple[int, int]]


class Shape(NamedTuple):
    """What one gang needs: `workers` × `gpus` inside one domain at `level` if any.

    A tuple, because the cycle hashes shapes for every pending job (fit memos).
    """

    gpus: int
    workers: int
    level: TopologyLevel = TopologyLevel.NONE
    required: bool = False

    @classmethod
    def of(cls, gpus: int, workers: int, level: TopologyLevel, required: bool) -> Shape:
        # One worker is always in one domain of any level; asking for it changes nothing.
        if workers == 1 or level is TopologyLevel.NONE:
            return cls(gpus, workers)
        return cls(gpus, workers, level, required)

    @property
    def total(self) -> int:
        return self.gpus * self.workers

    def describe(self) -> str:
        workers = "1 worker" if self.workers == 1 else f"{self.workers} workers"
        text = f"{workers} × {self.gpus} GPU{'s' if self.gpus != 1 else ''}"
        if self.level is TopologyLevel.NONE:
            return text
        where = level_name(self.level)
        return f"{text} in one {where}" + ("" if self.required else " (preferred)")


def level_name(level: TopologyLevel) -> str:
    return "NVLink domain" if level is TopologyLevel.NVLINK_DOMAIN else level.value


def _hostable(buckets: list[Bucket], gpus: int, want: int) -> int:
    """Workers of `gpus` the buckets can host, counting only up to `want`."""
    count = 0
    for free in range(len(buckets) - 1, gpus - 1, -1):
        nodes = len(buckets[free])
        if nodes:
            count += nodes * (free // gpus)
            if count >= want:
                return count
    return count


def _first(bucket: Bucket, skip: set[int]) -> int | None:
    for node in bucket:
        if node not in skip:
            return node
    return None


class Capacity:
    """Free GPUs per usable node, bucketed by free count, globally and per domain.

    A node's free count may be negative (more GPUs held than healthy, e.g. right after
    a GPU failed); such a node sits in bucket 0 and first pays back its debt when GPUs
    are given back to it.
    """

    __slots__ = (
        "_node_domains",
        "buckets",
        "domain_buckets",
        "domain_free",
        "domain_names",
        "domain_of",
        "free",
        "index",
        "names",
        "total_free",
        "usable",
        "version",
    )

    def __init__(self, nodes: Sequence[Node], held: Sequence[int]) -> None:
        self.names = [node.name for node in nodes]
        self.index = {node.name: i for i, node in enumerate(nodes)}
        self.usable = [node.usable for node in nodes]
        self.free = [
            node.healthy_gpus - held[i] if node.usable else 0 for i, node in enumerate(nodes)
        ]
        size = max((node.healthy_gpus for node in nodes if node.usable), default=0) + 1
        self.buckets: list[Bucket] = [{} for _ in range(size)]
        self.domain_names: list[list[str]] = []
        self.domain_of: list[list[int]] = []
        self.domain_buckets: list[list[list[Bucket]]] = []
        self.domain_free: list[list[int]] = []
        for level in DOMAIN_LEVELS:
            ids: dict[str, int] = {}
            of = []
            for node in nodes:
                label = node.domain(level)
                of.append(-1 if label is None else ids.setdefault(label, len(ids)))
            self.domain_names.append(list(ids))
            self.domain_of.append(of)
            self.domain_buckets.append([[{} for _ in range(size)] for _ in ids])
            self.domain_free.append([0] * len(ids))
        self._node_domains: list[tuple[tuple[int, int], ...]] = []
        self.total_free = 0
        for i, usable in enumerate(self.usable):
            doms = tuple(
                (number, self.domain_of[number][i])
                for number in range(len(DOMAIN_LEVELS))
                if self.domain_of[number][i] >= 0
            )
            self._node_domains.append(doms)
            if not usable:
                continue
            free = self.free[i]
            slot = free if free > 0 else 0
            self.buckets[slot][i] = None
            for number, dom in doms:
                self.domain_buckets[number][dom][slot][i] = None
                self.domain_free[number][dom] += slot
            self.total_free += slot
        self.version = 0

    # -- mutation --------------------------------------------------------------

    def _move(self, node: int, new_free: int) -> None:
        old_free = self.free[node]
        old = old_free if old_free > 0 else 0
        new = new_free if new_free > 0 else 0
        self.free[node] = new_free
        if old == new:
            return
        del self.buckets[old][node]
        self.buckets[new][node] = None
        for level, dom in self._node_domains[node]:
            buckets = self.domain_buckets[level][dom]
            del buckets[old][node]
            buckets[new][node] = None
            self.domain_free[level][dom] += new - old
        self.total_free += new - old
        self.version += 1

    def take(self, node: int, gpus: int) -> None:
        self._move(node, self.free[node] - gpus)

    def give(self, node: int, gpus: int) -> None:
        self._move(node, self.free[node] + gpus)

    def take_layout(self, layout: Layout, gpus: int) -> None:
        for node, workers in layout:
            self.take(node, workers * gpus)

    # -- queries ---------------------------------------------------------------

    def largest_free(self) -> int:
        for free in range(len(self.buckets) - 1, 0, -1):
            if self.buckets[free]:
                return free
        return 0

    def hostable(self, gpus: int, want: int) -> int:
        return _hostable(self.buckets, gpus, want)

    def domain_hostable(self, level: TopologyLevel, dom: int, gpus: int, want: int) -> int:
        return _hostable(self.domain_buckets[_LEVEL_INDEX[level]][dom], gpus, want)

    def most_free_domain(self, level: TopologyLevel) -> int:
        return max(self.domain_free[_LEVEL_INDEX[level]], default=0)

    def fits(self, shape: Shape) -> bool:
        """Whether `place` would succeed (cheap: counts only)."""
        if shape.total > self.total_free or shape.gpus >= len(self.buckets):
            return False
        if shape.level is TopologyLevel.NONE or not shape.required:
            return _hostable(self.buckets, shape.gpus, shape.workers) >= shape.workers
        if shape.level is TopologyLevel.NODE:
            return self.largest_free() >= shape.total
        level = _LEVEL_INDEX[shape.level]
        return any(
            free >= shape.total
            and _hostable(self.domain_buckets[level][dom], shape.gpus, shape.workers)
            >= shape.workers
            for dom, free in enumerate(self.domain_free[level])
        )

    # -- placement -------------------------------------------------------------

    def place(self, shape: Shape, preferred: Sequence[int] = ()) -> Layout | None:
        """Choose nodes for the whole gang, or None; the index is not changed."""
        if shape.total > self.total_free or shape.gpus >= len(self.buckets):
            return None
        if shape.level is TopologyLevel.NODE:
            layout = self._place_on_one_node(shape, preferred)
        elif shape.level is TopologyLevel.NONE:
            return self._place_in(self.buckets, shape, preferred)
        else:
            layout = self._place_in_domain(shape, preferred)
        if layout is None and not shape.required:
            return self._place_in(self.buckets, shape, preferred)
        return layout

    def place_in_domain(
        self, level: TopologyLevel, dom: int, shape: Shape, preferred: Sequence[int] = ()
    ) -> Layout | None:
        return self._place_in(self.domain_buckets[_LEVEL_INDEX[level]][dom], shape, preferred)

    def domain_index(self, level: TopologyLevel, node: int) -> int:
        return self.domain_of[_LEVEL_INDEX[level]][node]

    def _place_on_one_node(self, shape: Shape, preferred: Sequence[int]) -> Layout | None:
        need = shape.total
        best = None
        for node in preferred:
            free = self.free[node]
            if self.usable[node] and free >= need and (best is None or free < self.free[best]):
                best = node
        if best is not None:
            return [(best, shape.workers)]
        for free in range(need, len(self.buckets)):
            for node in self.buckets[free]:
                return [(node, shape.workers)]
        return None

    def _place_in_domain(self, shape: Shape, preferred: Sequence[int]) -> Layout | None:
        level = _LEVEL_INDEX[shape.level]
        of = self.domain_of[level]
        wanted = {of[node] for node in preferred if of[node] >= 0}
        best: tuple[int, int, int] | None = None
        for dom, free in enumerate(self.domain_free[level]):
            if free < shape.total:
                continue
            key = (0 if dom in wanted else 1, free, dom)
            if best is not None and key >= best:
                continue
            if _hostable(self.domain_buckets[level][dom], shape.gpus, shape.workers) >= (
                shape.workers
            ):
                best = key
        if best is None:
            return None
        dom = best[2]
        return self._place_in(
            self.domain_buckets[level][dom], shape, [n for n in preferred if of[n] == dom]
        )

    def _place_in(
        self, buckets: list[Bucket], shape: Shape, preferred: Iterable[int]
    ) -> Layout | None:
        gpus, remaining = shape.gpus, shape.workers
        if _hostable(buckets, gpus, remaining) < remaining:
            return None
        layout: Layout = []
        used: set[int] = set()
        for node in preferred:
            free = self.free[node]
            if node in used or not self.usable[node] or free < gpus:
                continue
            # A preferred node outside these buckets (another domain) is not ours.
            if node not in buckets[free]:
                continue
            workers = min(remaining, free // gpus)
            layout.append((node, workers))
            used.add(node)
            remaining -= workers
            if remaining == 0:
                return layout
        top = len(buckets) - 1
        while remaining:
            chosen = None
            for free in range(remaining * gpus, top + 1):
                chosen = _first(buckets[free], used)
                if chosen is not None:
                    break
            if chosen is not None:
                layout.append((chosen, remaining))
                return layout
            for free in range(top, gpus - 1, -1):
                chosen = _first(buckets[free], used)
                if chosen is not None:
                    break
            if chosen is None:
                return None
            workers = self.free[chosen] // gpus
            layout.append((chosen, workers))
            used.add(chosen)
            remaining -= workers
        return layout


@dataclass(frozen=True, slots=True)
class StaticCapacity:
    """The healthy capacity of usable nodes with nothing running: what could ever fit."""

    largest_node: int
    total: int
    # Per domain level: for each domain, the healthy GPU count of each of its nodes.
    domains: dict[TopologyLevel, list[list[int]]]

    @classmethod
    def of(cls, nodes: Sequence[Node]) -> StaticCapacity:
        usable = [node for node in nodes if node.usable]
        domains: dict[TopologyLevel, list[list[int]]] = {}
        for level in DOMAIN_LEVELS:
            groups: dict[str, list[int]] = {}
            for node in usable:
                label = node.domain(level)
                if label is not None:
                    groups.setdefault(label, []).append(node.healthy_gpus)
            domains[level] = list(groups.values())
        return cls(
            largest_node=max((node.healthy_gpus for node in usable), default=0),
            total=sum(node.healthy_gpus for node in usable),
            domains=domains,
        )

    def most_workers_in_one(self, level: TopologyLevel, gpus: int) -> int:
        return max((sum(h // gpus for h in group) for group in self.domains[level]), default=0)

    def why_never(self, shape: Shape) -> str | None:
        """Why the shape could not fit even on an empty cluster, or None if it could."""
        if shape.gpus > self.largest_node:
            return f"no node has {shape.gpus} healthy GPUs (largest node: {self.largest_node})"
        if shape.total > self.total:
            return (
                f"needs {shape.total} GPUs; the cluster has {self.total} healthy GPUs "
                "on ready, schedulable nodes"
            )
        if not shape.required or shape.level is TopologyLevel.NONE:
            return None
        if shape.level is TopologyLevel.NODE:
            if shape.total > self.largest_node:
                return f"needs {shape.total} GPUs on one node (largest node: {self.largest_node})"
            return None
        most = self.most_workers_in_one(shape.level, shape.gpus)
        if most < shape.workers:
            where = level_name(shape.level)
            return (
                f"needs {shape.describe()}; the largest {where} holds "
                f"{most} such worker{'s' if most != 1 else ''}"
            )
        return None
