"""kopf's ToggleSet wakes its waiters only when its state flips (and still wakes them);
kopf's watch streams decode with orjson."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from kopf._cogs.aiokits.aiotoggles import ToggleSet
from kopf._cogs.clients import api

from gpupool.controller import kopf_fixes


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
    assert api.json.loads is orjson.loads
    line = b'{"type":"MODIFIED","object":{"metadata":{"name":"j\\u00e9"},"n":[1,2.5,null]}}'
    assert api.json.loads(line.decode("utf-8")) == json.loads(line)
    # Everything but `loads` is still the standard module's.
    assert api.json.dumps({"a": 1}, separators=(",", ":")) == '{"a":1}'
    assert api.json.JSONDecodeError is json.JSONDecodeError


def test_a_changed_kopf_api_module_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "json", object())
    with pytest.raises(RuntimeError, match="watch stream changed"):
        kopf_fixes.apply()
