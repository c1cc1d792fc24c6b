"""Fixes for kopf with many watched objects (`apply()`, called on import of the handlers).

1. Start-up with many indexed objects.

kopf blocks each object's handlers until every index is filled: during the initial
listing, every object gets a toggle in one `ToggleSet`, and each object's worker waits on
that set. `ToggleSet.make_toggle` and `drop_toggle` wake *every* waiting coroutine each
time, although a waiter only cares whether the set's overall state flipped. With N
objects that is N² wake-ups: 10,000 GPUJobs kept the operator busy for minutes before it
handled anything. Here the set wakes its waiters only when its state actually changes —
the same behaviour for every waiter, O(N) overall.

2. Decoding the watch streams. kopf decodes every watch event with the standard
library's `json.loads`; at thousands of GPUJobs and pods changing at once that was the
largest single item of the operator's CPU (18 % of its samples in a reclaim burst).
kopf's API module gets a `json` whose `loads` is orjson's (the same documents, a few
times faster); everything else is the standard module's.

3. Bounded decoding. The same `loads` is `gpupool.k8s.decoding.loads`: an object nested
deeper than orjson (or the standard library) can decode no longer fails the watch, and with
it the operator, on every restart; it arrives with its deep subtrees cut and a mark that
the index handlers turn into a skipped object with a reason. kopf's listings (`api.get`,
decoded by aiohttp with the standard library) go through the same function.

4. Objects deleted while kopf re-listed: `controller/kopf_relist.py`.

These replace two methods of a kopf-internal class and globals of kopf-internal
modules; `apply()` refuses (loudly) to patch a kopf that no longer looks the way this was
written against.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from kopf._cogs.aiokits.aiotoggles import Toggle, ToggleSet
from kopf._cogs.clients import api
from kopf._cogs.configs import configuration
from kopf._cogs.helpers import typedefs

from gpupool.controller import kopf_relist
from gpupool.k8s import decoding


async def _make_toggle(self: ToggleSet, __val: bool = False, *, name: str | None = None) -> Toggle:
    toggle = Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: ToggleSet, toggle: Toggle) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


class _FastJson:
    """The `json` module as kopf's API module sees it: orjson's `loads`, bounded."""

    loads = staticmethod(decoding.loads)

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)


FAST_JSON = _FastJson()
_KOPF_GET = api.get


async def _bounded_get(
    url: str,
    *,
    settings: configuration.OperatorSettings,
    payload: object | None = None,
    headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    logger: typedefs.Logger,
) -> Any:
    """kopf's `api.get`, decoding the reply with `decoding.loads`."""
    response = await api.request(
        method="get",
        url=url,
        payload=payload,
        headers=headers,
        timeout=timeout,
        settings=settings,
        logger=logger,
    )
    async with response:
        return decoding.loads(await response.read())


def apply() -> None:
    attributes = ToggleSet.__init__.__code__.co_names
    if "_condition" not in attributes or "_toggles" not in attributes:
        raise RuntimeError("kopf's ToggleSet changed: review gpupool.controller.kopf_fixes")
    ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    uses_json = "json" in api.stream.__code__.co_names
    if getattr(api, "json", None) not in (json, FAST_JSON) or not uses_json:
        raise RuntimeError("kopf's watch stream changed: review gpupool.controller.kopf_fixes")
    api.json = FAST_JSON  # type: ignore[attr-defined,assignment]
    if api.get not in (_KOPF_GET, _bounded_get) or "response" not in _KOPF_GET.__code__.co_varnames:
        raise RuntimeError("kopf's api.get changed: review gpupool.controller.kopf_fixes")
    api.get = _bounded_get
    kopf_relist.apply()
