"""Reading a checkpoint location out of a container's termination message.

The workload writes it to its termination-message file (see `gpupool.workload`),
the kubelet copies that file into `status.containerStatuses[].state.terminated.message`
when the container ends. Two forms are accepted:

- JSON: `{"checkpoint": "<location>"}` (what the workload helper writes; other keys
  are ignored);
- a bare location on a single line that looks like a path or a URI (contains `/`),
  e.g. `s3://bucket/run/step-1200` or `/ckpt/step-1200`, for scripts that just
  `echo` it.

Anything else is ignored, in particular the log tail the kubelet substitutes under
`terminationMessagePolicy: FallbackToLogsOnError` when the container failed without
writing the file: a traceback is not a checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from gpupool.api.bounds import checkpoint_location


def parse_termination_message(message: str | None) -> str | None:
    """The checkpoint location in a termination message, or None."""
    if not message:
        return None
    text = message.strip()
    if not text:
        return None
    if text[0] in '{["':
        try:
            document = json.loads(text)
        except ValueError:
            return None
        return checkpoint_location(
            document.get("checkpoint") if isinstance(document, dict) else None
        )
    if "/" in text and not any(character.isspace() for character in text):
        return checkpoint_location(text)
    return None


def _terminated_messages(container_status: Mapping[str, Any]) -> Iterator[str | None]:
    for key in ("state", "lastState"):
        terminated = (container_status.get(key) or {}).get("terminated")
        if terminated:
            yield terminated.get("message")


def checkpoint_from_pod(pod: Mapping[str, Any]) -> str | None:
    """The checkpoint location a terminated container of `pod` reported, or None.

    The pod's first container (the one with the GPUs, which runs the trainer) is read
    first, then the others; the kubelet lists container statuses by name, not in spec
    order.
    """
    containers = (pod.get("spec") or {}).get("containers") or ()
    first = containers[0].get("name") if containers else None
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    ordered = sorted(statuses, key=lambda status: status.get("name") != first)
    for status in ordered:
        for message in _terminated_messages(status):
            location = parse_termination_message(message)
            if location is not None:
                return location
    return None
