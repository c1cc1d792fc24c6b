"""The pure planner: `plan(snapshot, now) -> Plan`.

No kopf, kubernetes or network imports (a unit test enforces it): the operator, the
simulator and the tests all call it the same way, and time is injected.
"""

from gpupool.planner.plan import (
    Admission,
    IdleJob,
    PendingJob,
    Plan,
    Preemption,
    PreemptionReason,
    Resize,
    ResizeKind,
    TeamFigures,
)
from gpupool.planner.reasons import PendingReason
from gpupool.planner.scheduler import plan, replay
from gpupool.planner.snapshot import (
    IdleMode,
    IdleReclaimPolicy,
    Job,
    JobState,
    Node,
    PlacementPolicy,
    PlannerConfig,
    Snapshot,
    Team,
    TopologyLevel,
    WorkerPlacement,
)

__all__ = [
    "Admission",
    "IdleJob",
    "IdleMode",
    "IdleReclaimPolicy",
    "Job",
    "JobState",
    "Node",
    "PendingJob",
    "PendingReason",
    "PlacementPolicy",
    "Plan",
    "PlannerConfig",
    "Preemption",
    "PreemptionReason",
    "Resize",
    "ResizeKind",
    "Snapshot",
    "Team",
    "TeamFigures",
    "TopologyLevel",
    "WorkerPlacement",
    "plan",
    "replay",
]
