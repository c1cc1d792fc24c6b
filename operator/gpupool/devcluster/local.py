"""The local control plane: a kwokctl `binary` cluster from the locally built binaries.

etcd (no fsync), kube-apiserver (RBAC and admission on, no QPS limits),
kube-controller-manager, kube-scheduler and kwok's controller, all on 127.0.0.1.
kube-scheduler places every pod gpupool does not bind itself (an inference Deployment,
a notebook), as in a real cluster, so tests see the races a real cluster has.
Clusters live under `workdir()`/clusters/<name>.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from gpupool.devcluster import binaries, components, stages
from gpupool.devcluster import controllers as workload_controllers
from gpupool.devcluster.cluster import Cluster, wait_until
from gpupool.devcluster.nodes import DEFAULT_PRODUCT, KWOK_NODE_ANNOTATION

DEFAULT_NAME = "gpupool"
TEST_PREFIX = "gpupool-test-"
"""Test sessions name their clusters `gpupool-test-<pid>`: a dead pid marks a stale one."""

GC_SYNCED = "all resource monitors have synced"
"""What kube-controller-manager logs once its garbage collector watches every resource."""

CREATE_TIMEOUT = 300.0
DELETE_TIMEOUT = 120.0
KWOK_POD_PARALLELISM = 16


def workdir() -> Path:
    """kwokctl's work directory (KWOK_WORKDIR) for gpupool's clusters."""
    override = os.environ.get("GPUPOOL_KWOK_WORKDIR")
    if override:
        return Path(override)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gpupool" / "kwok"


def _log(message: str) -> None:
    print(f"[devcluster] {message}", file=sys.stderr, flush=True)


def _version(binary: Path, pattern: str) -> str:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    match = re.search(pattern, out)
    if match is None:
        raise RuntimeError(f"cannot read the version of {binary} from {out!r}")
    return match.group(1)


class DevCluster(Cluster):
    """A local cluster managed with kwokctl. Create one with `DevCluster.start()`."""

    def __init__(self, name: str, bins: Mapping[str, Path]) -> None:
        self.name = name
        self.bins = dict(bins)
        self.directory = workdir() / "clusters" / name
        self.scratch = workdir() / "scratch" / name
        """What kwokctl is given (its config, a PATH with our kubectl); not kwokctl's."""
        super().__init__(self.directory / "kubeconfig.yaml", kubectl_binary=self.bins["kubectl"])
        self._stopped = False

    # --- life cycle -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        name: str = DEFAULT_NAME,
        nodes: int = 4,
        gpus_per_node: int = 8,
        racks: int = 2,
        zones: int = 1,
        nodes_per_nvlink_domain: int = 2,
        product: str = DEFAULT_PRODUCT,
        crds: Path | None = None,
        reuse: bool = False,
        timeout: float = CREATE_TIMEOUT,
        controllers: Sequence[str] = (),
    ) -> DevCluster:
        """Create (or, with `reuse`, keep a healthy existing) cluster `name`, install the
        kwok Stages and the CRDs in `crds` (a directory of YAML files; may be empty),
        and add `nodes` fake GPU nodes. Builds missing binaries first. `controllers`
        (names in `gpupool.devcluster.controller_specs.SPECS`, e.g. "jobset", "kueue") are
        built on first use, installed and started with the cluster."""
        remove_stale_test_clusters()
        cluster = cls(name, binaries.ensure())
        if cluster.exists():
            if reuse and cluster.healthy():
                _log(f"cluster {name} is already up")
                if crds is not None and crds.is_dir():
                    cluster.apply_crd_directory(crds, timeout=timeout)
                cluster.start_controllers(controllers)
                return cluster
            _log(f"replacing cluster {name} (stale or not asked to reuse)")
            cluster.delete()
        started = time.monotonic()
        cluster._create(timeout)
        try:
            cluster._install(crds, timeout)
            cluster.add_gpu_nodes(
                nodes,
                gpus_per_node,
                racks=racks,
                zones=zones,
                nodes_per_nvlink_domain=nodes_per_nvlink_domain,
                product=product,
                timeout=timeout,
            )
            cluster.start_controllers(controllers)
        except BaseException:
            cluster.stop()
            raise
        _log(f"cluster {name} ready in {time.monotonic() - started:.1f}s")
        return cluster

    @classmethod
    def existing(cls, name: str = DEFAULT_NAME) -> DevCluster | None:
        """The cluster `name` if it has been created (running or not)."""
        cluster = cls(name, binaries.locate())
        return cluster if cluster.exists() else None

    def exists(self) -> bool:
        return (self.directory / "kwok.yaml").is_file()

    def healthy(self) -> bool:
        """Every component runs and the API server is ready."""
        try:
            parts = components.read_components(self.directory)
        except (OSError, ValueError):
            return False
        return all(components.running_pid(c) for c in parts.values()) and self.reachable()

    def stop(self) -> None:
        """Delete the cluster: end its processes and remove its files. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.delete()

    def delete(self) -> None:
        if not self.directory.exists():
            shutil.rmtree(self.scratch, ignore_errors=True)
            return
        _log(f"deleting cluster {self.name}")
        workload_controllers.stop_all(self.directory)
        try:
            completed = self._kwokctl("delete", "cluster", timeout=DELETE_TIMEOUT)
            failure = completed.stderr.strip()[-500:] if completed.returncode else ""
        except (OSError, subprocess.TimeoutExpired) as error:
            failure = str(error)
        if failure or self.directory.exists():
            # kwokctl refuses a cluster whose kwok.yaml is gone or broken: end what the
            # pid files name and remove the files.
            _log(f"kwokctl delete cluster: {failure}; cleaning up by pid files")
            for pid_file in self.directory.glob("pids/*.pid"):
                with contextlib.suppress(ValueError, OSError):
                    pid = int(pid_file.read_text(encoding="utf-8").strip())
                    if components.pid_alive(pid):
                        os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> DevCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop_at_exit(self) -> None:
        """Delete the cluster when this process exits, also on SIGTERM or SIGHUP
        (turned into KeyboardInterrupt so the caller's clean-up runs first)."""
        atexit.register(self.stop)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                signal.signal(signum, _interrupt)

    # --- components -------------------------------------------------------------------------

    def components(self) -> dict[str, components.Component]:
        return components.read_components(self.directory)

    def stop_component(self, name: str) -> None:
        """Stop one component (e.g. "kube-apiserver", "kwok-controller")."""
        components.stop(self.components()[name])

    def start_component(self, name: str, *, timeout: float = 60.0) -> None:
        """Start a stopped component; for the API server, wait until it is ready."""
        components.start(self.components()[name])
        if name == "kube-apiserver":
            self.wait_reachable(timeout)

    def start_controllers(
        self, names: Iterable[str]
    ) -> list[workload_controllers.RunningController]:
        """Build (if missing), install and start these workload controllers; ready when
        this returns. They stop with the cluster, or with `stop_controllers`."""
        return workload_controllers.start(self, names)

    def stop_controllers(self, running: Iterable[workload_controllers.RunningController]) -> None:
        """Unregister their webhooks and end them (the cluster keeps their CRDs)."""
        for controller in running:
            workload_controllers.stop_one(self, controller)

    def apply_crds(self, paths: Iterable[Path], *, timeout: float = 60.0) -> list[str]:
        """As `Cluster.apply_crds`, then restart kube-controller-manager: it discovers new
        resources only every 30 s, and until then its garbage collector leaves the
        dependents of their objects (a deleted GPUJob's pods) alone."""
        names = super().apply_crds(paths, timeout=timeout)
        if names:
            log = self.log_file("kube-controller-manager")
            offset = log.stat().st_size if log.exists() else 0
            self.restart_component("kube-controller-manager")
            wait_until(
                "kube-controller-manager's garbage collector",
                lambda: GC_SYNCED in _read_from(log, offset),
                timeout=timeout,
            )
        return names

    def restart_component(self, name: str, *, downtime: float = 0.0) -> None:
        self.stop_component(name)
        time.sleep(downtime)
        self.start_component(name)

    async def restart_apiserver(self, downtime: float = 0.0) -> None:
        """Stop the API server, keep it down `downtime` s, start it and wait until ready
        (in a thread: the caller's event loop keeps running)."""
        await asyncio.to_thread(self.restart_component, "kube-apiserver", downtime=downtime)

    def log_file(self, component: str) -> Path:
        return self.components()[component].log_file

    # --- creation ---------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        path_dir = self.scratch / "path"
        path_dir.mkdir(parents=True, exist_ok=True)
        link = path_dir / "kubectl"
        if not link.exists() or link.resolve() != self.bins["kubectl"].resolve():
            link.unlink(missing_ok=True)
            link.symlink_to(self.bins["kubectl"])
        # kwokctl looks kubectl up on PATH (the cached one must win over any other).
        return {
            **os.environ,
            "KWOK_WORKDIR": str(workdir()),
            "PATH": f"{path_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _kwokctl(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run `kwokctl <verb> <noun> --name <name> <flags>`. kwokctl adds its context to
        (and removes it from) a kubeconfig of ours, never ~/.kube/config."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        contexts = f"--kubeconfig={self.scratch / 'contexts.yaml'}"
        return subprocess.run(
            [str(self.bins["kwokctl"]), *args[:2], "--name", self.name, contexts, *args[2:]],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _config(self) -> dict[str, Any]:
        kube_version = _version(self.bins["kube-apiserver"], r"Kubernetes (v\S+)")
        etcd_version = _version(self.bins["etcd"], r"etcd Version: (\S+)")
        return {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": kube_version,
                "etcdVersion": etcd_version,
                "bindAddress": "127.0.0.1",
                "securePort": True,
                "kubeAuthorization": True,
                "kubeAdmission": True,
                "disableQPSLimits": True,
                "enableCRDs": ["Stage"],
                "kubeApiserverBinary": str(self.bins["kube-apiserver"]),
                "kubeControllerManagerBinary": str(self.bins["kube-controller-manager"]),
                "kubeSchedulerBinary": str(self.bins["kube-scheduler"]),
                "kwokControllerBinary": str(self.bins["kwok"]),
                "etcdBinary": str(self.bins["etcd"]),
                "kubectlBinary": str(self.bins["kubectl"]),
                "quietPull": True,
            },
            "componentsPatches": [
                {"name": "etcd", "extraArgs": [{"key": "unsafe-no-fsync", "value": "true"}]},
                # A single controller-manager: with leader election it exits as soon as
                # the API server is away for a while, and no kubelet restarts it here.
                {
                    "name": "kube-controller-manager",
                    "extraArgs": [{"key": "leader-elect", "value": "false"}],
                },
                {
                    "name": "kube-scheduler",
                    "extraArgs": [{"key": "leader-elect", "value": "false"}],
                },
                # kwokctl's binary runtime makes kwok manage every node; tests also need
                # nodes nobody runs, so only annotated ones are kwok's.
                {
                    "name": "kwok-controller",
                    "extraArgs": [
                        {"key": "manage-all-nodes", "value": "false", "override": True},
                        {
                            "key": "manage-nodes-with-annotation-selector",
                            "value": f"{KWOK_NODE_ANNOTATION}=fake",
                        },
                    ],
                },
            ],
        }

    @staticmethod
    def _kwok_config() -> dict[str, Any]:
        """kwok-controller's own options (kwokctl hands this document to it)."""
        return {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            # kwok plays the kubelet of every fake node with 4 workers by default: with
            # thousands of pods starting at once (the scale benchmark), pods then wait
            # on kwok, where 500 real kubelets would each start their own at once.
            # A document given to kwokctl gets no defaults: kwok's own are spelled out.
            "options": {
                "cidr": "10.0.0.0/24",
                "enableDebuggingHandlers": True,
                "enableContentionProfiling": False,
                "enableProfilingHandler": True,
                "podPlayStageParallelism": KWOK_POD_PARALLELISM,
                "nodePlayStageParallelism": 4,
                "nodeLeaseParallelism": 4,
                "podsOnNodeSyncParallelism": 1,
                "enablePodsOnNodeSyncListPager": True,
                "enablePodsOnNodeSyncStreamWatch": False,
            },
        }

    def _create(self, timeout: float) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        config = self.scratch / "kwokctl.yaml"
        config.write_text(
            yaml.safe_dump_all([self._config(), self._kwok_config()]), encoding="utf-8"
        )
        _log(f"creating cluster {self.name} in {self.directory}")
        completed = self._kwokctl(
            "create",
            "cluster",
            "--config",
            str(config),
            f"--timeout={timeout:.0f}s",
            timeout=timeout + 30,
        )
        if completed.returncode != 0:
            self.delete()
            raise RuntimeError(
                f"kwokctl create cluster {self.name} failed ({completed.returncode}):\n"
                f"{completed.stderr[-4000:]}"
            )

    def _install(self, crds: Path | None, timeout: float) -> None:
        self.wait_reachable(timeout)
        self.kubectl(
            "wait",
            "--for=condition=Established",
            "crd/stages.kwok.x-k8s.io",
            f"--timeout={timeout:.0f}s",
            timeout=timeout + 10,
        )
        self.apply(stages.manifest())
        if crds is not None and crds.is_dir():
            self.apply_crd_directory(crds, timeout=timeout)
        # The controller-manager is working once it has made default's ServiceAccount.
        wait_until(
            "kube-controller-manager (the default ServiceAccount)",
            lambda: self.kubectl(
                "get", "serviceaccount", "default", "--ignore-not-found", "-o", "name"
            ).strip(),
            timeout=timeout,
        )


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read().decode("utf-8", "replace")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def remove_stale_test_clusters() -> list[str]:
    """Delete the clusters of test sessions whose process is gone (a killed run)."""
    removed: list[str] = []
    for directory in sorted((workdir() / "clusters").glob(f"{TEST_PREFIX}*")):
        pid = directory.name.removeprefix(TEST_PREFIX)
        if pid.isdigit() and not components.pid_alive(int(pid)):
            _log(f"removing stale cluster {directory.name} (its test run is gone)")
            DevCluster(directory.name, binaries.locate()).delete()
            removed.append(directory.name)
    return removed


def test_cluster_name() -> str:
    return f"{TEST_PREFIX}{os.getpid()}"


def start_for_tests(
    *, nodes: int = 2, gpus_per_node: int = 8, crds: Path | None = None, **options: Any
) -> DevCluster:
    """A cluster for this test session, deleted when the process exits."""
    cluster = DevCluster.start(
        name=test_cluster_name(), nodes=nodes, gpus_per_node=gpus_per_node, crds=crds, **options
    )
    cluster.stop_at_exit()
    return cluster
