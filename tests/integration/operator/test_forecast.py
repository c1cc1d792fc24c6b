"""The start-time forecast on a real API server: status, `kubectl get gj -o wide`, queue."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from gpupool.cli import app
from gpupool.devcluster import Cluster

from .harness import OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_job_behind_a_two_hour_job_is_forecast_to_start_at_its_end(
    pool: Pool, operator: OperatorProcess, cluster: Cluster, kubeconfig_path: str
) -> None:
    """1 node × 8 GPUs: `long` (expectedDuration 2h) runs; `next` waits for its GPUs."""
    await pool.add_nodes(1, 8)
    _, namespace = await pool.add_team("fc", 8)
    operator.extra_env["GPUPOOL_FORECAST_INTERVAL_SECONDS"] = "1"
    operator.start()
    await pool.submit(namespace, "long", expectedDuration="2h")
    await pool.wait_phase(namespace, "long", "Running")
    await pool.submit(namespace, "next")

    async def estimated() -> dict[str, Any] | None:
        status = await pool.status(namespace, "next")
        estimate: dict[str, Any] | None = status.get("estimatedStart")
        return estimate if estimate and estimate.get("time") else None

    estimate = await wait_for("next's estimated start", estimated, timeout=90)
    started = parse((await pool.status(namespace, "long"))["startedAt"])
    assert abs(parse(estimate["time"]) - (started + timedelta(hours=2))) <= timedelta(seconds=90)
    assert estimate["confidence"] == "high"
    assert estimate["basis"] == "after 1 job end (1 by expectedDuration)"

    table = cluster.kubectl("get", "gj", "-n", namespace, "-o", "wide")
    header, *rows = table.splitlines()
    assert "EST. START" in header and "CONFIDENCE" in header
    (row,) = [line for line in rows if line.startswith("next ")]
    assert estimate["time"] in row and "high" in row

    queue = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["queue", "--team", namespace, "--kubeconfig", kubeconfig_path],
        env={"COLUMNS": "250"},
    )
    assert queue.exit_code == 0, queue.output
    assert "in 2.0h" in queue.output or "in 1.9h" in queue.output
    assert "high confidence" in queue.output
