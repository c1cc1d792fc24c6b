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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonpatch
import yaml

from gpupool.devcluster import binaries, components
from gpupool.devcluster.certificates import rsa_self_signed, shared_pair
from gpupool.webhook.certs import ServingCertificate, self_signed

if TYPE_CHECKING:
    from gpupool.devcluster.local import DevCluster

READY_TIMEOUT = 180.0
LOOPBACK = "127.0.0.1"

KUEUE_FRAMEWORKS = (
    "batch/job",
    "jobset.x-k8s.io/jobset",
    "kubeflow.org/pytorchjob",
    "ray.io/rayjob",
    "ray.io/raycluster",
    "trainer.kubeflow.org/trainjob",
)
"""The integrations Kueue is started with: the kinds gpupool governs."""

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


@dataclass(frozen=True)
class Ports:
    metrics: int
    health: int
    webhook: int


@dataclass(frozen=True)
class Launch:
    """How one controller process is started."""

    args: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    """Files written into the controller's directory first (name -> text)."""


@dataclass(frozen=True)
class Webhooks:
    """A controller's webhook configurations in its module (controller-gen's output) and
    the kustomization whose patches add their selectors."""

    manifest: str
    kustomization: str
    name_prefix: str = ""
    """What the release's kustomization prefixes the configurations' names with."""
    keep: Callable[[Mapping[str, Any]], bool] = lambda _webhook: True


@dataclass(frozen=True)
class ControllerSpec:
    name: str
    binary: str
    """Its name in tests/cluster/build.sh."""
    wrapper: str
    """Its wrapper module's directory under tests/cluster/."""
    module: str
    crds: tuple[str, ...]
    """CRD manifests inside the module: directories (every CRD in them) or files."""
    kinds: tuple[str, ...]
    """The CRDs of the kinds it runs (plural.group), the ones a test needs."""
    launch: Callable[[Ports, Path], Launch]
    """Its command line, given its ports and its directory (config, certificates)."""
    objects: tuple[Mapping[str, Any], ...] = ()
    """Created before it starts (its namespace)."""
    webhooks: Webhooks | None = None
    rotator_secret: tuple[str, str] | None = None
    """(namespace, name) of the Secret its certificate rotator keeps, if it has one."""


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _jobset(ports: Ports, directory: Path) -> Launch:
    config = {
        "apiVersion": "config.jobset.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": LOOPBACK, "port": ports.webhook, "certDir": str(directory / "certs")},
        "metrics": {"bindAddress": f"{LOOPBACK}:{ports.metrics}"},
        "health": {"healthProbeBindAddress": f"{LOOPBACK}:{ports.health}"},
    }
    return Launch(
        args=("--config", str(directory / "config.yaml")),
        files={"config.yaml": yaml.safe_dump(config)},
    )


def _kueue(ports: Ports, directory: Path) -> Launch:
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": LOOPBACK, "port": ports.webhook, "certDir": str(directory / "certs")},
        "metrics": {"bindAddress": f"{LOOPBACK}:{ports.metrics}"},
        "health": {"healthProbeBindAddress": f"{LOOPBACK}:{ports.health}"},
        # The on-demand visibility API is an aggregated API server of its own (an
        # APIService to register, another port); nothing here reads it.
        "featureGates": {"VisibilityOnDemand": False},
        "integrations": {"frameworks": list(KUEUE_FRAMEWORKS)},
    }
    return Launch(
        args=("--config", str(directory / "config.yaml")),
        files={"config.yaml": yaml.safe_dump(config)},
    )


def _kueue_webhook(webhook: Mapping[str, Any]) -> bool:
    """Kueue's own kinds and the integrations it runs: the noop webhooks it serves for
    the others intercept nothing gpupool's tests create."""
    wanted = {("kueue.x-k8s.io", "*")} | {
        (group, kind.lower() + "s")
        for group, _, kind in (f.rpartition("/") for f in KUEUE_FRAMEWORKS)
        if group
    }
    for rule in webhook.get("rules") or ():
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                if (group, "*") in wanted or (group, resource.split("/")[0]) in wanted:
                    return True
    return False


def _pytorchjob_webhook(webhook: Mapping[str, Any]) -> bool:
    """training-operator serves the webhooks of the kinds it is started for only."""
    return any("pytorchjobs" in (rule.get("resources") or ()) for rule in webhook["rules"])


def _kuberay(ports: Ports, directory: Path) -> Launch:
    return Launch(
        args=(
            f"--metrics-addr={LOOPBACK}:{ports.metrics}",
            f"--health-probe-bind-address={LOOPBACK}:{ports.health}",
            "--enable-leader-election=false",
            "--log-stdout-encoder=console",
        )
    )


def _training_operator(ports: Ports, directory: Path) -> Launch:
    return Launch(
        args=(
            f"--metrics-bind-address={LOOPBACK}:{ports.metrics}",
            f"--health-probe-bind-address={LOOPBACK}:{ports.health}",
            f"--webhook-server-port={ports.webhook}",
            "--leader-elect=false",
            "--enable-scheme=pytorchjob",
        )
    )


def _trainer(ports: Ports, directory: Path) -> Launch:
    return Launch(
        args=(
            f"--metrics-bind-address={LOOPBACK}:{ports.metrics}",
            f"--health-probe-bind-address={LOOPBACK}:{ports.health}",
            f"--webhook-server-port={ports.webhook}",
            "--leader-elect=false",
        )
    )


SPECS: dict[str, ControllerSpec] = {
    spec.name: spec
    for spec in (
        ControllerSpec(
            name="jobset",
            binary="jobset-controller",
            wrapper="jobset",
            module="sigs.k8s.io/jobset",
            crds=("config/components/crd/bases",),
            kinds=("jobsets.jobset.x-k8s.io",),
            launch=_jobset,
            webhooks=Webhooks(
                manifest="config/components/webhook/manifests.yaml",
                kustomization="config/components/webhook/kustomization.yaml",
                name_prefix="jobset-",
            ),
        ),
        ControllerSpec(
            name="kueue",
            binary="kueue",
            wrapper="kueue",
            module="sigs.k8s.io/kueue",
            crds=("config/components/crd/bases",),
            kinds=("clusterqueues.kueue.x-k8s.io", "localqueues.kueue.x-k8s.io"),
            launch=_kueue,
            objects=(_namespace("kueue-system"),),
            webhooks=Webhooks(
                manifest="config/components/webhook/manifests.yaml",
                kustomization="config/components/webhook/kustomization.yaml",
                name_prefix="kueue-",
                keep=_kueue_webhook,
            ),
        ),
        # KubeRay's only webhook (RayCluster validation) is off unless ENABLE_WEBHOOKS
        # is set: a bad RayCluster spec is reported by the operator on its status
        # instead of being refused at creation.
        ControllerSpec(
            name="kuberay",
            binary="kuberay-operator",
            wrapper="kuberay",
            module="github.com/ray-project/kuberay/ray-operator",
            crds=("config/crd/bases",),
            kinds=("rayjobs.ray.io", "rayclusters.ray.io"),
            launch=_kuberay,
        ),
        # Kubeflow's webhook servers bind every interface: the port is a free one, and
        # only loopback calls it.
        ControllerSpec(
            name="training-operator",
            binary="training-operator",
            wrapper="training-operator",
            module="github.com/kubeflow/training-operator",
            # Only the kinds it is started for (--enable-scheme).
            crds=("manifests/base/crds/kubeflow.org_pytorchjobs.yaml",),
            kinds=("pytorchjobs.kubeflow.org",),
            launch=_training_operator,
            objects=(_namespace("kubeflow"),),
            rotator_secret=("kubeflow", "training-operator-webhook-cert"),
            webhooks=Webhooks(
                manifest="manifests/base/webhook/manifests.yaml",
                kustomization="manifests/base/webhook/kustomization.yaml",
                keep=_pytorchjob_webhook,
            ),
        ),
        ControllerSpec(
            name="trainer",
            binary="trainer-controller-manager",
            wrapper="trainer",
            module="github.com/kubeflow/trainer/v2",
            crds=("manifests/base/crds",),
            kinds=("trainjobs.trainer.kubeflow.org",),
            launch=_trainer,
            objects=(_namespace("kubeflow-system"),),
            rotator_secret=("kubeflow-system", "kubeflow-trainer-webhook-cert"),
            webhooks=Webhooks(
                manifest="manifests/base/webhook/manifests.yaml",
                kustomization="manifests/base/webhook/kustomization.yaml",
            ),
        ),
    )
}


def spec(name: str) -> ControllerSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown controller {name!r} (known: {', '.join(SPECS)})") from None


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


# --- webhook configurations -----------------------------------------------------------------


def webhook_configurations(
    spec: ControllerSpec, module: Path, *, port: int, ca_bundle: bytes
) -> list[dict[str, Any]]:
    """The controller's webhook configurations as its kustomization renders them, each
    webhook calling https://127.0.0.1:<port><its path> instead of its Service."""
    if spec.webhooks is None:
        return []
    documents = [
        doc
        for doc in yaml.safe_load_all((module / spec.webhooks.manifest).read_text("utf-8"))
        if doc
    ]
    kustomization = module / spec.webhooks.kustomization
    documents = _kustomize_patches(documents, kustomization)
    rendered: list[dict[str, Any]] = []
    for doc in documents:
        hooks = [_by_url(w, port, ca_bundle) for w in doc["webhooks"] if spec.webhooks.keep(w)]
        if hooks:
            name = spec.webhooks.name_prefix + doc["metadata"]["name"]
            rendered.append({**doc, "metadata": {"name": name}, "webhooks": hooks})
    return rendered


def _kustomize_patches(
    documents: list[dict[str, Any]], kustomization: Path
) -> list[dict[str, Any]]:
    """Apply a kustomization's `patches` to these documents: JSON 6902 ones (a file with a
    `target`) and strategic-merge ones, whose webhooks merge by name."""
    config = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
    result = list(documents)
    for entry in config.get("patches") or ():
        text = entry.get("patch") or (kustomization.parent / entry["path"]).read_text("utf-8")
        patch = yaml.safe_load(text)
        if isinstance(patch, list):
            target = entry["target"]
            for index in _targets(result, target["kind"], target.get("name")):
                result[index] = jsonpatch.apply_patch(result[index], patch)
        else:
            index = _find(result, patch["kind"], patch["metadata"]["name"])
            result[index] = _merge_webhooks(result[index], patch.get("webhooks") or ())
    return result


def _targets(documents: Sequence[Mapping[str, Any]], kind: str, name: str | None) -> list[int]:
    """The documents a JSON 6902 patch's target names (every one of the kind without a name)."""
    if name is not None:
        return [_find(documents, kind, name)]
    matched = [i for i, doc in enumerate(documents) if doc.get("kind") == kind]
    if not matched:
        raise ControllerError(f"kustomize patch for {kind}: no such document")
    return matched


def _find(documents: Sequence[Mapping[str, Any]], kind: str, name: str) -> int:
    for index, doc in enumerate(documents):
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return index
    raise ControllerError(f"kustomize patch for {kind}/{name}: no such document")


def _merge_webhooks(
    document: Mapping[str, Any], patches: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    by_name = {p["name"]: p for p in patches}
    hooks = [{**w, **by_name.get(w["name"], {})} for w in document["webhooks"]]
    return {**document, "webhooks": hooks}


def _by_url(webhook: Mapping[str, Any], port: int, ca_bundle: bytes) -> dict[str, Any]:
    path = webhook["clientConfig"]["service"]["path"]
    client = {
        "url": f"https://{LOOPBACK}:{port}{path}",
        "caBundle": base64.b64encode(ca_bundle).decode("ascii"),
    }
    return {**webhook, "clientConfig": client}


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
        configurations = webhook_configurations(
            spec, module, port=ports.webhook, ca_bundle=certificate.cert_pem
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
