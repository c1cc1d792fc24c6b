"""The Event poster: background posting, bounded queue, holding back while writes lag."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from gpupool.k8s import KubeClient, Resource
from gpupool.k8s import events as events_module
from gpupool.k8s.events import EventRecorder, ObjectRef

JOB = ObjectRef("gpupool.io/v1alpha1", "GPUJob", "train", "vision", "uid-1")
NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


class _Client:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    async def create(
        self, resource: Resource, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self.posted.append(body)
        return body


def _recorder(client: _Client, **kwargs: Any) -> EventRecorder:
    return EventRecorder(cast(KubeClient, client), instance="test", **kwargs)


def _record(recorder: EventRecorder, reason: str = "Admitted") -> None:
    recorder.record(JOB, reason=reason, action="Admit", note="2×8 GPUs on n1", now=NOW)


async def _until(condition: Any, seconds: float = 2.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_events_are_posted_in_the_background() -> None:
    client = _Client()
    recorder = _recorder(client)
    recorder.start()
    try:
        _record(recorder)
        await recorder.flush()
        [event] = client.posted
        assert (event["reason"], event["regarding"]["name"], event["type"]) == (
            "Admitted",
            "train",
            "Normal",
        )
        assert event["metadata"]["namespace"] == "vision"
        assert event["eventTime"] == "2026-12-02T01:00:00.000000Z"
    finally:
        await recorder.stop()


async def test_posting_waits_while_the_writes_are_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "DEFER_POLL_SECONDS", 0.01)
    client = _Client()
    recorder = _recorder(client)
    behind = True
    recorder.defer_while(lambda: behind)
    recorder.start()
    try:
        _record(recorder)
        await asyncio.sleep(0.1)
        assert client.posted == []
        behind = False
        await _until(lambda: len(client.posted) == 1)
    finally:
        await recorder.stop()


async def test_an_event_waits_at_most_the_deferral_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "DEFER_POLL_SECONDS", 0.01)
    monkeypatch.setattr(events_module, "MAX_DEFER_SECONDS", 0.1)
    client = _Client()
    recorder = _recorder(client)
    recorder.defer_while(lambda: True)
    recorder.start()
    try:
        _record(recorder)
        await _until(lambda: len(client.posted) == 1)
    finally:
        await recorder.stop()


async def test_a_full_queue_drops_and_counts() -> None:
    client = _Client()
    recorder = _recorder(client, capacity=2)
    for reason in ("A", "B", "C"):
        _record(recorder, reason)
    assert recorder.dropped == 1
    recorder.start()
    try:
        await recorder.flush()
        assert [event["reason"] for event in client.posted] == ["A", "B"]
    finally:
        await recorder.stop()


async def test_the_deferral_limit_counts_from_when_an_event_was_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_module, "DEFER_POLL_SECONDS", 0.01)
    monkeypatch.setattr(events_module, "MAX_DEFER_SECONDS", 0.3)
    client = _Client()
    recorder = _recorder(client, workers=1)
    recorder.defer_while(lambda: True)
    for reason in ("A", "B", "C", "D"):
        _record(recorder, reason)
    recorder.start()
    try:
        # One worker, four Events recorded together: all posted once 0.3 s have passed
        # since they were recorded, not 0.3 s after each is picked up (1.2 s).
        await _until(lambda: len(client.posted) == 4, seconds=0.8)
    finally:
        await recorder.stop()
