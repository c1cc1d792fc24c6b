"""A fix for kopf's start-up with many indexed objects (applied on import).

kopf blocks each object's handlers until every index is filled: during the initial
listing, every object gets a toggle in one `ToggleSet`, and each object's worker waits on
that set. `ToggleSet.make_toggle` and `drop_toggle` wake *every* waiting coroutine each
time, although a waiter only cares whether the set's overall state flipped. With N
objects that is N² wake-ups: 10,000 GPUJobs kept the operator busy for minutes before it
handled anything. Here the set wakes its waiters only when its state actually changes —
the same behaviour for every waiter, O(N) overall.

This replaces two methods of a kopf-internal class; `apply()` refuses (loudly) to patch a
kopf whose `ToggleSet` no longer looks the way this was written against.
"""

from __future__ import annotations

from kopf._cogs.aiokits.aiotoggles import Toggle, ToggleSet


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


def apply() -> None:
    attributes = ToggleSet.__init__.__code__.co_names
    if "_condition" not in attributes or "_toggles" not in attributes:
        raise RuntimeError("kopf's ToggleSet changed: review gpupool.controller.kopf_fixes")
    ToggleSet.make_toggle = _make_toggle  # type: ignore[method-assign]
    ToggleSet.drop_toggle = _drop_toggle  # type: ignore[method-assign]
