"""Users' kubeconfigs against the real API server, read by the kubernetes package's
loader: an exec plugin that answers with a client certificate (the CLI included),
impersonation enforced by the API server, and proxy-url through an HTTP CONNECT proxy
on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gpupool.cli import app
from gpupool.k8s import NODES, ApiError, KubeClient, load_credentials

pytestmark = pytest.mark.integration


def derive(kubeconfig: Path, path: Path, *, user: dict[str, Any], cluster: dict[str, Any]) -> Path:
    """The session's kubeconfig, its current context's user replaced and cluster amended."""
    document = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in document["contexts"] if c["name"] == document["current-context"])
    for entry in document["clusters"]:
        if entry["name"] == context["context"]["cluster"]:
            entry["cluster"] = {**entry["cluster"], **cluster}
    for entry in document["users"]:
        if entry["name"] == context["context"]["user"]:
            entry["user"] = user
    path.write_text(yaml.safe_dump(document))
    return path


def exec_plugin(tmp_path: Path, status: dict[str, Any]) -> dict[str, Any]:
    """A kubeconfig user whose exec plugin prints an ExecCredential with `status`."""
    answer = tmp_path / "credential.json"
    version = "client.authentication.k8s.io/v1"
    answer.write_text(
        json.dumps({"apiVersion": version, "kind": "ExecCredential", "status": status})
    )
    script = tmp_path / "plugin"
    script.write_text(f"#!{sys.executable}\nprint(open({str(answer)!r}).read())\n")
    script.chmod(0o755)
    return {"exec": {"apiVersion": version, "command": str(script), "interactiveMode": "Never"}}


def session_credential(kubeconfig: Path) -> dict[str, Any]:
    """What the session's own user authenticates with, as an exec plugin would issue it."""
    credentials = load_credentials(str(kubeconfig))
    if credentials.client_certificate is not None and credentials.client_key is not None:
        return {
            "clientCertificateData": Path(str(credentials.client_certificate)).read_text(),
            "clientKeyData": Path(str(credentials.client_key)).read_text(),
        }
    scheme, _, token = (credentials.authorization or "").partition(" ")
    assert scheme == "Bearer", "the session's user has neither a certificate nor a token"
    return {"token": token}


async def test_an_exec_plugin_answering_with_a_client_certificate(
    kubeconfig: Path, tmp_path: Path
) -> None:
    path = derive(
        kubeconfig,
        tmp_path / "config",
        user=exec_plugin(tmp_path, session_credential(kubeconfig)),
        cluster={},
    )
    async with KubeClient.from_kubeconfig(str(path)) as client:
        assert "items" in await client.list(NODES)
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["top", "--kubeconfig", str(path)])
    assert shown.exit_code == 0, shown.output


async def test_impersonation_is_what_the_api_server_authorizes(
    kubeconfig: Path, tmp_path: Path
) -> None:
    """The session's (admin) user acting as a service account nobody granted anything."""
    document = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in document["contexts"] if c["name"] == document["current-context"])
    user = next(u for u in document["users"] if u["name"] == context["context"]["user"])
    acting = "system:serviceaccount:default:gpupool-nobody"
    path = derive(kubeconfig, tmp_path / "config", user={**user["user"], "as": acting}, cluster={})
    async with KubeClient.from_kubeconfig(str(path)) as client:
        with pytest.raises(ApiError) as refused:
            await client.list(NODES)
    assert refused.value.forbidden
    assert f'User "{acting}" cannot list resource "nodes"' in refused.value.message


@contextlib.asynccontextmanager
async def connect_proxy() -> AsyncIterator[tuple[int, list[str]]]:
    """An HTTP CONNECT proxy on loopback: (port, the targets it was asked for)."""
    targets: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode()
        method, target, _ = request.split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            writer.close()
            return
        targets.append(target)
        host, _, port = target.rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], targets
    finally:
        server.close()
        await server.wait_closed()


async def test_proxy_url_carries_the_connection(
    kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    document = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in document["contexts"] if c["name"] == document["current-context"])
    user = next(u for u in document["users"] if u["name"] == context["context"]["user"])
    server = load_credentials(str(kubeconfig)).server
    async with connect_proxy() as (port, targets):
        path = derive(
            kubeconfig,
            tmp_path / "config",
            user=user["user"],
            cluster={"proxy-url": f"http://127.0.0.1:{port}"},
        )
        async with KubeClient.from_kubeconfig(str(path)) as client:
            assert "items" in await client.list(NODES)
    assert targets and all(server.endswith(target) for target in targets), (targets, server)
