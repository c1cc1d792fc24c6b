"""Exec credential plugins (`users[].user.exec` in a kubeconfig): run the command and
read the token it prints, per the client.authentication.k8s.io ExecCredential
protocol (v1 and v1beta1). gpupool runs without a terminal, so plugins are never
interactive, and it accepts tokens only: a plugin that answers with a client
certificate is refused with an error saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gpupool.k8s.errors import CredentialsError

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
TIMEOUT = 60.0


@dataclass(frozen=True)
class ExecPlugin:
    command: str
    api_version: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    provide_cluster_info: bool = False
    install_hint: str | None = None
    source: str = field(default="", compare=False)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: float | None  # seconds since the epoch; None: valid until refused


async def run_exec_plugin(plugin: ExecPlugin, cluster: dict[str, Any]) -> IssuedToken:
    """Run the plugin once and return the token it issued."""
    spec: dict[str, Any] = {"interactive": False}
    if plugin.provide_cluster_info:
        spec["cluster"] = cluster
    info = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": spec}
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    what = f"{plugin.source}: exec plugin {plugin.command!r}"
    try:
        process = await asyncio.create_subprocess_exec(
            plugin.command,
            *plugin.args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        hint = f" ({plugin.install_hint.strip()})" if plugin.install_hint else ""
        raise CredentialsError(f"{what}: cannot run it: {error.strerror or error}{hint}") from error
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CredentialsError(f"{what}: no answer within {TIMEOUT:.0f}s") from None
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip()[-500:]
        raise CredentialsError(f"{what}: exited with {process.returncode}: {detail}")
    return parse_exec_credential(stdout, plugin.api_version, what)


def parse_exec_credential(stdout: bytes, api_version: str, what: str) -> IssuedToken:
    """The token of the ExecCredential a plugin printed."""
    try:
        answer = json.loads(stdout)
    except ValueError as error:
        raise CredentialsError(f"{what}: printed no ExecCredential JSON: {error}") from error
    if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
        raise CredentialsError(f"{what}: printed something other than an ExecCredential")
    if answer.get("apiVersion") != api_version:
        raise CredentialsError(
            f"{what}: answered with apiVersion {answer.get('apiVersion')!r}, "
            f"the kubeconfig asks for {api_version!r}"
        )
    status = answer.get("status") or {}
    token = status.get("token")
    if not token:
        if status.get("clientCertificateData"):
            raise CredentialsError(
                f"{what}: answered with a client certificate; gpupool accepts only "
                "tokens (status.token) from exec plugins"
            )
        raise CredentialsError(f"{what}: the ExecCredential has no status.token")
    expiry = status.get("expirationTimestamp")
    if not expiry:
        return IssuedToken(str(token), None)
    try:
        expires_at = datetime.fromisoformat(str(expiry).replace("Z", "+00:00")).timestamp()
    except ValueError as error:
        raise CredentialsError(f"{what}: bad status.expirationTimestamp {expiry!r}") from error
    return IssuedToken(str(token), expires_at)
