"""kopf's diff base is off, which is only right while gpupool has no change handlers."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

import gpupool.controller.handlers  # noqa: F401  (registers gpupool's handlers)
from gpupool.controller.kopf_diffbase import NoDiffBase, check_no_change_handlers


def test_gpupool_registers_no_change_handlers() -> None:
    check_no_change_handlers(kopf.get_default_registry())


def test_a_change_handler_is_refused() -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.update("gpupool.io", "v1alpha1", "gpujobs", registry=registry)
    def changed(**_: Any) -> None:
        return None

    with pytest.raises(RuntimeError, match="changed"):
        check_no_change_handlers(registry)


def test_no_essence_is_built_or_stored() -> None:
    body = kopf.Body({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"big": [1] * 100}})
    storage = NoDiffBase()
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch
