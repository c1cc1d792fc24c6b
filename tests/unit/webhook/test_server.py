"""The webhook endpoint: HTTPS with gpupool's own certificate, listening only when leading."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gpupool.k8s import ApiError
from gpupool.k8s.decoding import UNDECODABLE
from gpupool.webhook.config import WebhookConfig
from gpupool.webhook.leader import SERVING, SERVING_LABEL, ServingLabel
from gpupool.webhook.server import build_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def answer(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return {"response": {"uid": request["request"]["uid"], "allowed": False, "webhook": kwargs}}


def test_the_environment_configures_the_endpoint() -> None:
    config = WebhookConfig.from_env(
        {"GPUPOOL_WEBHOOK_PORT": "9443", "GPUPOOL_WEBHOOK_CERT_DIR": "/certs"}
    )
    assert config.enabled
    assert config.cert_paths == (Path("/certs/tls.crt"), Path("/certs/tls.key"))
    assert not WebhookConfig.from_env({}).enabled


async def test_serves_https_with_its_own_certificate_once_leading() -> None:
    port = free_port()
    leading = False
    server = build_server(WebhookConfig(port=port), serving=lambda: leading)
    configs = server(answer)  # type: ignore[arg-type]
    first = asyncio.ensure_future(anext(configs))
    await asyncio.sleep(1.0)
    assert not first.done() and not listening(port), "a standby must not listen"
    leading = True
    client_config = await asyncio.wait_for(first, timeout=10)
    try:
        assert client_config["url"] == f"https://127.0.0.1:{port}"
        ca = base64.b64decode(client_config["caBundle"]).decode()
        context = ssl.create_default_context(cadata=ca)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{client_config['url']}/gpujobs",
                json={"request": {"uid": "u1"}},
                ssl=context,
            ) as reply,
        ):
            body = await reply.json()
        assert body["response"]["uid"] == "u1"
        assert body["response"]["webhook"]["webhook"] == "gpujobs"
    finally:
        await configs.aclose()  # type: ignore[attr-defined]


async def test_without_a_port_nothing_listens() -> None:
    server = build_server(WebhookConfig(), serving=lambda: True)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(server(answer)), timeout=0.5)  # type: ignore[arg-type]


class RecordingClient:
    def __init__(self, fail: bool = False) -> None:
        self.patches: list[tuple[str, str, str, Any]] = []
        self.fail = fail

    async def patch(self, resource: Any, name: str, patch: Any, namespace: str) -> None:
        self.patches.append((resource.plural, namespace, name, patch))
        if self.fail:
            raise ApiError(403, "Forbidden", "pods is forbidden")


async def test_the_leader_labels_its_pod_for_the_webhook_service() -> None:
    client = RecordingClient()
    env = {"POD_NAME": "gpupool-operator-0", "POD_NAMESPACE": "gpupool-system"}
    label = ServingLabel.of_this_pod(client, env)  # type: ignore[arg-type]
    assert label is not None
    await label.set(False)
    await label.set(True)
    where = ("pods", "gpupool-system", "gpupool-operator-0")
    assert client.patches == [
        (*where, {"metadata": {"labels": {SERVING_LABEL: None}}}),
        (*where, {"metadata": {"labels": {SERVING_LABEL: SERVING}}}),
    ]
    assert ServingLabel.of_this_pod(client, {}) is None  # type: ignore[arg-type]


async def test_a_refused_label_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    client = RecordingClient(fail=True)
    label = ServingLabel(client, "p", "ns")  # type: ignore[arg-type]
    await label.set(True)
    assert "webhook label not set" in caplog.text


async def marks(request: dict[str, Any], **_: Any) -> dict[str, Any]:
    obj = request["request"]["object"]
    return {"response": {"uid": request["request"]["uid"], "mark": obj.get(UNDECODABLE)}}


async def test_a_review_nested_too_deep_reaches_the_validators_cut_not_a_500() -> None:
    port = free_port()
    server = build_server(WebhookConfig(port=port), serving=lambda: True)
    configs = server(marks)  # type: ignore[arg-type]
    client_config = await asyncio.wait_for(anext(configs), timeout=10)
    deep = '{"a":' * 1100 + "1" + "}" * 1100
    review = (
        '{"request":{"uid":"u2","object":{"metadata":{"name":"j"},'
        '"spec":{"template":{"metadata":' + deep + "}}}}}"
    )
    try:
        ca = base64.b64decode(client_config["caBundle"]).decode()
        context = ssl.create_default_context(cadata=ca)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{client_config['url']}/gpujobs",
                data=review,
                headers={"Content-Type": "application/json"},
                ssl=context,
            ) as reply,
        ):
            assert reply.status == 200
            body = await reply.json()
        assert body["response"]["uid"] == "u2"
        assert body["response"]["mark"].startswith("spec.template.metadata.a.a")
    finally:
        await configs.aclose()  # type: ignore[attr-defined]
