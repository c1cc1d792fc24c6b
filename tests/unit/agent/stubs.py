"""An in-memory stand-in for the KubeClient calls the agent makes."""

from __future__ import annotations

import copy
from typing import Any

from gpupool.k8s import GPUNODES, NODES, PODS, ApiError, Resource


class StubKube:
    """Nodes, pods and GPUNodes in dicts; `fail` queues errors for the next calls."""

    def __init__(self, nodes: dict[str, dict[str, str]] | None = None) -> None:
        self.nodes: dict[str, dict[str, Any]] = {
            name: {
                "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels},
                "status": {"capacity": {"nvidia.com/gpu": "4"}},
            }
            for name, labels in (nodes or {"n1": {}}).items()
        }
        self.gpunodes: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.fail: list[ApiError] = []
        self.calls: list[tuple[str, str]] = []

    def _maybe_fail(self, verb: str, name: str) -> None:
        self.calls.append((verb, name))
        if self.fail:
            raise self.fail.pop(0)

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Any:
        self._maybe_fail("get", f"{resource.plural}/{name}")
        store = self.nodes if resource == NODES else self.gpunodes
        if name not in store:
            raise ApiError(404, "NotFound", f"{resource.plural} {name!r} not found")
        return copy.deepcopy(store[name])

    async def list(self, resource: Resource, namespace: str | None = None, **_: Any) -> Any:
        self._maybe_fail("list", resource.plural)
        if resource == PODS:
            return {"items": copy.deepcopy(self.pods)}
        store = self.nodes if resource == NODES else self.gpunodes
        return {"items": [copy.deepcopy(v) for v in store.values()]}

    async def create(
        self, resource: Resource, body: dict[str, Any], namespace: str | None = None
    ) -> Any:
        assert resource == GPUNODES
        name = body["metadata"]["name"]
        self._maybe_fail("create", name)
        if name in self.gpunodes:
            raise ApiError(409, "AlreadyExists", "exists")
        self.gpunodes[name] = copy.deepcopy(body)
        return copy.deepcopy(body)

    async def patch_status(
        self, resource: Resource, name: str, status: dict[str, Any], namespace: str | None = None
    ) -> Any:
        self._maybe_fail("patch_status", name)
        if name not in self.gpunodes:
            raise ApiError(404, "NotFound", "gone")
        self.gpunodes[name]["status"] = copy.deepcopy(status)
        return copy.deepcopy(self.gpunodes[name])
