"""Reads for the command line: whole listings, the Events about one object, the
kubeconfig's namespace. The operator never lists (it keeps indexes); the CLI does."""

from __future__ import annotations

from typing import Any

from gpupool.k8s.client import KubeClient
from gpupool.k8s.errors import CredentialsError
from gpupool.k8s.kubeconfig import kubeconfig_namespace, kubeconfig_paths
from gpupool.k8s.resources import EVENTS, Resource

JSON = dict[str, Any]


async def list_items(
    client: KubeClient,
    resource: Resource,
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
) -> list[JSON]:
    """Every object of `resource` (in `namespace`, or all of them)."""
    answer = await client.list(resource, namespace, label_selector=label_selector)
    items: list[JSON] = answer.get("items") or []
    return items


async def events_about(client: KubeClient, namespace: str, kind: str, name: str) -> list[JSON]:
    """The events.k8s.io Events regarding one object, oldest first."""
    events = [
        event
        for event in await list_items(client, EVENTS, namespace)
        if (event.get("regarding") or {}).get("kind") == kind
        and (event.get("regarding") or {}).get("name") == name
    ]
    return sorted(events, key=event_time)


def event_time(event: JSON) -> str:
    """When an Event happened (events.k8s.io eventTime, else its deprecated fields)."""
    metadata = event.get("metadata") or {}
    return str(
        event.get("eventTime")
        or event.get("deprecatedLastTimestamp")
        or metadata.get("creationTimestamp")
        or ""
    )


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig's (current) context, as kubectl would use it
    (read without authenticating: no exec plugin runs for it)."""
    try:
        namespace = kubeconfig_namespace(kubeconfig_paths(kubeconfig), context)
    except CredentialsError:
        return "default"
    return namespace or "default"
