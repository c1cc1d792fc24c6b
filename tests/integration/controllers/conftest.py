"""Fixtures for the tests of the real workload controllers (JobSet, Kubeflow, KubeRay, Kueue).

A test module names the controllers it needs with `pytestmark =
pytest.mark.controllers("jobset")`. On the local control plane they are built before
the first test runs (outside the per-test timeout; minutes each when cold, see
tests/cluster/README.md), started against the session's cluster for that module only,
and stopped (webhooks unregistered) after it. On a cluster of your own
(GPUPOOL_TEST_KUBECONFIG) the controllers must already run there: a module whose kinds'
CRDs are missing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import external_kubeconfig  # tests/conftest.py, the session's cluster
from gpupool.devcluster import Cluster, DevCluster, binaries, controller_specs, controllers

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "controllers(*names): workload controllers the module runs (devcluster names)"
    )


OPT_IN = {
    "kueue": "Kueue (sigs.k8s.io/kueue): ~14 min cold build, for the comparison benchmark",
    "jobset": "JobSet: ~5 min cold build",
    "kuberay": "KubeRay: ~6 min cold build",
    "training-operator": "Kubeflow training-operator: ~7 min cold build",
    "trainer": "Kubeflow Trainer: ~10 min cold build",
}
"""Controllers whose tests run only when asked for by path (this directory or the file,
`make test-controllers`): `make test` on a fresh machine would build them first, 28-38
minutes for the four workload controllers together, while no gpupool code governs their
kinds yet. They join `make test` with the workload integrations that govern them."""


def _controllers(item: pytest.Item) -> list[str]:
    return [name for marker in item.iter_markers("controllers") for name in marker.args]


def _asked_for(config: pytest.Config, item: pytest.Item) -> bool:
    for arg in config.args:
        target = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if target.is_relative_to(HERE) and item.path.is_relative_to(target):
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.path.is_relative_to(HERE)]
    deselected = [
        item
        for item in ours
        if set(_controllers(item)) & OPT_IN.keys() and not _asked_for(config, item)
    ]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    wanted = list(
        dict.fromkeys(n for item in ours if item not in deselected for n in _controllers(item))
    )
    if wanted and not config.option.collectonly and external_kubeconfig() is None:
        binaries.ensure(controller_specs.spec(name).binary for name in wanted)


@pytest.fixture(scope="module")
def workload_controllers(
    cluster: Cluster, request: pytest.FixtureRequest
) -> Iterator[list[controllers.RunningController]]:
    """The module's controllers, running on the session's cluster."""
    names = [n for marker in request.node.iter_markers("controllers") for n in marker.args]
    if not isinstance(cluster, DevCluster):
        _require_crds(cluster, names)
        yield []
        return
    running = cluster.start_controllers(names)
    try:
        yield running
    finally:
        if getattr(request.module, "controllers_failed", False):
            for controller in running:
                log = controllers.tail(controller.log_file, 80)
                print(f"--- {controller.spec.name} log (tail) ---\n{log}")
        cluster.stop_controllers(running)


def _require_crds(cluster: Cluster, names: list[str]) -> None:
    present = set(cluster.kubectl("get", "crd", "-o", "name").split())
    for name in names:
        spec = controller_specs.spec(name)
        for crd in spec.kinds:
            if f"customresourcedefinition.apiextensions.k8s.io/{crd}" not in present:
                pytest.skip(f"the cluster has no {crd}: {name} is not installed there")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed and item.path.is_relative_to(HERE):
        item.module.controllers_failed = True  # type: ignore[attr-defined]
