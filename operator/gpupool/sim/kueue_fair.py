"""The `kueue-fair` baseline: Kueue's fair sharing, at its best for this problem.

The Kueue configuration it stands for (Kueue's "Fair Sharing" and "Preemption"
concept pages; KEP-1714):

    fairSharing:
      enable: true
      preemptionStrategies: [LessThanOrEqualToFinalShare, LessThanInitialShare]

and every team's ClusterQueue has `fairSharing.weight` = its TeamQuota weight,
`reclaimWithinCohort: Any`, no borrowing limit (unless maxGPUs), in one cohort.

- **Share.** A ClusterQueue's dominant resource share is its usage above its
  nominal quota over the cohort's lendable quota (the sum of nominal quotas, no
  lending limits), ×1000, divided by its weight, in integer arithmetic
  (`dominantResourceShare` in `pkg/cache/scheduler/fair_sharing.go`); 0 while it
  is within its nominal quota.
- **Admission order** (`entryOrdering.Less` in `pkg/scheduler/scheduler.go`):
  heads that fit without borrowing first, then the lower share *with* the head
  admitted, then priority, then creation time.
- **Preemption** (`fairPreemptionStrategy` in
  `pkg/scheduler/preemption/fair_strategy.go`, strategies in
  `pkg/scheduler/preemption/fairsharing/strategy.go`): candidates are the running
  workloads of ClusterQueues that are borrowing (and lower-priority ones of the
  preemptor's own queue), ordered by `CandidatesOrdering` (evicted first, then
  other queues, lower priority, most recently admitted). Target queues are tried
  highest share first (`fairsharing/ordering.go`). If the preemptor's queue stays
  within its nominal quota with the workload, candidates are taken regardless of
  shares (feature gate `FairSharingPreemptWithinNominal`). Otherwise rule S2-a,
  `LessThanOrEqualToFinalShare`: a candidate is taken when the preemptor's share
  with the workload is ≤ the target's share without the candidate; after each
  target the queue order is recomputed. Candidates that failed go to rule S2-b,
  `LessThanInitialShare`: the first of a queue is taken when the preemptor's new
  share is < the target queue's share before, once per queue. Targets are taken
  until the workload fits, then the ones not needed are put back.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpupool.planner import Team
from gpupool.sim.kueue_policy import KueuePolicy, Trial, _Cycle
from gpupool.sim.state import SimJob

# Kueue's share of a borrowing queue of weight 0 (math.MaxInt): preempted first.
ZERO_WEIGHT_SHARE = 2**63 - 1


class KueueFairPolicy(KueuePolicy):
    reclaim_needs_nominal = False

    def __init__(self, teams: Sequence[Team]) -> None:
        super().__init__("kueue-fair", teams, borrowing=True)
        self.lendable = sum(self.nominal.values())

    def share(self, team: str, usage: int) -> int:
        """Kueue's weighted dominant resource share of `team` at `usage` GPUs."""
        borrowed = usage - self.nominal[team]
        if borrowed <= 0 or self.lendable <= 0:
            return 0
        weight = round(self.weight[team] * 1000)
        if weight <= 0:
            return ZERO_WEIGHT_SHARE
        return (borrowed * 1000 // self.lendable) * 1000 // weight

    def _head_share(self, cycle: _Cycle, team: str, gpus: int) -> int:
        return self.share(team, cycle.usage[team] + gpus)

    def _select(self, trial: Trial) -> bool:
        job, usage = trial.job, trial.usage
        team = job.team
        queues: dict[str, list[SimJob]] = {}
        for victim in self._candidates(trial.cycle, job, usage):
            queues.setdefault(victim.team, []).append(victim)
        own = queues.pop(team, [])
        for victim in own:
            if trial.take(victim):
                return True
        within_nominal = usage[team] + job.gpus <= self.nominal[team]
        preemptor = self.share(team, usage[team] + job.gpus)
        retry: dict[str, list[SimJob]] = {}
        while queues:
            owner = max(queues, key=lambda name: (self.share(name, usage[name]), name))
            queue = queues[owner]
            if usage[owner] <= self.nominal[owner]:
                del queues[owner]
                continue
            if within_nominal:
                victim = queue.pop(0)
                if not queue:
                    del queues[owner]
                if trial.take(victim):
                    return True
                continue
            taken = None
            while queue:
                victim = queue.pop(0)
                if preemptor <= self.share(owner, usage[owner] - victim.gpus):
                    taken = victim
                    break
                retry.setdefault(owner, []).append(victim)
            if not queue:
                del queues[owner]
            if taken is None:
                continue
            if trial.take(taken):
                return True
        while retry:
            owner = max(retry, key=lambda name: (self.share(name, usage[name]), name))
            first = retry.pop(owner)[0]
            if preemptor < self.share(owner, usage[owner]) and trial.take(first):
                return True
        return False
