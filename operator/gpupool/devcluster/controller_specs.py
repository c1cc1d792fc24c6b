"""What each workload controller is: its binary and module, its CRDs, its command line,
its webhooks, and what it needs created first (`SPECS`, by the name tests use)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpupool.devcluster.webhooks import LOOPBACK, Webhooks

KUEUE_FRAMEWORKS = (
    "batch/job",
    "jobset.x-k8s.io/jobset",
    "kubeflow.org/pytorchjob",
    "ray.io/rayjob",
    "ray.io/raycluster",
    "trainer.kubeflow.org/trainjob",
)
"""The integrations Kueue is started with: the kinds gpupool governs."""


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
