"""The API calls of the node agent: its Node, the pods on it, its GPUNode."""

from __future__ import annotations

from typing import Any

from gpupool.k8s.client import KubeClient
from gpupool.k8s.errors import ApiError
from gpupool.k8s.resources import GPUNODES, NODES, PODS

JSON = dict[str, Any]

# Terminal pods hold no GPU any more; the field selector keeps them out server-side.
_LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


async def get_node(client: KubeClient, name: str) -> JSON:
    return await client.get(NODES, name)


async def list_node_pods(client: KubeClient, node: str) -> list[JSON]:
    """Live pods bound to one node (the kubelet's view, through the API server)."""
    result = await client.list(PODS, field_selector=f"spec.nodeName={node},{_LIVE_PODS}")
    items: list[JSON] = result.get("items", [])
    return items


async def list_bound_pods(client: KubeClient) -> list[JSON]:
    """Live pods bound to any node: one call for many fake nodes instead of one each."""
    result = await client.list(PODS, field_selector=f"spec.nodeName!=,{_LIVE_PODS}")
    items: list[JSON] = result.get("items", [])
    return items


def gpunode_manifest(node: JSON) -> JSON:
    """A new GPUNode for `node`, owned by it so it is garbage-collected with it.

    No blockOwnerDeletion: setting it needs permission to update the Node's
    finalizers, which the agent does not (and should not) have.
    """
    name = node["metadata"]["name"]
    return {
        "apiVersion": GPUNODES.api_version,
        "kind": GPUNODES.kind,
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/part-of": "gpupool"},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": name,
                    "uid": node["metadata"]["uid"],
                }
            ],
        },
        "spec": {"nodeName": name},
    }


async def ensure_gpunode(client: KubeClient, node: JSON) -> JSON:
    """The node's GPUNode, created if absent (a concurrent create is not an error)."""
    name = node["metadata"]["name"]
    try:
        return await client.get(GPUNODES, name)
    except ApiError as error:
        if not error.not_found:
            raise
    try:
        return await client.create(GPUNODES, gpunode_manifest(node))
    except ApiError as error:
        if not error.conflict:
            raise
    return await client.get(GPUNODES, name)


async def patch_gpunode_status(client: KubeClient, name: str, status: JSON) -> JSON:
    """Replace what the agent owns in the status (lists are replaced whole by a merge patch)."""
    return await client.patch_status(GPUNODES, name, status)
