"""An in-memory API server and index sources, for driving the loop without a cluster.

Only what the operator uses: create (AlreadyExists), get, list, merge patch (main and
status), delete (with uid precondition; pods vanish at once, as kwok deletes them), and
a watch that ends immediately. The sources rebuild index records from the stored
objects on every read, as kopf's indexes would hold them.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from gpupool.controller.records import (
    GPUPodRecord,
    JobKey,
    JobRecord,
    NodeRecord,
    PodRecord,
    TeamRecord,
    gpu_pod_record,
    gpunode_record,
    job_record,
    node_record,
    pod_record,
    team_record,
)
from gpupool.controller.snapshot import Indexed
from gpupool.k8s import ApiError, Resource

JSON = dict[str, Any]


def _merge(target: JSON, patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], JSON] = {}
        self._version = itertools.count(100)
        self._uid = itertools.count(1)
        self.calls: list[tuple[str, str, str]] = []
        self.refuse: set[tuple[str, str]] = set()

    def _key(self, resource: Resource, namespace: str | None, name: str) -> tuple[str, str, str]:
        return (resource.plural, namespace or "", name)

    def _stamp(self, body: JSON) -> None:
        body["metadata"]["resourceVersion"] = str(next(self._version))

    def put(self, resource: Resource, body: JSON) -> JSON:
        """Store an object as if a user created it (tests)."""
        body = copy.deepcopy(body)
        metadata = body.setdefault("metadata", {})
        metadata.setdefault("uid", f"uid-{next(self._uid)}")
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", "2026-01-01T12:00:00Z")
        self._stamp(body)
        self.objects[self._key(resource, metadata.get("namespace"), metadata["name"])] = body
        return body

    def items(self, resource: Resource) -> list[JSON]:
        return [obj for (plural, _, _), obj in self.objects.items() if plural == resource.plural]

    async def create(
        self, resource: Resource, body: JSON, namespace: str | None = None, *, dry_run: bool = False
    ) -> JSON:
        verb = "dry-run create" if dry_run else "create"
        self.calls.append((verb, resource.plural, body["metadata"].get("name", "")))
        key = self._key(resource, namespace, body["metadata"].get("name", ""))
        if (resource.plural, key[2]) in self.refuse or (resource.plural, "*") in self.refuse:
            raise ApiError(422, "Invalid", f"refused {key[2]}")
        if dry_run:
            return copy.deepcopy(body)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f"{key[2]} exists")
        body = copy.deepcopy(body)
        body["metadata"]["namespace"] = namespace
        if resource.plural == "events":
            body["metadata"]["name"] = f"event-{next(self._uid)}"
            key = self._key(resource, namespace, body["metadata"]["name"])
        return copy.deepcopy(self.put(resource, body))

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        found = self.objects.get(self._key(resource, namespace, name))
        if found is None:
            raise ApiError(404, "NotFound", name)
        return copy.deepcopy(found)

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON:
        items = [
            copy.deepcopy(obj)
            for (plural, ns, _), obj in self.objects.items()
            if plural == resource.plural and (namespace is None or ns == namespace)
        ]
        return {"items": items, "metadata": {"resourceVersion": str(next(self._version))}}

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = "",
    ) -> JSON:
        self.calls.append(
            ("patch" + (f"/{subresource}" if subresource else ""), resource.plural, name)
        )
        found = self.objects.get(self._key(resource, namespace, name))
        if found is None:
            raise ApiError(404, "NotFound", name)
        _merge(found, patch)
        self._stamp(found)
        return copy.deepcopy(found)

    async def patch_status(
        self, resource: Resource, name: str, status: JSON, namespace: str | None = None
    ) -> JSON:
        return await self.patch(resource, name, {"status": status}, namespace, subresource="status")

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        missing_ok: bool = True,
    ) -> JSON | None:
        self.calls.append(("delete", resource.plural, name))
        key = self._key(resource, namespace, name)
        found = self.objects.get(key)
        if found is None or (uid is not None and found["metadata"]["uid"] != uid):
            if missing_ok:
                return None
            raise ApiError(404, "NotFound", name)
        del self.objects[key]
        return found

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[JSON]:
        for _ in ():
            yield {}

    async def close(self) -> None:
        return None


class FakeSources:
    """Index records rebuilt from the fake API server's objects."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    def _plural(self, plural: str) -> list[JSON]:
        return [obj for (p, _, _), obj in self.kube.objects.items() if p == plural]

    def read(self) -> Indexed:
        jobs = [job_record(obj) for obj in self._plural("gpujobs")]
        pods: dict[JobKey, list[PodRecord]] = {}
        others: dict[str, list[GPUPodRecord]] = {}
        for obj in self._plural("pods"):
            record = pod_record(obj)
            if record is not None:
                pods.setdefault(record.job_key, []).append(record)
            elif (other := gpu_pod_record(obj)) is not None:
                others.setdefault(other.node, []).append(other)
        return Indexed(
            jobs={job.key: job for job in jobs},
            teams={t.name: t for t in map(team_record, self._plural("teamquotas"))},
            nodes={n.name: n for n in map(node_record, self._plural("nodes"))},
            gpunodes={g.node: g for g in map(gpunode_record, self._plural("gpunodes"))},
            pods={key: tuple(value) for key, value in pods.items()},
            gpu_pods={node: tuple(value) for node, value in others.items()},
        )

    def job(self, key: JobKey) -> JobRecord | None:
        found = self.kube.objects.get(("gpujobs", key[0], key[1]))
        return None if found is None else job_record(found)

    def team(self, name: str) -> TeamRecord | None:
        found = self.kube.objects.get(("teamquotas", "", name))
        return None if found is None else team_record(found)

    def pods(self, key: JobKey) -> Sequence[PodRecord]:
        return self.read().pods.get(key, ())

    def node(self, name: str) -> NodeRecord | None:
        found = self.kube.objects.get(("nodes", "", name))
        return None if found is None else node_record(found)


class FakeClock:
    def __init__(self, start: float = 1_767_268_800.0) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def monotonic(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds
