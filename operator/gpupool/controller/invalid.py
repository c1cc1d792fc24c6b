"""Objects that cannot be scheduled as written: reported once, then left alone.

A GPUJob whose spec does not parse, nests too deep or is too large (`api/bounds.py`, and
objects the watch could only decode cut, `k8s/decoding.py`), and a TeamQuota that does
not parse or is refused for claiming another team's namespace: each gets one log line,
one Warning Event and one count in `gpupool_invalid_objects_total` per generation, and
is never planned. Everything else keeps being scheduled.
"""

from __future__ import annotations

import logging
from datetime import datetime

from gpupool.controller.executor import job_ref
from gpupool.controller.metrics import METRICS
from gpupool.controller.records import TeamRecord
from gpupool.controller.snapshot import Indexed
from gpupool.k8s.events import EventRecorder, ObjectRef

logger = logging.getLogger(__name__)


def team_ref(record: TeamRecord) -> ObjectRef:
    return ObjectRef("gpupool.io/v1alpha1", "TeamQuota", record.name, None, record.uid)


class InvalidObjects:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder
        # uid -> (generation, reason) last reported.
        self._reported: dict[str, tuple[int, str]] = {}

    def report(self, indexed: Indexed, now: datetime) -> None:
        current: dict[str, tuple[int, str]] = {}
        for job in indexed.jobs.values():
            if job.spec is None and not job.deleting:
                current[job.uid] = (job.generation, job.spec_error)
                if self._new(job.uid, job.generation, job.spec_error):
                    self._tell(
                        "GPUJob", job_ref(job), f"{job.namespace}/{job.name}", job.spec_error, now
                    )
        for team in indexed.teams.values():
            if team.spec is None:
                current[team.uid] = (team.generation, team.spec_error)
                if self._new(team.uid, team.generation, team.spec_error):
                    self._tell("TeamQuota", team_ref(team), team.name, team.spec_error, now)
        self._reported = current

    def _new(self, uid: str, generation: int, reason: str) -> bool:
        return self._reported.get(uid) != (generation, reason)

    def _tell(self, kind: str, ref: ObjectRef, name: str, reason: str, now: datetime) -> None:
        logger.warning("%s %s skipped: %s", kind, name, reason)
        METRICS.invalid_objects.labels(kind).inc()
        self._recorder.record(
            ref,
            reason="InvalidSpec",
            action="Validate",
            note=f"not scheduled: {reason}",
            now=now,
            type_="Warning",
        )
