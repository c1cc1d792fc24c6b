"""The real controllers of the workload kinds gpupool governs, beside the local control plane.

JobSet, Kubeflow's training-operator (PyTorchJob) and Trainer (TrainJob), KubeRay and
Kueue are built from their Go modules (tests/cluster/build.sh, on first use) and run as
processes of the cluster: a kubeconfig on 127.0.0.1, leader election off, metrics and
health probes on free loopback ports, logs in `<cluster>/logs/`, pid files in
`<cluster>/pids/`, their own files in `<cluster>/controllers/<name>/`. Each one's CRDs
come from its module directory, as its release installs them.

Webhooks: the configurations are the controller's own (controller-gen's
`manifests.yaml` with its kustomize patches) pointing at the process by URL
(https://127.0.0.1:<port>), with a certificate of ours (IP SAN 127.0.0.1): in the
directory the controller reads (JobSet, Kueue), or, for Kubeflow's controllers, in the
Secret their certificate rotator keeps (see certificates.py). KubeRay runs without its
optional webhook.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gpupool.devcluster import binaries, components, webhooks
from gpupool.devcluster.certificates import rsa_self_signed, shared_pair
from gpupool.devcluster.controller_specs import ControllerSpec, Ports, spec
from gpupool.devcluster.webhooks import LOOPBACK
from gpupool.webhook.certs import ServingCertificate, self_signed

if TYPE_CHECKING:
    from gpupool.devcluster.local import DevCluster

READY_TIMEOUT = 180.0

KUEUE_METRICS_CERTS = Path("/etc/kueue/metrics/certs")
"""Kueue v0.17 reads its metrics server's certificate from this fixed path when its
internal certificate management is off (cmd/kueue/main.go); it exits if it is missing."""

ROTATOR_CERTS = Path("/tmp/k8s-webhook-server/serving-certs")
"""Where Kubeflow's controllers read their webhook certificate (fixed in their code;
in a pod the rotator's Secret is mounted there)."""

ROTATOR_HOSTS = (
    LOOPBACK,
    "training-operator.kubeflow.svc",
    "kubeflow-trainer-controller-manager.kubeflow-system.svc",
    "training-operator-ca",
    "kubeflow-trainer-ca",
)
"""What the shared rotator pair is valid for: loopback, and the names the rotators check
it against (their Service's DNS name; their CA's name, as the pair is its own CA), else
they replace it with one that loopback is not in."""


class ControllerError(RuntimeError):
    """A controller did not start or become ready; the message has its log's tail."""


# --- module directories and CRDs ------------------------------------------------------------


def module_dir(spec: ControllerSpec) -> Path:
    """The controller's module in the Go module cache (`go mod download -json` in its
    wrapper module: the version its go.mod pins)."""
    completed = subprocess.run(
        ["go", "mod", "download", "-json", spec.module],
        cwd=binaries.REPO_ROOT / "tests" / "cluster" / spec.wrapper,
        env=binaries.go_env(),
        capture_output=True,
        text=True,
        timeout=binaries.LIST_TIMEOUT * 10,
        check=False,
    )
    if completed.returncode != 0:
        raise ControllerError(f"go mod download {spec.module}: {completed.stderr.strip()}")
    return Path(json.loads(completed.stdout)["Dir"])


def crd_files(spec: ControllerSpec, module: Path) -> list[Path]:
    found: list[Path] = []
    for entry in spec.crds:
        path = module / entry
        candidates = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        found += [p for p in candidates if p.is_file() and _is_crd(p)]
    if not found:
        raise ControllerError(f"no CRDs for {spec.name} under {module}")
    return found


def _is_crd(path: Path) -> bool:
    return any(
        doc and doc.get("kind") == "CustomResourceDefinition"
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    )


# --- processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningController:
    spec: ControllerSpec
    component: components.Component
    ports: Ports
    webhook_configurations: tuple[tuple[str, str], ...]
    """(kind, name) of the webhook configurations registered for it."""

    @property
    def log_file(self) -> Path:
        return self.component.log_file


def directory(cluster_dir: Path, name: str) -> Path:
    return cluster_dir / "controllers" / name


def start(cluster: DevCluster, names: Iterable[str]) -> list[RunningController]:
    """Build (if missing), install and start these controllers on `cluster`; each is
    ready (its /readyz answers, its webhooks registered) when this returns. One that
    already runs for this cluster is kept."""
    live = running(cluster.directory)
    specs = [spec(name) for name in dict.fromkeys(names)]
    missing = [s for s in specs if s.name not in live]
    paths: dict[str, Path] = {}
    modules: dict[str, Path] = {}
    if missing:
        paths = binaries.ensure(s.binary for s in missing)
        modules = {s.name: module_dir(s) for s in missing}
        cluster.apply_crds([f for s in missing for f in crd_files(s, modules[s.name])])
    started: list[RunningController] = []
    try:
        for s in missing:
            started.append(_start_one(cluster, s, paths[s.binary], modules[s.name]))
    except BaseException:
        for controller in reversed(started):
            stop_one(cluster, controller)
        raise
    live.update((c.spec.name, c) for c in started)
    return [live[s.name] for s in specs]


def _start_one(
    cluster: DevCluster, spec: ControllerSpec, binary: Path, module: Path
) -> RunningController:
    home = directory(cluster.directory, spec.name)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if spec.objects:
        cluster.apply(list(spec.objects))
    ports = Ports(metrics=_free_port(), health=_free_port(), webhook=_free_port())
    if spec.rotator_secret is None:
        certificate = self_signed([LOOPBACK])
        certificate.write(home / "certs")
    else:
        certificate = _machine_pair(ROTATOR_CERTS, lambda: rsa_self_signed(ROTATOR_HOSTS))
        cluster.apply(_rotator_secret(*spec.rotator_secret, certificate))
    if spec.name == "kueue":
        _machine_pair(KUEUE_METRICS_CERTS, lambda: self_signed([LOOPBACK]))
    launch = spec.launch(ports, home)
    for name, text in launch.files.items():
        (home / name).write_text(text, encoding="utf-8")
    component = components.Component(
        name=spec.name,
        binary=str(binary),
        args=launch.args,
        workdir=cluster.directory,
        env={"KUBECONFIG": str(cluster.kubeconfig)},
    )
    controller = RunningController(spec, component, ports, ())
    _record(cluster.directory, controller)
    components.start(component)
    try:
        _wait_ready(controller)
        configurations = (
            []
            if spec.webhooks is None
            else webhooks.render(
                spec.webhooks, module, port=ports.webhook, ca_bundle=certificate.cert_pem
            )
        )
        if configurations:
            cluster.apply(configurations, server_side=True)
    except BaseException:
        components.stop(component)
        raise
    registered = tuple((c["kind"], c["metadata"]["name"]) for c in configurations)
    controller = RunningController(spec, component, ports, registered)
    _record(cluster.directory, controller)
    return controller


RECORD = "controller.json"
"""What a controller's directory says about its process (another process can stop it)."""


def _record(cluster_dir: Path, controller: RunningController) -> None:
    record = {
        "binary": controller.component.binary,
        "args": list(controller.component.args),
        "ports": [controller.ports.metrics, controller.ports.health, controller.ports.webhook],
        "webhooks": [list(w) for w in controller.webhook_configurations],
    }
    path = directory(cluster_dir, controller.spec.name) / RECORD
    path.write_text(json.dumps(record), encoding="utf-8")


def _recorded(cluster_dir: Path) -> list[RunningController]:
    found: list[RunningController] = []
    for path in sorted(cluster_dir.glob(f"controllers/*/{RECORD}")):
        saved = json.loads(path.read_text(encoding="utf-8"))
        component = components.Component(
            name=path.parent.name,
            binary=saved["binary"],
            args=tuple(saved["args"]),
            workdir=cluster_dir,
            env={},
        )
        hooks = tuple((kind, name) for kind, name in saved["webhooks"])
        found.append(
            RunningController(spec(path.parent.name), component, Ports(*saved["ports"]), hooks)
        )
    return found


def running(cluster_dir: Path) -> dict[str, RunningController]:
    """The controllers whose processes run for the cluster in `cluster_dir`."""
    return {c.spec.name: c for c in _recorded(cluster_dir) if components.running_pid(c.component)}


def _wait_ready(running: RunningController, timeout: float = READY_TIMEOUT) -> None:
    url = f"http://{LOOPBACK}:{running.ports.health}/readyz"
    deadline = time.monotonic() + timeout
    while True:
        if components.running_pid(running.component) is None:
            raise ControllerError(f"{running.spec.name} exited:\n{tail(running.log_file)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        if time.monotonic() >= deadline:
            raise ControllerError(
                f"{running.spec.name} not ready after {timeout:.0f}s:\n{tail(running.log_file)}"
            )
        time.sleep(0.5)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _machine_pair(directory: Path, make: Callable[[], ServingCertificate]) -> ServingCertificate:
    try:
        return shared_pair(directory, make)
    except OSError as error:
        raise ControllerError(
            f"{directory} (tls.crt, tls.key) is missing and cannot be written here ({error}): "
            "create it once (any self-signed pair for 127.0.0.1), e.g. as root"
        ) from error


def _rotator_secret(namespace: str, name: str, pair: ServingCertificate) -> dict[str, Any]:
    """The rotator's Secret holding our pair (as its CA too): valid, so it is kept."""
    data = {
        "ca.crt": pair.cert_pem,
        "ca.key": pair.key_pem,
        "tls.crt": pair.cert_pem,
        "tls.key": pair.key_pem,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value).decode("ascii") for key, value in data.items()},
    }


def stop_one(cluster: DevCluster, controller: RunningController) -> None:
    """Unregister its webhooks (a dead webhook blocks admission), then end it."""
    for kind, name in controller.webhook_configurations:
        cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", "--wait=false")
    components.stop(controller.component)
    (directory(cluster.directory, controller.spec.name) / RECORD).unlink(missing_ok=True)


def stop_all(cluster_dir: Path) -> None:
    """End every controller started for the cluster in `cluster_dir` (by their records,
    also from another process); leaves webhook configurations to the cluster's deletion."""
    for controller in _recorded(cluster_dir):
        components.stop(controller.component)
