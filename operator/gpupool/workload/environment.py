"""What gpupool tells a worker through its environment (set by the operator)."""

from __future__ import annotations

import os


def resume_from() -> str | None:
    """The checkpoint location to resume from (`GPUPOOL_RESUME_FROM`), or None."""
    return os.environ.get("GPUPOOL_RESUME_FROM") or None


def _integer(name: str) -> int | None:
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return None


def restart_count() -> int:
    """How many times the job was started before this one (`GPUPOOL_RESTART_COUNT`)."""
    return _integer("GPUPOOL_RESTART_COUNT") or 0


def checkpoint_mode() -> str | None:
    """The job's checkpoint hook mode, `signal` or `httpPost`; None without a hook."""
    return os.environ.get("GPUPOOL_CHECKPOINT_MODE") or None


def checkpoint_timeout() -> int | None:
    """Seconds the hook may take (the SIGTERM grace period in `signal` mode)."""
    return _integer("GPUPOOL_CHECKPOINT_TIMEOUT")


def checkpoint_endpoint() -> tuple[int, str] | None:
    """(port, path) gpupool will POST to in `httpPost` mode; None in other modes."""
    port = _integer("GPUPOOL_CHECKPOINT_PORT")
    if checkpoint_mode() != "httpPost" or port is None:
        return None
    return port, os.environ.get("GPUPOOL_CHECKPOINT_PATH") or "/checkpoint"
