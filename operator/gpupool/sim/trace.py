"""Loading a job trace: one CSV row per job, sorted by submission time.

Columns (see traces/README.md): `timestamp` (UTC `YYYY-MM-DD HH:MM:SS`, or seconds),
`duration` (run time once started, seconds), `num_gpus`, `cluster` (the team), and
optionally `utilization` (mean GPU utilization of the job, 0–100).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REQUIRED_COLUMNS = ("timestamp", "duration", "num_gpus", "cluster")


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One trace row; `submitted` is seconds after the trace's first submission."""

    key: str
    team: str
    submitted: float
    duration: float
    gpus: int
    utilization: float | None = None

    @property
    def gpu_seconds(self) -> float:
        return self.duration * self.gpus


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        stamp = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return stamp.timestamp()


def load_trace(
    path: str | Path,
    limit: int | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TraceJob]:
    """The trace's jobs in submission order: those submitted in [since, until) if
    given, the first `limit` of them if given."""
    low = since.replace(tzinfo=UTC).timestamp() if since is not None else None
    high = until.replace(tzinfo=UTC).timestamp() if until is not None else None
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        has_utilization = "utilization" in (reader.fieldnames or ())
        rows: list[tuple[float, float, int, str, float | None]] = []
        for number, row in enumerate(reader, start=2):
            if limit is not None and len(rows) >= limit:
                break
            try:
                gpus = int(float(row["num_gpus"]))
                duration = float(row["duration"])
                utilization = (
                    float(row["utilization"])
                    if has_utilization and row["utilization"] not in ("", None)
                    else None
                )
                at = _seconds(row["timestamp"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
            if gpus <= 0 or duration < 0:
                raise ValueError(f"{path}:{number}: needs num_gpus > 0 and duration >= 0")
            if (low is None or at >= low) and (high is None or at < high):
                rows.append((at, duration, gpus, row["cluster"], utilization))
    rows.sort(key=lambda row: row[0])
    start = rows[0][0] if rows else 0.0
    return [
        TraceJob(f"{team}/job-{i}", team, at - start, duration, gpus, utilization)
        for i, (at, duration, gpus, team, utilization) in enumerate(rows)
    ]
