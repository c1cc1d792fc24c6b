"""kopf's ToggleSet wakes its waiters only when its state flips (and still wakes them);
kopf's watch streams and listings decode with orjson, bounded: an object nested too deep
arrives cut and marked instead of failing the watch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kopf._cogs.aiokits.aiotoggles import ToggleSet
from kopf._cogs.clients import api

from gpupool.controller import kopf_fixes
from gpupool.k8s import decoding

DEEP = '{"a":' * 1100 + "1" + "}" * 1100


async def test_waiters_wake_when_the_last_blocker_goes() -> None:
    kopf_fixes.apply()
    toggles = ToggleSet(all)
    blockers = [await toggles.make_toggle(name=str(i)) for i in range(100)]
    waiter = asyncio.create_task(toggles.wait_for(True))
    await asyncio.sleep(0)
    for blocker in blockers[:-1]:
        await toggles.drop_toggle(blocker)
        await toggles.drop_toggle(blocker)  # dropping twice changes nothing
    await asyncio.sleep(0)
    assert not waiter.done()
    await toggles.drop_toggle(blockers[-1])
    await asyncio.wait_for(waiter, 1.0)


def test_kopf_watch_lines_decode_with_orjson() -> None:
    kopf_fixes.apply()
    kopf_fixes.apply()  # idempotent
    assert api.json.loads is decoding.loads
    line = b'{"type":"MODIFIED","object":{"metadata":{"name":"j\\u00e9"},"n":[1,2.5,null]}}'
    assert api.json.loads(line.decode("utf-8")) == json.loads(line)
    # Everything but `loads` is still the standard module's.
    assert api.json.dumps({"a": 1}, separators=(",", ":")) == '{"a":1}'
    assert api.json.JSONDecodeError is json.JSONDecodeError


def test_a_changed_kopf_api_module_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "json", object())
    with pytest.raises(RuntimeError, match="watch stream changed"):
        kopf_fixes.apply()


def test_a_watch_event_nested_too_deep_arrives_cut_and_marked() -> None:
    kopf_fixes.apply()
    line = (
        '{"type":"ADDED","object":{"kind":"GPUJob","metadata":{"name":"deep"},'
        '"spec":{"template":{"metadata":' + DEEP + "}}}}"
    )
    event = api.json.loads(line)
    obj = event["object"]
    assert obj["metadata"] == {"name": "deep"}
    assert obj[decoding.UNDECODABLE].startswith("spec.template.metadata.a.a.a")
    assert "nested deeper than 64 levels" in obj[decoding.UNDECODABLE]


class _Response:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def read(self) -> bytes:
        return self.payload


async def test_a_listing_with_one_deep_object_marks_that_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kopf_fixes.apply()
    listing = (
        '{"kind":"GPUJobList","metadata":{"resourceVersion":"7"},"items":['
        '{"metadata":{"name":"fine"},"spec":{"workers":1}},'
        '{"metadata":{"name":"deep"},"spec":{"template":' + DEEP + "}}]}"
    ).encode()

    async def request(**_: Any) -> _Response:
        return _Response(listing)

    monkeypatch.setattr(api, "request", request)
    result = await api.get("/apis/gpupool.io/v1alpha1/gpujobs", settings=None, logger=None)  # type: ignore[arg-type]
    fine, deep = result["items"]
    assert decoding.UNDECODABLE not in fine and fine["spec"] == {"workers": 1}
    assert deep[decoding.UNDECODABLE].startswith("spec.template.a.a")
    assert result["metadata"] == {"resourceVersion": "7"}
