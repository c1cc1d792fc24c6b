"""Kubernetes Events (events.k8s.io/v1): what happened to an object, for `kubectl describe`.

Posting is fire-and-forget through a bounded queue drained by a few workers: an Event
is worth a log line when it cannot be written, never a stalled scheduling loop. While
the operator's writes of record (status) are behind, the workers hold back for a while
(`defer_while`): an Event's time is when it happened, not when it was posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gpupool.k8s.client import KubeClient
from gpupool.k8s.errors import ApiError
from gpupool.k8s.resources import EVENTS

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]

REPORTING_CONTROLLER = "gpupool.io/operator"
# Cluster-scoped objects (TeamQuota, Node) have no namespace; their Events live here.
CLUSTER_EVENTS_NAMESPACE = "default"
_NOTE_LIMIT = 1024
# While deferring, a worker looks again this often, and posts after this long anyway.
DEFER_POLL_SECONDS = 0.5
MAX_DEFER_SECONDS = 120.0


@dataclass(frozen=True)
class ObjectRef:
    """The `regarding` / `related` object of an Event."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None

    def to_k8s(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.uid:
            ref["uid"] = self.uid
        return ref


def _micro_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_event(
    regarding: ObjectRef,
    *,
    reason: str,
    action: str,
    note: str,
    type_: EventType,
    now: datetime,
    instance: str,
    related: ObjectRef | None = None,
) -> dict[str, Any]:
    """The Event body (pure)."""
    namespace = regarding.namespace or CLUSTER_EVENTS_NAMESPACE
    body: dict[str, Any] = {
        "apiVersion": EVENTS.api_version,
        "kind": "Event",
        # <object>.<unique suffix>, as the kubelet names its Events (generateName may not
        # end in a dot).
        "metadata": {
            "name": f"{regarding.name[:200]}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
        },
        "eventTime": _micro_time(now),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance[:128],
        "action": action,
        "reason": reason,
        "type": type_,
        "note": note[:_NOTE_LIMIT],
        "regarding": regarding.to_k8s(),
    }
    if related is not None:
        body["related"] = related.to_k8s()
    return body


class EventRecorder:
    """Posts Events in the background; drops (and logs) when the queue is full."""

    def __init__(
        self, client: KubeClient, *, instance: str, workers: int = 4, capacity: int = 10_000
    ) -> None:
        self._client = client
        self._instance = instance
        # (when it was recorded, monotonic; the Event's body)
        self._queue: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue(maxsize=capacity)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        self._defer: Callable[[], bool] = _never
        self.dropped = 0

    def defer_while(self, condition: Callable[[], bool]) -> None:
        """Hold posting back while `condition()`, up to `MAX_DEFER_SECONDS` after each
        Event was recorded."""
        self._defer = condition

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._drain(), name=f"events-{i}") for i in range(self._workers)
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def flush(self) -> None:
        """Wait until everything queued so far was posted (tests, shutdown)."""
        await self._queue.join()

    def record(
        self,
        regarding: ObjectRef,
        *,
        reason: str,
        action: str,
        note: str,
        now: datetime,
        type_: EventType = "Normal",
        related: ObjectRef | None = None,
    ) -> None:
        body = build_event(
            regarding,
            reason=reason,
            action=action,
            note=note,
            type_=type_,
            now=now,
            instance=self._instance,
            related=related,
        )
        try:
            self._queue.put_nowait((time.monotonic(), body))
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("event queue full, dropped %s %s", reason, regarding.name)

    async def _drain(self) -> None:
        while True:
            recorded, body = await self._queue.get()
            try:
                for _ in range(math.ceil(MAX_DEFER_SECONDS / DEFER_POLL_SECONDS)):
                    if time.monotonic() - recorded >= MAX_DEFER_SECONDS or not self._defer():
                        break
                    await asyncio.sleep(DEFER_POLL_SECONDS)
                await self._client.create(EVENTS, body, body["metadata"]["namespace"])
            except ApiError as error:
                logger.warning("could not post event %s: %s", body["reason"], error)
            finally:
                self._queue.task_done()


def _never() -> bool:
    return False
