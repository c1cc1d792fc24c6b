"""A dev cluster's etcd, reached directly through its v3 JSON gateway.

For tests that must change what is stored behind the API server's back: objects that
vanish while the API server is down (so no watcher ever sees them deleted), and
compaction of etcd's history (so no watch can resume from before it).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from gpupool.devcluster.components import Component

REQUEST_TIMEOUT = 10.0


def object_key(group: str, plural: str, namespace: str | None, name: str) -> str:
    """Where kube-apiserver stores an object (its default --etcd-prefix, /registry)."""
    parts = ["", "registry", *([group] if group else []), plural]
    if namespace:
        parts.append(namespace)
    parts.append(name)
    return "/".join(parts)


class Etcd:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")

    @classmethod
    def of(cls, components: Mapping[str, Component]) -> Etcd:
        """The etcd of a kwokctl cluster (`DevCluster.components()`)."""
        for arg in components["etcd"].args:
            flag, _, value = arg.partition("=")
            if flag == "--advertise-client-urls":
                return cls(value.split(",")[0])
        raise ValueError("etcd's command line names no --advertise-client-urls")

    def _call(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.endpoint}/v3/{method}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def delete(self, key: str) -> int:
        """Delete one key; how many were deleted (0 or 1)."""
        encoded = base64.b64encode(key.encode()).decode()
        return int(self._call("kv/deleterange", {"key": encoded}).get("deleted", 0))

    def revision(self) -> int:
        answer = self._call(
            "kv/range", {"key": base64.b64encode(b"/").decode(), "count_only": True}
        )
        return int(answer["header"]["revision"])

    def compact(self) -> int:
        """Compact the history up to the current revision; that revision."""
        revision = self.revision()
        self._call("kv/compaction", {"revision": revision, "physical": True})
        return revision
