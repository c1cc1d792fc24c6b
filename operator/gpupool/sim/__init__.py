"""Trace-driven simulator: replay a job trace through a scheduling policy.

`gpupool` drives the operator's own planner; `static` and `borrow` are faithful
Kueue configurations. See docs/simulator.md for the model and the policies.
"""

from gpupool.sim.engine import simulate
from gpupool.sim.metrics import PolicyResult
from gpupool.sim.model import SimConfig
from gpupool.sim.policy import POLICY_NAMES, make_policy
from gpupool.sim.teams import derive_teams, load_teams
from gpupool.sim.trace import TraceJob, load_trace

__all__ = [
    "POLICY_NAMES",
    "PolicyResult",
    "SimConfig",
    "TraceJob",
    "derive_teams",
    "load_teams",
    "load_trace",
    "make_policy",
    "simulate",
]
