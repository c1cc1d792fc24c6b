"""The sampling loop shared by the real agent (one node) and the fakes (many).

One task ticks every `interval`: each node is polled, attributed and folded,
then published in the background when the policy says so, at most one write in
flight per node and a bounded number overall, so a slow API server delays
publishing but never sampling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence

from gpupool.agent.attribution import Attributor
from gpupool.agent.node import NodeAgent

log = logging.getLogger(__name__)


class AgentLoop:
    def __init__(
        self,
        agents: Sequence[NodeAgent],
        *,
        interval: float = 1.0,
        attributors: Mapping[str, Attributor] | None = None,
        poll_in_thread: bool = False,
        max_concurrent_publishes: int = 32,
    ) -> None:
        self.agents = list(agents)
        self.interval = interval
        self.attributors = dict(attributors or {})
        self.poll_in_thread = poll_in_thread
        self._publishing: dict[str, asyncio.Task[bool]] = {}
        self._limit = asyncio.Semaphore(max_concurrent_publishes)

    async def tick(self, now: float | None = None) -> None:
        """Sample every node once and start the publishes that are due."""
        now = time.monotonic() if now is None else now
        for agent in self.agents:
            try:
                await self._sample(agent, now)
            except Exception:
                # A bug in one node's sampling must not stop the agent (or the
                # other fake nodes); the next tick tries again.
                log.exception("node %s: sampling failed", agent.node_name)
                continue
            self._maybe_publish(agent, now)

    async def _sample(self, agent: NodeAgent, now: float) -> None:
        if self.poll_in_thread:
            # NVML calls block (ctypes); keep the event loop free for the API client.
            samples = await asyncio.to_thread(agent.poll, now)
        else:
            samples = agent.poll(now)
        attributor = self.attributors.get(agent.node_name)
        pods = await attributor.attribute(samples, now) if attributor and samples else {}
        agent.absorb(samples, pods, now)

    def _maybe_publish(self, agent: NodeAgent, now: float) -> None:
        if agent.publisher is None or agent.node_name in self._publishing:
            return
        if agent.publisher.blocked(now):
            return
        decision = agent.decide(now)
        if not decision.publish:
            return
        log.debug("node %s: publishing (%s)", agent.node_name, decision.reason)
        task = asyncio.create_task(self._publish(agent, now))
        self._publishing[agent.node_name] = task
        task.add_done_callback(lambda _: self._publishing.pop(agent.node_name, None))

    async def _publish(self, agent: NodeAgent, now: float) -> bool:
        async with self._limit:
            try:
                return await agent.publish(now)
            except Exception as exc:
                # The publisher turns API errors into backoff itself; anything else
                # (a malformed answer, a bug) is logged with its traceback and
                # backed off the same way, never allowed to stop the agent.
                log.exception("node %s: publish failed", agent.node_name)
                if agent.publisher is not None:
                    agent.publisher.failed(now, exc)
                return False

    async def publish_all(self) -> int:
        """Write every node's status now, whatever the policy says; how many succeeded."""
        await self.drain()
        now = time.monotonic()
        results = await asyncio.gather(*(self._publish(agent, now) for agent in self.agents))
        return sum(results)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for the publishes in flight (bounded), cancelling stragglers."""
        pending = list(self._publishing.values())
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()

    async def run(self, stop: asyncio.Event, duration: float | None = None) -> None:
        """Tick until `stop` is set (or `duration` seconds passed), then drain."""
        started = time.monotonic()
        deadline = None if duration is None else started + duration
        next_tick = started
        try:
            while not stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                await self.tick(now)
                next_tick += self.interval
                if next_tick < time.monotonic():
                    # Fell behind (overloaded host): skip ticks instead of bursting.
                    next_tick = time.monotonic() + self.interval
                wait = next_tick - time.monotonic()
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, wait))
        finally:
            await self.drain()
