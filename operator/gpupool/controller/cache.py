"""The scheduling cache: decisions taken but not yet visible in the indexes.

Kueue's rule: record an admission in the cache first, apply it through the API
asynchronously, undo it when the API refuses. Until a job's pods show up in the pod
index, its *assumed* workers occupy their GPUs in every snapshot, so the next cycle
cannot give the same GPUs away. An assumption ends when:

- every assumed worker's pod is in the index (`settle`) — the pods now count themselves;
- the executor gives up on it (`forget`) — the API refused, the job goes back to the queue;
- it expires (`expire`): its creation finished `ttl` seconds ago and the pods still
  never appeared (a lost watch event, a pod deleted at once). Never while the creation
  is still in flight: a slow API server must not free GPUs that are being bound.

Retry back-offs and the set of workers a running job is expected to have (to notice a
worker that vanished) live here too. Times are seconds on the loop's clock, injected by
the caller. Nothing here is persisted: what must survive a restart is in GPUJob status
(see `ledger.py`) or in the pods themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from gpupool.controller.records import JobKey


@dataclass(frozen=True, slots=True)
class AssumedWorker:
    index: int
    node: str
    gpus: int


@dataclass(frozen=True, slots=True)
class Assumption:
    """Workers of `incarnation` being created; `created_at` is None while in flight."""

    incarnation: int
    workers: tuple[AssumedWorker, ...]
    created_at: float | None = None

    @property
    def gpus(self) -> int:
        return sum(worker.gpus for worker in self.workers)


@dataclass(frozen=True, slots=True)
class BackOff:
    until: float
    reason: str
    message: str


class SchedulingCache:
    def __init__(self, *, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._assumed: dict[JobKey, Assumption] = {}
        self._expected: dict[JobKey, tuple[int, frozenset[int]]] = {}
        self._retry_at: dict[JobKey, BackOff] = {}

    # --- assumed admissions -------------------------------------------------------------

    def assume(self, job: JobKey, incarnation: int, workers: Iterable[AssumedWorker]) -> None:
        """Record workers being created (an admission, or an elastic job's next
        incarnation at its new size)."""
        new = tuple(workers)
        current = self._assumed.get(job)
        if current is not None and current.incarnation == incarnation:
            new = current.workers + new
        self._assumed[job] = Assumption(incarnation, new)
        self.expect(job, incarnation, {worker.index for worker in new})

    def created(self, job: JobKey, now: float) -> None:
        """The executor created every pod of the assumption: start its expiry clock."""
        current = self._assumed.get(job)
        if current is not None:
            self._assumed[job] = replace(current, created_at=now)

    def assumption(self, job: JobKey) -> Assumption | None:
        return self._assumed.get(job)

    def unseen(self, job: JobKey, seen: set[tuple[int, int]]) -> tuple[AssumedWorker, ...]:
        """Assumed workers whose pod (incarnation, index) is not in the index yet."""
        current = self._assumed.get(job)
        if current is None:
            return ()
        return tuple(w for w in current.workers if (current.incarnation, w.index) not in seen)

    def settle(self, job: JobKey, seen: set[tuple[int, int]]) -> bool:
        """Forget the assumption once all its pods are indexed; True if it was settled."""
        current = self._assumed.get(job)
        if current is None or self.unseen(job, seen):
            return False
        del self._assumed[job]
        return True

    def forget(self, job: JobKey) -> Assumption | None:
        """Undo an assumption (the API refused the admission)."""
        return self._assumed.pop(job, None)

    def expire(self, now: float) -> list[JobKey]:
        expired = [
            job
            for job, assumed in self._assumed.items()
            if assumed.created_at is not None and now - assumed.created_at > self.ttl_seconds
        ]
        for job in expired:
            del self._assumed[job]
        return expired

    def assumed_jobs(self) -> Iterator[tuple[JobKey, Assumption]]:
        yield from self._assumed.items()

    # --- expected workers ---------------------------------------------------------------

    def expect(self, job: JobKey, incarnation: int, indices: Iterable[int]) -> None:
        """Add workers the job should have; a later absence means the worker was lost."""
        current = self._expected.get(job)
        known = current[1] if current is not None and current[0] == incarnation else frozenset()
        self._expected[job] = (incarnation, known | frozenset(indices))

    def expected(self, job: JobKey) -> tuple[int, frozenset[int]] | None:
        return self._expected.get(job)

    def unexpect(self, job: JobKey) -> None:
        self._expected.pop(job, None)

    # --- retry back-off -----------------------------------------------------------------

    def back_off(self, job: JobKey, until: float, reason: str, message: str) -> None:
        """Keep the job out of the queue until `until` (why: for its status)."""
        self._retry_at[job] = BackOff(until, reason, message)

    def retry_at(self, job: JobKey) -> float | None:
        found = self._retry_at.get(job)
        return None if found is None else found.until

    def backing_off(self, job: JobKey, now: float) -> BackOff | None:
        found = self._retry_at.get(job)
        if found is None:
            return None
        if now >= found.until:
            del self._retry_at[job]
            return None
        return found

    # --- housekeeping -------------------------------------------------------------------

    def drop(self, job: JobKey) -> None:
        """Forget everything about a deleted job."""
        self._assumed.pop(job, None)
        self._expected.pop(job, None)
        self._retry_at.pop(job, None)

    def jobs(self) -> set[JobKey]:
        return set(self._assumed) | set(self._expected) | set(self._retry_at)
