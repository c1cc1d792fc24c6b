"""Objects deleted while kopf re-listed are reported DELETED after the listing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import watching
from kopf._cogs.structs.references import Resource

from gpupool.controller import kopf_fixes, kopf_relist

LISTED = watching.Bookmark.LISTED
PODS = Resource("", "v1", "pods", namespaced=True)
PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)


def pod(uid: str, kind: str | None = None) -> dict[str, Any]:
    return {
        "type": kind,
        "object": {"metadata": {"namespace": "ns", "name": f"p-{uid}", "uid": uid}},
    }


class FakeApi:
    """Each call of kopf's continuous_watch plays the next session."""

    def __init__(self, *sessions: list[Any]) -> None:
        self.sessions = list(sessions)

    async def __call__(self, **_: Any) -> AsyncIterator[Any]:
        for item in self.sessions.pop(0):
            yield item


async def play(
    monkeypatch: pytest.MonkeyPatch, resource: Resource, *sessions: list[Any]
) -> list[Any]:
    monkeypatch.setattr(kopf_relist, "_original", FakeApi(*sessions))
    monkeypatch.setattr(kopf_relist, "_known", {})
    seen: list[Any] = []
    for _ in sessions:
        async for item in kopf_relist.reconciling_watch(
            settings=None, resource=resource, namespace=None, operator_pause_waiter=None
        ):
            seen.append(item)
    return seen


def deletions(items: list[Any]) -> list[str]:
    return [
        i["object"]["metadata"]["uid"]
        for i in items
        if isinstance(i, dict) and i["type"] == "DELETED"
    ]


async def test_a_pod_deleted_during_a_relist_gap_is_reported_deleted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = [pod("a"), pod("b"), LISTED, pod("c", "ADDED"), pod("d", "ADDED"), pod("d", "DELETED")]
    # 410 Gone; meanwhile b and c were deleted: the re-list holds only a.
    second = [pod("a"), LISTED, pod("e", "ADDED")]
    seen = await play(monkeypatch, PODS, first, second)
    assert deletions(seen) == ["d", "b", "c"]
    made_up = seen[len(first) + 1 : len(first) + 3]
    assert made_up == [
        {"type": "DELETED", "object": {"metadata": {"namespace": "ns", "name": "p-b", "uid": "b"}}},
        {"type": "DELETED", "object": {"metadata": {"namespace": "ns", "name": "p-c", "uid": "c"}}},
    ]
    # Before the LISTED bookmark: kopf treats everything after it as the new state.
    assert seen[len(first) + 3] is LISTED
    assert kopf_relist._known[(PODS, None)] == {"a": "ns/p-a", "e": "ns/p-e"}


async def test_an_empty_relist_deletes_everything_known(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = await play(monkeypatch, PODS, [pod("a"), LISTED], [LISTED])
    assert deletions(seen) == ["a"]


async def test_a_listing_cut_short_deletes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The connection broke in the middle of the second listing (no LISTED): the third
    # listing decides, and only from what it holds itself.
    seen = await play(
        monkeypatch, PODS, [pod("a"), pod("b"), LISTED], [pod("a")], [pod("b"), LISTED]
    )
    assert deletions(seen) == ["a"]


async def test_cluster_scoped_objects_carry_no_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    node = {"type": None, "object": {"metadata": {"name": "n1", "uid": "u1"}}}
    seen = await play(monkeypatch, Resource("", "v1", "nodes"), [node, LISTED], [LISTED])
    assert seen[2] == {"type": "DELETED", "object": {"metadata": {"name": "n1", "uid": "u1"}}}


async def test_peering_objects_are_passed_through(monkeypatch: pytest.MonkeyPatch) -> None:
    peering = {"type": None, "object": {"metadata": {"name": "gpupool", "uid": "p"}}}
    seen = await play(monkeypatch, PEERINGS, [peering, LISTED], [LISTED])
    assert deletions(seen) == []


def test_kopf_runs_the_reconciling_watch() -> None:
    kopf_fixes.apply()
    kopf_fixes.apply()  # idempotent
    assert watching.continuous_watch is kopf_relist.reconciling_watch
    # infinite_watch looks the function up in its module at each (re)connection.
    assert "continuous_watch" in watching.infinite_watch.__code__.co_names


def test_a_changed_kopf_watching_module_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def changed(*, settings: object, resource: object) -> AsyncIterator[Any]:
        yield None

    monkeypatch.setattr(kopf_relist, "_original", changed)
    with pytest.raises(RuntimeError, match="kopf's watching changed"):
        kopf_relist.apply()
