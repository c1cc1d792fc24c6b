"""kopf's ToggleSet wakes its waiters only when its state flips (and still wakes them)."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits.aiotoggles import ToggleSet

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
