"""The HTTPS endpoint kopf serves the validators on, answering only on the leading instance.

A standby's indexes are empty or frozen (kopf pauses its watches), so its answers would
be wrong: it does not listen until its scheduling loop leads, and then labels its pod
(`leader.py`) so that the webhook Service sends admission requests to it alone. While
no instance leads (a fail-over), the API server applies the webhook's failurePolicy.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp.web
import kopf
from kopf._cogs.structs import reviews
from kopf._core.engines import admission

from gpupool.k8s import decoding
from gpupool.webhook.certs import self_signed
from gpupool.webhook.config import WebhookConfig

logger = logging.getLogger(__name__)

LEADER_POLL_SECONDS = 0.5
# An AdmissionReview holds the object and, on an update, its old version: the API server
# takes requests of up to 3 MiB.
MAX_REVIEW_BYTES = 8 * 1024 * 1024


class LeaderOnlyServer:
    """kopf's WebhookServer, started once `serving()` is true; never, without a port.

    Without a port kopf still needs a server (validators are registered); this one
    listens nowhere, and the API server never calls it because no configuration names it.
    """

    def __init__(
        self,
        server: kopf.WebhookServer | None,
        serving: Callable[[], bool],
        on_serving: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._server = server
        self._serving = serving
        self._on_serving = on_serving

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        if self._server is None:
            await asyncio.Event().wait()
            return
        while not self._serving():
            await asyncio.sleep(LEADER_POLL_SECONDS)
        logger.info("leading: serving admission webhooks")
        async for client_config in self._server(fn):
            if self._on_serving is not None:
                await self._on_serving()
            yield client_config


class BoundedWebhookServer(kopf.WebhookServer):
    """kopf's server, decoding admission reviews with `gpupool.k8s.decoding.loads`.

    kopf's own `json.loads` fails with a RecursionError on an object nested ~1,000 levels
    deep, which the API server reported to the user as "500 Internal Server Error",
    naming nothing. Decoded bounded, the object reaches the validators cut and marked,
    and is refused with the field it nests too deep in.
    """

    @staticmethod
    async def _serve(fn: reviews.WebhookFn, request: aiohttp.web.Request) -> aiohttp.web.Response:
        headers = dict(request.headers)
        sslpeer = request.transport.get_extra_info("peercert") if request.transport else None
        webhook = request.match_info.get("id")
        # Not `request.read()`: aiohttp refuses bodies above 1 MiB with a 413, which the
        # API server reports as a failed webhook call; a review of a large object is
        # answered (refused, naming its size) instead.
        body = await _read_body(request.content)
        try:
            data = decoding.loads(body)
        except ValueError as error:
            raise aiohttp.web.HTTPBadRequest(reason=str(error)[:200] or None) from error
        try:
            response = await fn(data, webhook=webhook, sslpeer=sslpeer, headers=headers)
        except admission.AmbiguousResourceError as error:
            raise aiohttp.web.HTTPConflict(reason=str(error) or None) from error
        except admission.UnknownResourceError as error:
            raise aiohttp.web.HTTPNotFound(reason=str(error) or None) from error
        except admission.WebhookError as error:
            raise aiohttp.web.HTTPBadRequest(reason=str(error) or None) from error
        return aiohttp.web.json_response(response)


async def _read_body(content: aiohttp.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_REVIEW_BYTES:
            raise aiohttp.web.HTTPRequestEntityTooLarge(max_size=MAX_REVIEW_BYTES, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _certificate(config: WebhookConfig) -> tuple[Path, Path]:
    paths = config.cert_paths
    if paths is not None:
        return paths
    directory = Path(tempfile.mkdtemp(prefix="gpupool-webhook-"))
    cert, key = self_signed([config.host]).write(directory)
    logger.info("webhook: self-signed certificate for %s (its own CA) in %s", config.host, cert)
    return cert, key


def build_server(
    config: WebhookConfig,
    serving: Callable[[], bool],
    on_serving: Callable[[], Awaitable[None]] | None = None,
) -> LeaderOnlyServer:
    if not config.enabled:
        return LeaderOnlyServer(None, serving)
    cert, key = _certificate(config)
    server = BoundedWebhookServer(
        addr=config.addr,
        port=config.port,
        host=config.host,
        certfile=str(cert),
        pkeyfile=str(key),
    )
    return LeaderOnlyServer(server, serving, on_serving)
