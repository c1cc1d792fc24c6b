"""Checkpoints reported while a job runs decide which borrower is reclaimed, on the real
API server: the workload helper's report line in a container log, read by the node
agent's reader, published in the GPUNode, used by the operator."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpupool.agent.checkpoints import LogCheckpoints
from gpupool.agent.status import PodRef
from gpupool.workload import report

from .harness import OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration

SAVED_AGO_SECONDS = 60


def container_log(root: Path, pod: dict[str, Any], location: str, when: datetime) -> None:
    """What the container runtime writes when the helper reports `location` at `when`."""
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        report(location, str(root / "termination-log"))
    metadata = pod["metadata"]
    directory = root / f"{metadata['namespace']}_{metadata['name']}_{metadata['uid']}" / "train"
    directory.mkdir(parents=True)
    stamp = when.isoformat().replace("+00:00", "Z")
    lines = [f"{stamp} stderr F {line}\n" for line in captured.getvalue().splitlines()]
    (directory / "0.log").write_text("".join(lines))


async def test_of_two_borrowers_the_one_that_saved_a_minute_ago_is_taken(
    pool: Pool, operator: OperatorProcess, tmp_path: Path
) -> None:
    """vision borrows both nodes' 16 GPUs with `old` and then `young` (no checkpoint hook:
    a preemption loses everything since the last checkpoint). `old` reports a checkpoint
    after `young` started; a minute later nlp claims 8 GPUs. Without the report `young`
    (less work to lose) would go; with it `old` loses only that minute and is taken."""
    await pool.add_nodes(2, 8)
    _, vision_ns = await pool.add_team("vision", 0, max_gpus=16)
    _, nlp_ns = await pool.add_team("nlp", 8)
    operator.start()
    await pool.submit(vision_ns, "old", hook=False)
    await pool.wait_phase(vision_ns, "old", "Running")
    await pool.submit(vision_ns, "young", hook=False)
    await pool.wait_phase(vision_ns, "young", "Running")
    await asyncio.sleep(2)

    (pod,) = await pool.job_pods(vision_ns, "old")
    saved_at = datetime.now(UTC)
    logs = tmp_path / "pods"
    container_log(logs, pod, f"s3://ckpt/{vision_ns}/old/step-1200", saved_at)
    metadata = pod["metadata"]
    reader = LogCheckpoints(logs)
    reported = reader.scan(
        [PodRef(metadata["namespace"], metadata["name"], "train", metadata["uid"])]
    )
    node = pod["spec"]["nodeName"]
    users = {index: f"{vision_ns}/{metadata['name']}" for index in range(8)}
    await pool.set_gpunode(
        node, 8, users=users, utilization=90.0, checkpoints=[c.to_k8s() for c in reported]
    )

    async def recorded() -> dict[str, Any] | None:
        last = (await pool.status(vision_ns, "old")).get("lastCheckpoint") or {}
        return last if last.get("source") == "workload" else None

    last = await wait_for("old's live checkpoint in its status", recorded)
    assert last["location"] == f"s3://ckpt/{vision_ns}/old/step-1200"
    assert "lastCheckpoint" not in await pool.status(vision_ns, "young")

    await asyncio.sleep(max(0.0, saved_at.timestamp() + SAVED_AGO_SECONDS - time.time()))
    await pool.submit(nlp_ns, "bert")
    await pool.wait_phase(nlp_ns, "bert", "Running", timeout=45)
    status = await pool.wait_phase(vision_ns, "old", "Pending")
    assert status["preemptions"] == 1
    assert status["lastCheckpoint"]["location"] == f"s3://ckpt/{vision_ns}/old/step-1200"
    young = await pool.status(vision_ns, "young")
    assert (young["phase"], young["preemptions"]) == ("Running", 0)
