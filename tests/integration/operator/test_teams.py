"""Team membership: a GPUJob from outside a team's namespaces cannot use its GPUs."""

from __future__ import annotations

import pytest

from .harness import OperatorProcess, Pool, wait_for

pytestmark = pytest.mark.integration


async def test_a_job_from_another_namespace_cannot_use_the_teams_gpus(
    pool: Pool, operator: OperatorProcess
) -> None:
    await pool.add_nodes(1, 8)
    nlp, _ = await pool.add_team("nlp", 8)
    rogue = await pool.add_namespace("rogue")
    operator.start()
    await pool.submit(rogue, "sneaky", team=nlp)

    async def explained() -> dict[str, object] | None:
        status = await pool.status(rogue, "sneaky")
        return status if status.get("pendingReason") else None

    status = await wait_for("sneaky's reason", explained)
    assert status["pendingReason"] == "NamespaceNotInTeam"
    assert f"namespace {rogue} is not one of TeamQuota {nlp}" in status["detail"]
    admitted = {c["type"]: c for c in status["conditions"]}["Admitted"]
    assert (admitted["status"], admitted["reason"]) == ("False", "NamespaceNotInTeam")
    (event,) = await wait_for(
        "a Warning event",
        lambda: pool.events(rogue, "sneaky", "NamespaceNotInTeam"),
    )
    assert event["type"] == "Warning"
    assert await pool.job_pods(rogue, "sneaky") == []
