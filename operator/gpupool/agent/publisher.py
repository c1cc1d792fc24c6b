"""Writing GPUNode status without ever crashing the agent: API errors back off."""

from __future__ import annotations

import logging

from gpupool.agent.policy import Backoff
from gpupool.agent.status import NodeTopology
from gpupool.k8s import ApiError, KubeClient
from gpupool.k8s.gpunodes import JSON, ensure_gpunode, get_node, patch_gpunode_status

log = logging.getLogger(__name__)


def topology_from_node(node: JSON) -> NodeTopology:
    labels: dict[str, str] = node.get("metadata", {}).get("labels") or {}
    return NodeTopology(
        rack=labels.get("gpupool.io/rack", ""),
        zone=labels.get("topology.kubernetes.io/zone", ""),
        nvlink_domain=labels.get("gpupool.io/nvlink-domain", ""),
    )


class Publisher:
    """Writes one node's GPUNode status; API failures back off, they never raise."""

    def __init__(
        self,
        client: KubeClient,
        node_name: str,
        *,
        topology_refresh: float = 300.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.topology_refresh = topology_refresh
        self.backoff = backoff or Backoff()
        self.topology: NodeTopology | None = None
        self.existing_status: JSON | None = None
        """The status found on the GPUNode at start (conditions carry over from it)."""
        self.ready = False
        self.failures = 0
        self.retry_at = 0.0
        self.errors_total = 0
        self.published_total = 0
        self.last_error = ""
        self._topology_at = float("-inf")
        self._node: JSON | None = None

    def blocked(self, now: float) -> bool:
        """In backoff after a failure: don't try before retry_at."""
        return now < self.retry_at

    def use_node(self, node: JSON, now: float) -> None:
        """A fresh copy of the Node read elsewhere (one list for many fake nodes)."""
        self._node = node
        self.topology = topology_from_node(node)
        self._topology_at = now

    async def prepare(self, now: float) -> bool:
        """Read the Node (topology, owner UID) and make sure the GPUNode exists."""
        stale = now - self._topology_at >= self.topology_refresh
        if self.ready and not stale:
            return True
        try:
            if self._node is None or stale:
                self.use_node(await get_node(self.client, self.node_name), now)
            if not self.ready and self._node is not None:
                existing = await ensure_gpunode(self.client, self._node)
                self.existing_status = existing.get("status")
                self.ready = True
        except ApiError as error:
            self.failed(now, error)
            return False
        return True

    async def publish(self, status: JSON, now: float) -> bool:
        """One status write; on failure schedule the next try and return False."""
        if self.blocked(now) or not await self.prepare(now):
            return False
        try:
            await patch_gpunode_status(self.client, self.node_name, status)
        except ApiError as error:
            if error.not_found:
                # Deleted under us (or with its Node): recreate on the next try.
                self.ready = False
            self.failed(now, error)
            return False
        self.failures = 0
        self.retry_at = 0.0
        self.published_total += 1
        return True

    def failed(self, now: float, error: Exception) -> None:
        """Count a failed call and back off before the next one."""
        self.failures += 1
        self.errors_total += 1
        delay = self.backoff.delay(self.failures)
        self.retry_at = now + delay
        message = f"{error}"
        if message != self.last_error or self.failures == 1:
            log.warning(
                "GPUNode/%s: API error, retrying in %.1fs: %s", self.node_name, delay, message
            )
        self.last_error = message
