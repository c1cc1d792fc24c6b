"""Fixtures of the controller tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gpupool.k8s import NODES, TEAMQUOTAS

from .world import World, node, team


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    w.recorder.start()
    for name in ("node-1", "node-2"):
        w.kube.put(NODES, node(name))
    w.kube.put(TEAMQUOTAS, team("vision", 8))
    w.kube.put(TEAMQUOTAS, team("nlp", 8))
    yield w
    await w.scheduler.close()
