"""Fixtures for the operator's integration tests (on the fixture control plane)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gpupool.k8s import KubeClient

from .harness import CheckpointServer, OperatorProcess, Pool


@pytest.fixture
def kubeconfig_path(request: pytest.FixtureRequest) -> str:
    path: str = str(request.getfixturevalue("kubeconfig"))
    return path


@pytest.fixture
async def kube(kubeconfig_path: str) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(kubeconfig_path) as client:
        yield client


@pytest.fixture
async def checkpoints() -> AsyncIterator[CheckpointServer]:
    server = CheckpointServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def pool(kube: KubeClient, checkpoints: CheckpointServer) -> AsyncIterator[Pool]:
    slice_ = Pool(kube, checkpoints)
    await checkpoints.serve_pods(slice_.pod_cidr)
    yield slice_
    await slice_.cleanup()


@pytest.fixture
def operator(
    kubeconfig_path: str, pool: Pool, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The operator for this test's pool; not started (tests start it when ready)."""
    process = OperatorProcess(kubeconfig_path, pool.selector, tmp_path / "operator.log")
    yield process
    process.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- operator log (tail) ---\n{process.tail(120)}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
