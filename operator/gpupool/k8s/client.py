"""The one module that talks to the Kubernetes API server.

A thin asyncio client over aiohttp (which kopf already brings): JSON in, JSON out,
no model deserialization on the hot path, so the operator can create thousands of
pods quickly. Credentials come from `gpupool.k8s.kubeconfig`: a kubeconfig read by the
`kubernetes` package's loader, or the pod's service account, read without it (its
import alone costs the node agent about 20 MB).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from gpupool.k8s import decoding
from gpupool.k8s.credentials import Authorization, Credentials
from gpupool.k8s.errors import ApiError, connection_failure
from gpupool.k8s.kubeconfig import load_credentials
from gpupool.k8s.resources import Resource

JSON = dict[str, Any]
# Told of every call that failed for good: (verb, path, error). The operator counts them.
ErrorObserver = Callable[[str, str, ApiError], None]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class ClientSettings:
    """Connection limits and retry policy."""

    connections: int = 64
    request_timeout: float | None = 30.0  # seconds per request; None: no limit
    attempts: int = 5
    field_manager: str = "gpupool"
    on_error: ErrorObserver | None = None


class KubeClient:
    """Async REST verbs over `Resource` descriptors. Use as an async context manager."""

    def __init__(self, credentials: Credentials, settings: ClientSettings | None = None):
        self.credentials = credentials
        self.settings = settings or ClientSettings()
        self._authorization = Authorization(credentials)
        self._impersonation = credentials.impersonation
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: str | None = None,
        context: str | None = None,
        settings: ClientSettings | None = None,
    ) -> KubeClient:
        return cls(load_credentials(kubeconfig, context), settings)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _headers(self) -> CIMultiDict[str]:
        # A multidict: Impersonate-Group is sent once per group.
        headers = CIMultiDict([("Accept", "application/json"), *self._impersonation])
        authorization = await self._authorization.header()
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def _refused(self, status: int) -> None:
        # A rotated or expired token: like client-go, fetch it anew for the next call.
        if status == 401:
            self._authorization.forget()

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.settings.connections, ssl=self.credentials.ssl_context() or False
            )
            self._session = aiohttp.ClientSession(
                base_url=self.credentials.server.rstrip("/") + "/",
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def _once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Any,
        content_type: str,
        timeout: float | None,
        text: bool = False,
    ) -> Any:
        session = self._session_for_loop()
        headers = await self._headers()
        if text:
            headers["Accept"] = "text/plain"
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        try:
            async with session.request(
                method,
                path.lstrip("/"),
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.settings.request_timeout),
                server_hostname=self.credentials.tls_server_name,
                proxy=self.credentials.proxy,
            ) as response:
                payload = await response.read()
                if response.status >= 400:
                    self._refused(response.status)
                    raise _error(response.status, payload)
                if text:
                    return payload.decode(errors="replace")
                return decoding.loads(payload) if payload else None
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise connection_failure(exc, self.credentials.server, f"{method} {path}") from exc

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        retry: bool = True,
        text: bool = False,
    ) -> Any:
        """One API call; overload, server faults and lost connections are retried.

        The reply is decoded JSON, or with `text` the body as a string (`/metrics`).
        """
        attempts = self.settings.attempts if retry else 1
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential_jitter(multiplier=0.2, max=5),
                retry=retry_if_exception(lambda e: isinstance(e, ApiError) and e.retryable),
                reraise=True,
            ):
                with attempt:
                    return await self._once(method, path, params, body, content_type, timeout, text)
        except ApiError as error:
            self._failed(method, path, error)
            raise
        raise AssertionError("unreachable: tenacity reraises")

    def _failed(self, verb: str, path: str, error: ApiError) -> None:
        if self.settings.on_error is not None:
            self.settings.on_error(verb, path, error)

    async def get_text(self, path: str) -> str:
        """GET an endpoint that does not answer JSON, e.g. the API server's `/metrics`."""
        result: str = await self.request("GET", path, text=True)
        return result

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        result: JSON = await self.request("GET", resource.path(namespace, name))
        return result

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        result: JSON = await self.request("GET", resource.path(namespace), params=params)
        return result

    async def create(
        self, resource: Resource, body: JSON, namespace: str | None = None, *, dry_run: bool = False
    ) -> JSON:
        """Create; with `dry_run`, the API server validates and admits it but stores nothing."""
        params = {"fieldManager": self.settings.field_manager}
        if dry_run:
            params["dryRun"] = "All"
        result: JSON = await self.request(
            "POST", resource.path(namespace), body=body, params=params
        )
        return result

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> JSON:
        result: JSON = await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=patch,
            content_type=content_type,
            params={"fieldManager": self.settings.field_manager},
        )
        return result

    async def patch_status(
        self, resource: Resource, name: str, status: JSON, namespace: str | None = None
    ) -> JSON:
        return await self.patch(resource, name, {"status": status}, namespace, subresource="status")

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        missing_ok: bool = True,
    ) -> JSON | None:
        """Delete; with `uid`, only that incarnation of the object (a precondition)."""
        body: JSON = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            result: JSON = await self.request("DELETE", resource.path(namespace, name), body=body)
        except ApiError as error:
            if missing_ok and (error.not_found or (uid is not None and error.conflict)):
                return None
            raise
        return result

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[JSON]:
        """Stream watch events ({"type", "object"}) until the server closes the watch."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            params["resourceVersion"] = resource_version
            params["allowWatchBookmarks"] = "true"
        if label_selector:
            params["labelSelector"] = label_selector
        session = self._session_for_loop()
        path = resource.path(namespace)
        try:
            async with session.get(
                path.lstrip("/"),
                params=params,
                headers=await self._headers(),
                timeout=aiohttp.ClientTimeout(total=timeout_seconds + 10),
                server_hostname=self.credentials.tls_server_name,
                proxy=self.credentials.proxy,
            ) as response:
                if response.status >= 400:
                    self._refused(response.status)
                    raise _error(response.status, await response.read())
                async for line in response.content:
                    if line.strip():
                        event: JSON = decoding.loads(line)
                        if event.get("type") == "ERROR":
                            status = event.get("object", {})
                            raise ApiError(
                                int(status.get("code", 500)),
                                str(status.get("reason", "")),
                                str(status.get("message", "")),
                                status,
                            )
                        yield event
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            unreachable = connection_failure(
                exc, self.credentials.server, f"watch {resource.plural}"
            )
            self._failed("WATCH", path, unreachable)
            raise unreachable from exc
        except ApiError as error:
            self._failed("WATCH", path, error)
            raise


def _error(status: int, payload: bytes) -> ApiError:
    try:
        body = decoding.loads(payload)
    except ValueError:
        return ApiError(status, "", payload.decode(errors="replace")[:500])
    if isinstance(body, dict):
        return ApiError(status, str(body.get("reason", "")), str(body.get("message", "")), body)
    return ApiError(status, "", str(body)[:500])
