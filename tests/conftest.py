"""Fixtures for tests that need a Kubernetes API server (unit fixtures: tests/unit/).

One cluster per test session, started on first use and reused: the local control plane
(`gpupool.devcluster`, real kube-apiserver/etcd/kube-controller-manager with kwok GPU
nodes), or the cluster a kubeconfig names, when GPUPOOL_TEST_KUBECONFIG or KUBECONFIG
points at a reachable one. The project's CRDs (crds/*.yaml) are applied to it.

The local cluster is deleted at the end of the session, also when a test fails or the
run is interrupted (Ctrl-C, SIGTERM, SIGHUP); one left by a killed run is removed by
the next. Every test under tests/integration is marked `integration`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.devcluster import Cluster, binaries, start_for_tests

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
INTEGRATION = ROOT / "tests" / "integration"
SESSION_NODES = 2
SESSION_GPUS_PER_NODE = 8


def external_kubeconfig() -> Path | None:
    """The kubeconfig of a reachable cluster the environment names, if any.

    GPUPOOL_TEST_KUBECONFIG is explicit: an unreachable one is an error. KUBECONFIG is
    used when it names a single file whose cluster answers.
    """
    explicit = os.environ.get("GPUPOOL_TEST_KUBECONFIG")
    if explicit:
        if not Cluster(Path(explicit)).reachable(timeout=10):
            raise pytest.UsageError(f"GPUPOOL_TEST_KUBECONFIG={explicit}: no API server answers")
        return Path(explicit)
    ambient = os.environ.get("KUBECONFIG", "")
    single_file = bool(ambient) and os.pathsep not in ambient and Path(ambient).is_file()
    if single_file and Cluster(Path(ambient)).reachable(timeout=10):
        return Path(ambient)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
    # Build the control plane's binaries before any test runs, outside the per-test
    # timeout (a no-op once they are cached).
    wanted = any(item.get_closest_marker("integration") for item in items)
    if wanted and not config.option.collectonly and external_kubeconfig() is None:
        binaries.ensure()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The session's cluster: a `DevCluster` (restartable) or a `Cluster` (external)."""
    external = external_kubeconfig()
    if external is not None:
        session: Cluster = Cluster(external)
        session.apply_crd_directory(CRDS)
        yield session
        return
    local = start_for_tests(nodes=SESSION_NODES, gpus_per_node=SESSION_GPUS_PER_NODE, crds=CRDS)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def kubeconfig(cluster: Cluster) -> Path:
    """The session cluster's kubeconfig file."""
    return cluster.kubeconfig


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted after the test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    yield name
    cluster.delete_namespace(name)
