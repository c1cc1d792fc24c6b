"""Bounds on what one user's object may hold, checked by the operator and the webhook.

The CRD schema bounds what it can (lengths, item counts, the pod template's schema); these
are the bounds a schema cannot state: how deep a value nests and how large the pod
template is as a whole. An object past them is never scheduled: its reason names the
field (a 1,000-level path is shortened to its first segments).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gpupool.k8s.decoding import deeper_than, shorten

# A real PodTemplateSpec nests about 12 levels (affinity terms); 32 leaves room.
TEMPLATE_MAX_DEPTH = 32
# Kubernetes limits a pod's annotations to 256 KiB and etcd an object to 1.5 MiB; a
# worker pod is a copy of the template, once per worker.
TEMPLATE_MAX_BYTES = 512 * 1024
# Per list of containers (and of init containers); the CRD schema says the same.
TEMPLATE_MAX_CONTAINERS = 64


# A checkpoint location (a path or URL) as a hook or a termination message reports it.
CHECKPOINT_MAX_LENGTH = 1024


def checkpoint_location(value: object) -> str | None:
    """A reported checkpoint location fit to store and resume from, or None.

    A string of printable characters, at most `CHECKPOINT_MAX_LENGTH` long: anything else
    a workload (or anyone answering in its place) replies is not a location.
    """
    if not isinstance(value, str):
        return None
    location = value.strip()
    if not location or len(location) > CHECKPOINT_MAX_LENGTH or not location.isprintable():
        return None
    return location


def template_problem(template: Any) -> str | None:
    """Why this pod template is past the bounds (naming the field), or None."""
    deep = deeper_than(template, TEMPLATE_MAX_DEPTH, "spec.template")
    if deep is not None:
        return f"{shorten(deep)}: nested deeper than {TEMPLATE_MAX_DEPTH} levels"
    pod_spec = template.get("spec") if isinstance(template, Mapping) else None
    for field in ("containers", "initContainers"):
        listed = pod_spec.get(field) if isinstance(pod_spec, Mapping) else None
        if isinstance(listed, list) and len(listed) > TEMPLATE_MAX_CONTAINERS:
            return (
                f"spec.template.spec.{field}: {len(listed)} items, more than "
                f"{TEMPLATE_MAX_CONTAINERS}"
            )
    size = len(orjson.dumps(template, option=orjson.OPT_NON_STR_KEYS))
    if size > TEMPLATE_MAX_BYTES:
        return (
            f"spec.template: {size / 1024:.0f} KiB as JSON, more than the "
            f"{TEMPLATE_MAX_BYTES // 1024} KiB a GPUJob's pod template may hold"
        )
    return None
