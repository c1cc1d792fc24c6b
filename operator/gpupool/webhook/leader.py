"""A label on the operator pod that serves admission: the webhook Service selects it.

Every replica stays Ready (its liveness endpoint answers), so rolling updates proceed
while a standby waits; only the leader carries the label, so the API server's calls
reach the one instance whose indexes are live. A restarted container first removes a
label left from its previous run, when it may have led.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from gpupool.k8s import PODS, ApiError, KubeClient

logger = logging.getLogger(__name__)

SERVING_LABEL = "gpupool.io/webhook"
SERVING = "serving"


@dataclass(frozen=True)
class ServingLabel:
    client: KubeClient
    pod: str
    namespace: str

    @classmethod
    def of_this_pod(
        cls, client: KubeClient, environ: Mapping[str, str] | None = None
    ) -> ServingLabel | None:
        """From POD_NAME/POD_NAMESPACE (the chart sets both); None outside a pod."""
        env = os.environ if environ is None else environ
        pod, namespace = env.get("POD_NAME"), env.get("POD_NAMESPACE")
        return cls(client, pod, namespace) if pod and namespace else None

    async def set(self, serving: bool) -> None:
        patch = {"metadata": {"labels": {SERVING_LABEL: SERVING if serving else None}}}
        try:
            await self.client.patch(PODS, self.pod, patch, self.namespace)
        except ApiError as error:
            logger.error("pod %s/%s: webhook label not set: %s", self.namespace, self.pod, error)
