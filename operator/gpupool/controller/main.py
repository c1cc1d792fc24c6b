"""`gpupool operator`: run the kopf operator in this process."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os

from gpupool.controller.settings import OperatorConfig


def run(
    *,
    kubeconfig: str | None = None,
    standalone: bool = False,
    peering_name: str | None = None,
    priority: int | None = None,
    liveness: str | None = None,
    verbose: bool = False,
) -> None:
    """Run until SIGINT/SIGTERM. Cluster-wide; leader-only scheduling unless standalone."""
    import kopf

    from gpupool.controller import handlers

    config = OperatorConfig.from_env()
    changes: dict[str, object] = {}
    if kubeconfig:
        # kopf's own login reads $KUBECONFIG, gpupool's client the config.
        os.environ["KUBECONFIG"] = kubeconfig
        changes["kubeconfig"] = kubeconfig
    if standalone:
        changes["peering_name"] = ""
    elif peering_name:
        changes["peering_name"] = peering_name
    if priority is not None:
        changes["priority"] = priority
    config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    handlers.use_config(config)
    kopf.configure(verbose=verbose)
    if not verbose:
        # kopf reports every handler call on every event at INFO; the indexes and kicks
        # run for each of thousands of objects, so only their failures are worth a line.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(
        kopf.operator(
            clusterwide=True,
            standalone=config.standalone,
            priority=None if config.standalone else config.priority,
            peering_name=None if config.standalone else config.peering_name,
            liveness_endpoint=liveness,
        )
    )
