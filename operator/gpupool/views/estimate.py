"""A pending job's forecast start, as the queue and explain print it."""

from __future__ import annotations

from datetime import datetime

from gpupool.api import GPUJobStatus


def _in(seconds: float) -> str:
    if seconds < 60:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds >= size:
            return f"in {seconds / size:.1f}{unit}"
    return f"in {seconds / 60:.0f}m"


def estimated_start(status: GPUJobStatus, now: datetime, *, basis: bool = False) -> str:
    """`in 2.0h (14:00 UTC, high)`; `unknown` (with why, if `basis`); `-` if none."""
    estimate = status.estimated_start
    if estimate is None:
        return "-"
    if estimate.time is None:
        return f"unknown: {estimate.basis}" if basis else "unknown"
    text = (
        f"{_in((estimate.time - now).total_seconds())} "
        f"({estimate.time.strftime('%Y-%m-%d %H:%M UTC')}, {estimate.confidence or '?'} confidence)"
    )
    return f"{text}; {estimate.basis}" if basis and estimate.basis else text
