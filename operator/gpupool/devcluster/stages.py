"""kwok Stages: how fake nodes and pods behave (the manifests are in stages.yaml)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

FAKE_DURATION = "gpupool.io/fake-duration"
"""Pod annotation: a Go duration ("30s"); the pod ends that long after it started."""

FAKE_EXIT_CODE = "gpupool.io/fake-exit-code"
"""Pod annotation: the exit code when the fake duration ends (not 0: the pod fails)."""

FAKE_CHECKPOINT = "gpupool.io/fake-checkpoint"
"""Pod annotation: on SIGTERM (graceful delete) the container writes this location to
its termination message and exits 0."""

FAKE_CHECKPOINT_DELAY = "gpupool.io/fake-checkpoint-delay"
"""Pod annotation: how long writing that checkpoint takes (a Go duration, default 1s)."""

FAKE_IGNORE_SIGTERM = "gpupool.io/fake-ignore-sigterm"
"""Pod annotation: `true`, the workload ignores SIGTERM and is killed when the grace
period of its deletion ends (otherwise it exits half a second after SIGTERM)."""

FAKE_ADMISSION_REFUSED = "gpupool.io/fake-admission-refused"
"""Pod annotation: the kubelet refuses the pod at admission with this reason
(`OutOfnvidia.com/gpu`): it never starts and is Failed, as after losing a race for GPUs."""

STAGE_NAMES = (
    "node-initialize",
    "node-heartbeat-with-lease",
    "node-not-ready",
    "pod-ready",
    "pod-complete",
    "pod-finish-after-fake-duration",
    "pod-checkpoint-on-sigterm",
    "pod-exit-on-sigterm",
    "pod-delete",
    "pod-delete-after-grace-period",
    "pod-refused-at-admission",
)


def manifest() -> str:
    """All Stages as one multi-document YAML (for `kubectl apply -f -`)."""
    return resources.files(__package__).joinpath("stages.yaml").read_text(encoding="utf-8")


def stages() -> list[dict[str, Any]]:
    """The Stages as objects."""
    return [doc for doc in yaml.safe_load_all(manifest()) if doc]
