"""The installed kopf still has the private parts gpupool patches.

gpupool replaces or wraps three of kopf's internals (controller/kopf_fixes.py,
controller/kopf_relist.py), written against kopf 1.45 and bounded to it in
pyproject.toml. When a kopf upgrade changes them, these fail saying what changed and
what to review, before an operator fails at start-up.
"""

from __future__ import annotations

import importlib.metadata
import inspect

from packaging.version import Version

REVIEW = "review gpupool.controller.kopf_fixes / kopf_relist before widening kopf's bound"


def test_the_installed_kopf_is_the_one_the_patches_were_written_for() -> None:
    version = Version(importlib.metadata.version("kopf"))
    assert (version.major, version.minor) == (1, 45), f"kopf {version} is installed: {REVIEW}"


def test_toggleset_keeps_its_condition_and_toggles() -> None:
    from kopf._cogs.aiokits.aiotoggles import ToggleSet

    names = ToggleSet.__init__.__code__.co_names
    assert {"_condition", "_toggles"} <= set(names), f"ToggleSet's fields changed: {REVIEW}"
    for method in ("make_toggle", "drop_toggle", "is_on"):
        assert hasattr(ToggleSet, method), f"ToggleSet.{method} is gone: {REVIEW}"


def test_the_watch_stream_decodes_with_the_modules_json() -> None:
    from kopf._cogs.clients import api

    assert "json" in api.stream.__code__.co_names, f"kopf's api.stream changed: {REVIEW}"


def test_listing_and_watching_keep_their_shape() -> None:
    from kopf._cogs.clients import watching

    from gpupool.controller import kopf_relist

    parameters = set(inspect.signature(kopf_relist._original).parameters)
    assert parameters == {"settings", "resource", "namespace", "operator_pause_waiter"}, (
        f"continuous_watch's parameters changed to {sorted(parameters)}: {REVIEW}"
    )
    assert hasattr(watching.Bookmark, "LISTED"), f"Bookmark.LISTED is gone: {REVIEW}"
    assert "continuous_watch" in watching.infinite_watch.__code__.co_names, (
        f"infinite_watch no longer calls continuous_watch: {REVIEW}"
    )


def test_the_indexers_forget_an_object_on_deletion() -> None:
    """A made-up DELETED event only drops index entries if kopf still discards on it."""
    from kopf._core.engines import indexing

    source = inspect.getsource(indexing.index_resource)
    assert "'DELETED'" in source and "discard" in source, f"index_resource changed: {REVIEW}"


def test_the_patches_apply() -> None:
    from gpupool.controller import kopf_fixes

    kopf_fixes.apply()
