"""Certificates for the workload controllers' servers on loopback.

Kubeflow's controllers take theirs from their certificate rotator (open-policy-agent's
cert-controller), which keeps a Secret's pair when it is valid for their Service's DNS
name and parses the CA key as PKCS#1 RSA: the pair here is self-signed RSA, its own CA,
valid for those names and 127.0.0.1. Pairs that live at fixed paths (the rotator's
/tmp/k8s-webhook-server/serving-certs, Kueue's /etc/kueue/metrics/certs) are written
once per machine and shared by every local cluster, so concurrent sessions agree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from gpupool.webhook.certs import ServingCertificate, self_signed


def rsa_self_signed(hosts: Sequence[str], *, days: int = 3650) -> ServingCertificate:
    """A self-signed RSA certificate (its own CA) for every host given; PKCS#1 key."""
    return self_signed(hosts, days=days, rsa_pkcs1=True)


def shared_pair(directory: Path, make: Callable[[], ServingCertificate]) -> ServingCertificate:
    """The pair in `directory` (tls.crt, tls.key), made and written first if missing.
    Written into a staging directory and renamed: a concurrent writer's pair wins whole,
    or ours. OSError when the directory cannot be written."""
    if not (directory / "tls.crt").is_file():
        staging = directory.with_name(f"{directory.name}.{os.getpid()}")
        try:
            make().write(staging)
            with contextlib.suppress(OSError):
                staging.rename(directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ServingCertificate(
        cert_pem=(directory / "tls.crt").read_bytes(), key_pem=(directory / "tls.key").read_bytes()
    )
