"""Checkpoint locations out of termination messages; log-fallback noise is ignored."""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.controller.termination import checkpoint_from_pod, parse_termination_message


@pytest.mark.parametrize(
    ("message", "location"),
    [
        ('{"checkpoint": "s3://bucket/run/step-1200"}', "s3://bucket/run/step-1200"),
        ('  {"checkpoint": " /ckpt/a ", "step": 7}\n', "/ckpt/a"),
        ('{"checkpoint": "step-1200"}', "step-1200"),
        ("/ckpt/step-1200\n", "/ckpt/step-1200"),
        ("gs://bucket/ckpt", "gs://bucket/ckpt"),
        (None, None),
        ("", None),
        ("   \n", None),
        ('{"checkpoint": ""}', None),
        ('{"checkpoint": 12}', None),
        ('{"location": "/ckpt/a"}', None),
        ('["/ckpt/a"]', None),
        ('"/ckpt/a"', None),
        ('{"checkpoint": "/ckpt/a"', None),
        ("Killed", None),
        ("step-1200", None),
        (
            'Traceback (most recent call last):\n  File "/app/train.py", line 3\n'
            "RuntimeError: CUDA out of memory",
            None,
        ),
        ("saved to /ckpt/a", None),
    ],
)
def test_parse(message: str | None, location: str | None) -> None:
    assert parse_termination_message(message) == location


def status(name: str, message: str | None, key: str = "state") -> dict[str, Any]:
    terminated = {"exitCode": 143, "reason": "Error"}
    if message is not None:
        terminated["message"] = message
    return {"name": name, key: {"terminated": terminated}}


def pod(*statuses: dict[str, Any], containers: tuple[str, ...] = ("train", "a-sidecar")) -> dict:
    return {
        "spec": {"containers": [{"name": name} for name in containers]},
        "status": {"containerStatuses": list(statuses)},
    }


def test_the_first_spec_container_wins_over_status_order() -> None:
    found = pod(status("a-sidecar", "/ckpt/sidecar"), status("train", '{"checkpoint": "/ckpt/t"}'))
    assert checkpoint_from_pod(found) == "/ckpt/t"


def test_other_containers_and_last_state_are_read_too() -> None:
    assert checkpoint_from_pod(pod(status("train", None), status("a-sidecar", "/c/s"))) == "/c/s"
    assert checkpoint_from_pod(pod(status("train", "/c/last", key="lastState"))) == "/c/last"


def test_running_or_empty_pods_have_no_location() -> None:
    running = pod({"name": "train", "state": {"running": {"startedAt": "now"}}})
    assert checkpoint_from_pod(running) is None
    assert checkpoint_from_pod({"metadata": {"name": "x"}}) is None
    assert checkpoint_from_pod(pod(status("train", "OOMKilled"))) is None
