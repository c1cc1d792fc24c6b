"""kopf's peering resource (ClusterKopfPeering): how operator instances see each other.

kopf keeps one object per peering name; each instance writes its priority and a
keep-alive timestamp into its status. kopf installs neither the CRD (`PEERING_CRD` is
what the Helm chart and the tests apply) nor the object (`ensure_peering`).
"""

from __future__ import annotations

from typing import Any

from gpupool.k8s.client import KubeClient
from gpupool.k8s.errors import ApiError
from gpupool.k8s.resources import Resource

CLUSTER_PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", False, "ClusterKopfPeering")

PEERING_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {
        "scope": "Cluster",
        "group": "kopf.dev",
        "names": {
            "kind": "ClusterKopfPeering",
            "plural": "clusterkopfpeerings",
            "singular": "clusterkopfpeering",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            }
                        },
                    }
                },
            }
        ],
    },
}


async def read_peers(client: KubeClient, name: str) -> dict[str, Any] | None:
    """The peering object's status (identity -> {priority, lastseen, lifetime}); None if absent."""
    try:
        body = await client.get(CLUSTER_PEERINGS, name)
    except ApiError as error:
        if error.not_found:
            return None
        raise
    status: dict[str, Any] = body.get("status") or {}
    return status


async def ensure_peering(client: KubeClient, name: str) -> None:
    """Create the peering object kopf's instances write to (kopf only patches it)."""
    body = {
        "apiVersion": CLUSTER_PEERINGS.api_version,
        "kind": CLUSTER_PEERINGS.kind,
        "metadata": {"name": name},
    }
    try:
        await client.create(CLUSTER_PEERINGS, body)
    except ApiError as error:
        if error.not_found:
            raise RuntimeError(
                "the ClusterKopfPeering CRD (clusterkopfpeerings.kopf.dev) is not installed: "
                "install it (the Helm chart does) or run a single instance with --standalone"
            ) from error
        if not error.conflict:
            raise
