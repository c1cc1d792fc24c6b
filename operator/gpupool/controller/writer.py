"""Step 8: status writes — only when the rendering differs from what is stored.

Every status write of a job goes through `StatusWriter.sync`, serialized per object and
rendered at send time from the latest view and ledger. So the loop's routine writes and
the executor's durable ones (the preemption record before a hook, the checkpoint before
the pods go) can never overtake each other with stale content.

What is stored is the newer of the indexed object and this writer's last successful
patch response (by resourceVersion): the index trails our own writes by a watch event,
and diffing against it alone would repeat every write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from gpupool.controller.metrics import METRICS
from gpupool.controller.status import (
    MINOR_JOB_FIELDS,
    MINOR_TEAM_FIELDS,
    is_minor,
    merge_patch,
)
from gpupool.k8s import GPUJOBS, TEAMQUOTAS, ApiError, KubeClient, Resource

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str]
"""(namespace, name); namespace "" for cluster-scoped objects."""


Stored = tuple[str, Mapping[str, Any]]
"""(resourceVersion, status) of an object as stored."""

Render = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
"""Stored status -> desired status (None: nothing to write, e.g. the object is gone)."""


# What only gpupool may change in a GPUJob's status: the facts of its ledger.
GUARDED_JOB_FIELDS = ("phase", "preemptions", "restarts", "failures", "lastCheckpoint")


def guarded(status: Mapping[str, Any]) -> tuple[object, ...]:
    """The ledger's facts as a status states them (the checkpoint by its location)."""
    checkpoint = status.get("lastCheckpoint")
    location = checkpoint.get("location") if isinstance(checkpoint, Mapping) else checkpoint
    return (
        status.get("phase"),
        status.get("preemptions", 0),
        status.get("restarts", 0),
        status.get("failures", 0),
        location,
    )


def _version(value: str) -> int:
    # resourceVersions are opaque by contract; every API server in practice (etcd
    # revisions) issues increasing integers. An unparsable one counts as oldest.
    try:
        return int(value)
    except ValueError:
        return -1


class StatusWriter:
    def __init__(
        self,
        client: KubeClient,
        *,
        concurrency: asyncio.Semaphore,
        minor_interval: float,
        monotonic: Callable[[], float],
        minor_rate: float = 20.0,
        urgent_concurrency: asyncio.Semaphore | None = None,
    ) -> None:
        self._client = client
        self._concurrency = concurrency
        # Forced writes (the executor's records: what a preemption, a checkpoint or a
        # requeue depends on) do not wait behind the routine ones.
        self._urgent_concurrency = urgent_concurrency or concurrency
        self.minor_interval = minor_interval
        # Minor writes share a token bucket: 10,000 pending jobs whose queue positions all
        # moved must not flood the API server (nor the operator's own watch).
        self._minor_rate = minor_rate
        self._tokens = minor_rate
        self._refilled = monotonic()
        self._monotonic = monotonic
        self._locks: dict[tuple[str, ObjectKey], asyncio.Lock] = {}
        self._written: dict[tuple[str, ObjectKey], tuple[str, Mapping[str, Any]]] = {}
        self._last_write: dict[tuple[str, ObjectKey], float] = {}
        # Per job: (resourceVersion, guarded facts) of the status as this writer left it.
        self._guarded: dict[ObjectKey, tuple[str, tuple[object, ...]]] = {}
        self.writes = 0

    def _lock(self, kind: str, key: ObjectKey) -> asyncio.Lock:
        lock = self._locks.get((kind, key))
        if lock is None:
            lock = self._locks[(kind, key)] = asyncio.Lock()
        return lock

    def stored(self, kind: str, key: ObjectKey, indexed: Mapping[str, Any], version: str) -> Stored:
        """The newer of the indexed status and our last write."""
        written = self._written.get((kind, key))
        if written is not None and _version(written[0]) >= _version(version):
            return written
        if written is not None:
            del self._written[(kind, key)]
        return version, indexed

    def settle(self, kind: str, key: ObjectKey, version: str) -> None:
        """Drop our copy of a write once the index holds it (or something newer)."""
        written = self._written.get((kind, key))
        if written is not None and _version(version) >= _version(written[0]):
            del self._written[(kind, key)]

    def overwritten(
        self, key: ObjectKey, version: str, status: Callable[[], Mapping[str, Any]]
    ) -> list[str]:
        """The ledger's facts someone else changed since this writer's last write.

        Only a job's status stored after our last write (a newer resourceVersion) is
        read; each change is reported once (the rewrite that follows is ours again).
        """
        last = self._guarded.get(key)
        if last is None or version == last[0] or _version(version) <= _version(last[0]):
            return []
        current = guarded(status())
        self._guarded[key] = (version, current)
        return [
            f"status.{name}: {value!r} (gpupool recorded {mine!r})"
            for name, value, mine in zip(GUARDED_JOB_FIELDS, current, last[1], strict=True)
            if value != mine
        ]

    async def sync_job(
        self,
        key: ObjectKey,
        current: Callable[[], Stored | None],
        render: Render,
        *,
        force: bool = False,
    ) -> bool:
        """Render the job's status now and write it if it changed; False if that failed.

        `current` reads the indexed object; `render` turns the stored status (the newer
        of the indexed one and our last write) into the desired one.
        """
        return await self._sync("job", key, GPUJOBS, current, render, MINOR_JOB_FIELDS, force)

    async def sync_team(
        self, name: str, current: Callable[[], Stored | None], render: Render
    ) -> bool:
        return await self._sync(
            "team", ("", name), TEAMQUOTAS, current, render, MINOR_TEAM_FIELDS, False
        )

    async def _sync(
        self,
        kind: str,
        key: ObjectKey,
        resource: Resource,
        current: Callable[[], Stored | None],
        render: Render,
        minor: frozenset[str],
        force: bool,
    ) -> bool:
        async with self._lock(kind, key):
            indexed = current()
            if indexed is None:
                return True
            version, stored = self.stored(kind, key, indexed[1], indexed[0])
            desired = render(stored)
            if desired is None:
                return True
            patch = merge_patch(stored, desired)
            if not patch:
                return True
            now = self._monotonic()
            minor_patch = not force and is_minor(patch, stored, minor)
            if minor_patch and not self._minor_allowed(kind, key):
                return True
            try:
                async with self._urgent_concurrency if force else self._concurrency:
                    result = await self._client.patch_status(
                        resource, key[1], patch, key[0] or None
                    )
            except ApiError as error:
                if not error.not_found:
                    logger.warning("status of %s %s/%s not written: %s", kind, *key, error)
                return error.not_found
            self.writes += 1
            METRICS.status_writes.labels(
                kind, "forced" if force else "minor" if minor_patch else "change"
            ).inc()
            self._last_write[(kind, key)] = now
            written = str((result.get("metadata") or {}).get("resourceVersion", version))
            self._written[(kind, key)] = (written, result.get("status") or {})
            if kind == "job":
                self._guarded[key] = (written, guarded(result.get("status") or {}))
            return True

    def _minor_allowed(self, kind: str, key: ObjectKey) -> bool:
        now = self._monotonic()
        if now - self._last_write.get((kind, key), -1e18) < self.minor_interval:
            return False
        self._tokens = min(
            self._minor_rate * 2, self._tokens + (now - self._refilled) * self._minor_rate
        )
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def forget(self, kind: str, key: ObjectKey) -> None:
        self._written.pop((kind, key), None)
        self._last_write.pop((kind, key), None)
        if kind == "job":
            self._guarded.pop(key, None)
        lock = self._locks.get((kind, key))
        if lock is not None and not lock.locked():
            del self._locks[(kind, key)]
