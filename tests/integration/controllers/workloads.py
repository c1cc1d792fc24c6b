"""What the controller tests share: pod templates for kwok nodes, waiting on objects."""

from __future__ import annotations

from typing import Any

from gpupool.devcluster import GPU_NODE_LABEL, GPU_RESOURCE, Cluster, wait_until

WAIT = 120.0


def pod_spec(gpus: int = 1, *, container: str = "train") -> dict[str, Any]:
    """A pod spec for the GPU nodes; kube-scheduler places its pods."""
    return {
        "nodeSelector": {GPU_NODE_LABEL: "true"},
        "containers": [
            {
                "name": container,
                "image": "busybox",
                "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
            }
        ],
    }


def gpu_nodes(cluster: Cluster) -> set[str]:
    return set(cluster.node_names(f"{GPU_NODE_LABEL}=true"))


def pods(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.kubectl_json(
        "get", "pods", "-n", namespace, "-l", selector
    )["items"]
    return items


def phases(cluster: Cluster, namespace: str, selector: str) -> list[str]:
    return sorted(p.get("status", {}).get("phase", "") for p in pods(cluster, namespace, selector))


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for entry in obj.get("status", {}).get("conditions") or ():
        if entry.get("type") == kind:
            status: str = entry.get("status", "")
            return status
    return None


def wait_condition(
    cluster: Cluster, resource: str, name: str, namespace: str, kind: str, timeout: float = WAIT
) -> dict[str, Any]:
    """Wait until the object's condition `kind` is True; the object."""

    def probe() -> dict[str, Any] | None:
        obj: dict[str, Any] = cluster.kubectl_json("get", resource, name, "-n", namespace)
        return obj if condition(obj, kind) == "True" else None

    return wait_until(f"{resource}/{name} {kind}", probe, timeout=timeout)


def wait_phases(
    cluster: Cluster, namespace: str, selector: str, expected: list[str], timeout: float = WAIT
) -> None:
    wait_until(
        f"pods {selector} in {expected}",
        lambda: phases(cluster, namespace, selector) == sorted(expected),
        timeout=timeout,
    )
