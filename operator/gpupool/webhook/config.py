"""Where the admission webhook listens and which certificate it serves (GPUPOOL_WEBHOOK_*)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"


@dataclass(frozen=True)
class WebhookConfig:
    # 0: no webhook endpoint (the CRD schema still validates; the planner reports the rest).
    port: int = 0
    addr: str = "127.0.0.1"
    # A directory holding tls.crt and tls.key (the chart mounts its Secret there; kopf
    # re-reads the files when they change, so cert-manager renewals need no restart).
    # "" generates a self-signed certificate for `host` at start-up.
    cert_dir: str = ""
    host: str = "127.0.0.1"

    @property
    def enabled(self) -> bool:
        return self.port > 0

    @property
    def cert_paths(self) -> tuple[Path, Path] | None:
        if not self.cert_dir:
            return None
        return Path(self.cert_dir) / CERT_FILE, Path(self.cert_dir) / KEY_FILE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookConfig:
        env = os.environ if environ is None else environ
        return cls(
            port=int(env.get("GPUPOOL_WEBHOOK_PORT") or 0),
            addr=env.get("GPUPOOL_WEBHOOK_ADDR") or cls.addr,
            cert_dir=env.get("GPUPOOL_WEBHOOK_CERT_DIR") or "",
            host=env.get("GPUPOOL_WEBHOOK_HOST") or cls.host,
        )
