"""The phase of every object in a namespace, followed by a watch (benchmarks)."""

from __future__ import annotations

import asyncio
import math
import time

from gpupool.k8s import GPUJOBS, ApiError, KubeClient, Resource


class Phases:
    """The phase of every object (GPUJobs, pods) in one namespace, kept by a watch.

    Polling a LIST of thousands of GPUJobs every few seconds would make the API server
    serialize them all each time, CPU taken from the operator being measured; a watch
    costs one event per change and tells the moment the last job starts.
    """

    def __init__(self, client: KubeClient, namespace: str, resource: Resource = GPUJOBS) -> None:
        self._client = client
        self._namespace = namespace
        self._resource = resource
        self._phases: dict[str, str] = {}
        # When each object was first seen Running (monotonic seconds).
        self._first_running: dict[str, float] = {}
        self._changed = asyncio.Event()

    def running(self) -> int:
        return sum(1 for phase in self._phases.values() if phase == "Running")

    def _saw(self, name: str, phase: str) -> None:
        self._phases[name] = phase
        if phase == "Running":
            self._first_running.setdefault(name, time.monotonic())

    def seconds_until_share_ran(self, share: float, count: int, started: float) -> float | None:
        """Seconds from `started` until `share` of `count` objects had been Running."""
        times = sorted(self._first_running.values())
        needed = max(1, math.ceil(share * count))
        return times[needed - 1] - started if len(times) >= needed else None

    async def follow(self) -> None:
        """List, then watch from there; list again when the watch ends or fails."""
        while True:
            try:
                listing = await self._client.list(self._resource, self._namespace)
                self._phases = {}
                for job in listing.get("items") or ():
                    self._saw(job["metadata"]["name"], (job.get("status") or {}).get("phase", ""))
                self._changed.set()
                version = listing["metadata"]["resourceVersion"]
                async for event in self._client.watch(
                    self._resource, self._namespace, resource_version=version, timeout_seconds=60
                ):
                    job = event["object"]
                    if event["type"] == "DELETED":
                        self._phases.pop(job["metadata"]["name"], None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        phase = (job.get("status") or {}).get("phase", "")
                        self._saw(job["metadata"]["name"], phase)
                    self._changed.set()
            except ApiError:
                await asyncio.sleep(1.0)

    async def wait_running(self, count: int, timeout: float, started: float) -> float | None:
        """Seconds from `started` until `count` jobs run; None after `timeout`."""
        deadline = started + timeout
        while self.running() < count:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return None
        return time.monotonic() - started
