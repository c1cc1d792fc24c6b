"""kopf's login with gpupool's credentials, so that kopf and gpupool's client follow
the same kubeconfig, context and in-cluster rules and authenticate the same way
(client certificates, tokens, rotating token files, exec plugins, auth-provider,
proxies)."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import kopf

from gpupool.k8s.credentials import Authorization
from gpupool.k8s.errors import CredentialsError
from gpupool.k8s.kubeconfig import load_credentials


async def connection_info(kubeconfig: str | None) -> kopf.ConnectionInfo:
    """What kopf needs; it logs in again once `expiration` passes or on a 401."""
    try:
        # In a thread: reading a kubeconfig may run its exec plugin.
        credentials = await asyncio.to_thread(load_credentials, kubeconfig)
        authorization = Authorization(credentials)
        header = await authorization.header()
    except CredentialsError as error:
        raise kopf.LoginError(str(error)) from error
    if credentials.tls_server_name:
        raise kopf.LoginError(f"{credentials.source}: kopf does not support tls-server-name")
    if credentials.impersonation:
        raise kopf.LoginError(f"{credentials.source}: kopf does not support impersonation")
    scheme, _, token = (header or "").partition(" ")
    ca, certificate, key = credentials.ca, credentials.client_certificate, credentials.client_key
    expiration = None
    if math.isfinite(authorization.valid_until):
        expiration = datetime.fromtimestamp(authorization.valid_until, UTC)
    return kopf.ConnectionInfo(
        server=credentials.server,
        ca_path=None if isinstance(ca, bytes) else ca,
        ca_data=ca if isinstance(ca, bytes) else None,
        insecure=credentials.insecure_skip_tls_verify,
        certificate_path=None if isinstance(certificate, bytes) else certificate,
        certificate_data=certificate if isinstance(certificate, bytes) else None,
        private_key_path=None if isinstance(key, bytes) else key,
        private_key_data=key if isinstance(key, bytes) else None,
        scheme=scheme or None,
        token=token or None,
        default_namespace=credentials.namespace,
        proxy_url=credentials.proxy,
        expiration=expiration,
    )
