"""What the simulation assumes about the cluster and the jobs, in one place.

- Nodes of `gpus_per_node` GPUs, `nodes_per_rack` to a rack.
- A job of G GPUs is one worker (one pod, on one node) when G fits a node, else
  workers of the largest size ≤ a node that divides G (16 → 2 × 8, 12 → 2 × 6):
  a pod never spans nodes, so a multi-node job's placement decides its racks.
- Spreading slows a job down: its run time is multiplied by
  `1 + node_penalty × (nodes − fewest possible) + rack_penalty × (racks − fewest
  possible)`, the fewest racks being those its fewest nodes need.
  Philly measured median GPU utilization ≈75% for 8-GPU jobs on one server and
  ≈38% for 16-GPU jobs across two (Jeon et al., ATC '19): one network boundary
  costs about 0.75 / 0.38 − 1 ≈ 0.97 of the run time. A rack boundary adds an
  oversubscribed hop on top of that; we charge half as much per extra rack. The
  trace's durations are taken as the run time on the most compact placement.
- Utilization: the trace's `utilization` column when present, else a seeded model
  of the published figures (traces/README.md): jobs of ≥ 8 GPUs busy at 70–100%,
  smaller ones at a median of 50%; half the small jobs and a quarter of the large
  ones sit at 0% for a long stretch (60–100% of their run), so that about 30% of
  running GPU-time is near 0%, as in Philly. Where the stretch lies is part of the
  job's own progress (`IdleModel.OWED`, the default: a job taken off its GPUs while
  idle still has the rest of the stretch ahead of it, under every policy) or of the
  wall clock (`IdleModel.PASSES`: a user away, a pipeline waiting — the stretch goes
  on while the job is off its GPUs, under every policy).
- Idleness is seen as the operator sees it: through the agent's 1-minute windows,
  published every 10 s, so a stretch is reported `idle_window + publish_seconds`
  after it began and ends `publish_seconds` after it ended.
- Eviction is SIGTERM under every policy (Kueue suspends the Job, the kubelet
  sends SIGTERM and waits the grace period; gpupool's default hook is that same
  signal). A seeded `sigterm_save` fraction of the jobs, the same jobs for every
  policy, handles it: it saves within the grace (`save_seconds`, holding its GPUs
  meanwhile) and resumes from there. The others die at once and resume from
  their last periodic checkpoint (`checkpoint_interval`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gpupool.planner import Node, WorkerPlacement
from gpupool.sim.trace import TraceJob

PHILLY_PACKED_UTILIZATION = 0.75
PHILLY_SPREAD_UTILIZATION = 0.38
NODE_PENALTY = PHILLY_PACKED_UTILIZATION / PHILLY_SPREAD_UTILIZATION - 1.0
RACK_PENALTY = NODE_PENALTY / 2.0


class IdleModel(StrEnum):
    """Whether an idle stretch belongs to the job's progress or to the wall clock."""

    OWED = "owed"
    PASSES = "passes"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything a run depends on besides the trace, the teams and the policy."""

    gpus: int
    gpus_per_node: int = 8
    nodes_per_rack: int = 4
    # Workloads checkpoint this often on their own (wall-clock seconds of running).
    checkpoint_interval: float = 1800.0
    # The fraction of jobs that save on SIGTERM, how long the save takes (the job
    # holds its GPUs meanwhile) and the grace period it gets (gpupool's hook timeout).
    sigterm_save: float = 0.5
    save_seconds: float = 60.0
    hook_timeout: float = 120.0
    idle_model: IdleModel = IdleModel.OWED
    # The agent's utilization window and publishing period (idle detection lag).
    idle_window: float = 60.0
    publish_seconds: float = 10.0
    # The scheduling loop runs at most once per cycle; events in between are batched.
    cycle_seconds: float = 60.0
    node_penalty: float = NODE_PENALTY
    rack_penalty: float = RACK_PENALTY
    seed: int = 0

    @property
    def node_count(self) -> int:
        return math.ceil(self.gpus / self.gpus_per_node)

    @property
    def idle_seen_after(self) -> float:
        """How long after a job goes idle the operator sees it idle."""
        return self.idle_window + self.publish_seconds


def build_nodes(config: SimConfig) -> tuple[Node, ...]:
    """`gpus` GPUs on nodes of `gpus_per_node` (the last one smaller if it must be)."""
    nodes = []
    left = config.gpus
    for i in range(config.node_count):
        gpus = min(config.gpus_per_node, left)
        left -= gpus
        rack = f"rack-{i // config.nodes_per_rack + 1:03d}"
        nodes.append(Node(name=f"node-{i + 1:04d}", gpus=gpus, rack=rack))
    return tuple(nodes)


def worker_shape(gpus: int, gpus_per_node: int) -> tuple[int, int]:
    """(GPUs per worker, workers) for a job of `gpus` GPUs."""
    if gpus <= gpus_per_node:
        return gpus, 1
    size = max(d for d in range(1, gpus_per_node + 1) if gpus % d == 0)
    return size, gpus // size


def slowdown(
    workers: Sequence[WorkerPlacement],
    racks: dict[str, str | None],
    gpus_per_node: int,
    config: SimConfig,
) -> float:
    """Run-time factor of a placement (1.0: as compact as the job can be)."""
    nodes = {worker.node for worker in workers}
    total = sum(worker.gpus for worker in workers)
    fewest = math.ceil(total / gpus_per_node)
    fewest_racks = math.ceil(fewest / config.nodes_per_rack)
    spanned = {racks[node] for node in nodes}
    return (
        1.0
        + config.node_penalty * max(0, len(nodes) - fewest)
        + config.rack_penalty * max(0, len(spanned) - fewest_racks)
    )


@dataclass(frozen=True, slots=True)
class Utilization:
    """A job's GPU utilization (0–100) along its work: `busy`, except 0 on
    [idle_start, idle_end) (in seconds of work done)."""

    busy: float
    idle_start: float = 0.0
    idle_end: float = 0.0

    def busy_seconds(self, start: float, end: float) -> float:
        """Work seconds in [start, end) spent busy."""
        overlap = max(0.0, min(end, self.idle_end) - max(start, self.idle_start))
        return max(0.0, end - start) - overlap


def sigterm_savers(trace: Sequence[TraceJob], seed: int, fraction: float) -> list[bool]:
    """Which jobs save on SIGTERM: the same jobs under every policy of a run, and a
    larger fraction keeps every job a smaller one had (one uniform draw per job)."""
    rng = random.Random(f"{seed}:sigterm")
    return [rng.random() < fraction for _ in trace]


def utilization_model(trace: Sequence[TraceJob], seed: int) -> list[Utilization]:
    """One profile per trace job, the same for every policy of a run."""
    rng = random.Random(seed)
    profiles = []
    for job in trace:
        large = job.gpus >= 8
        busy = rng.uniform(70.0, 100.0) if large else 100.0 * rng.betavariate(2.0, 2.0)
        idles = rng.random() < (0.25 if large else 0.5)
        length = rng.uniform(0.6, 1.0) * job.duration
        offset = rng.random() * (job.duration - length)
        if job.utilization is not None:
            busy = job.utilization
            idles = job.utilization < 5.0
            length, offset = job.duration, 0.0
        profiles.append(Utilization(busy, offset, offset + length) if idles else Utilization(busy))
    return profiles
