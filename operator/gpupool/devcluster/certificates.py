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
import ipaddress
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gpupool.webhook.certs import ServingCertificate


def rsa_self_signed(hosts: Sequence[str], *, days: int = 3650) -> ServingCertificate:
    """A self-signed RSA certificate (its own CA) for every host given; PKCS#1 key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return ServingCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


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
