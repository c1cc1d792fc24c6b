"""API errors, classified the way callers act on them.

A refusal keeps what the API server said (status, reason, message, the metav1.Status
body); a failure to get any answer says why in words (`connection refused`, `the
server's certificate is not trusted: ...`), never as a Python repr, and names the
server it tried.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp


class ApiError(Exception):
    """A non-2xx answer from the API server (a metav1.Status, when it sent one)."""

    def __init__(self, status: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def unauthorized(self) -> bool:
        """The credentials were not accepted: expired, revoked or wrong."""
        return self.status == 401

    @property
    def forbidden(self) -> bool:
        return self.status == 403

    @property
    def invalid(self) -> bool:
        return self.status == 422

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def retryable(self) -> bool:
        """Worth trying again as-is: overload, a server fault, or a lost connection."""
        return self.status in (0, 429) or self.status >= 500

    def refusal(self) -> Refusal | None:
        """Who was refused what, parsed from a 403's message (the authorizer's wording)."""
        if not self.forbidden:
            return None
        found = _FORBIDDEN.search(self.message)
        if found is None:
            return None
        return Refusal(
            user=found["user"],
            verb=found["verb"],
            resource=found["resource"],
            group=found["group"],
            namespace=found["namespace"],
        )


# "pods is forbidden: User "jane" cannot list resource "pods" in API group "" at the
# cluster scope" (or `in the namespace "x"`), as kube-apiserver's RBAC authorizer says it.
_FORBIDDEN = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)"'
    r' in API group "(?P<group>[^"]*)"(?: in the namespace "(?P<namespace>[^"]*)")?'
)


@dataclass(frozen=True)
class Refusal:
    """A 403 in parts: `user` may not `verb` `resource`.`group` (in `namespace`, or
    cluster-wide when None)."""

    user: str
    verb: str
    resource: str
    group: str
    namespace: str | None

    @property
    def qualified_resource(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


class NotReachable(ApiError):
    """No answer at all (connection refused, reset, timed out, no such host).

    `server` is the URL tried; `cause` says why in a few words."""

    def __init__(self, message: str, *, server: str = "", cause: str = "") -> None:
        super().__init__(0, "NotReachable", message)
        self.server = server
        self.cause = cause or message


class TLSFailure(NotReachable):
    """The TLS handshake failed. When the server's certificate is not trusted
    (`untrusted`), trying again changes nothing: not retried. A handshake that broke off
    (a server restarting) is retried like any lost connection."""

    def __init__(self, message: str, *, server: str, cause: str, untrusted: bool) -> None:
        super().__init__(message, server=server, cause=cause)
        self.untrusted = untrusted

    @property
    def retryable(self) -> bool:
        return not self.untrusted


def connection_failure(exc: BaseException, server: str, what: str) -> NotReachable:
    """The error for `what` (e.g. "GET /api/v1/pods") not reaching `server`."""
    cause = _cause(exc)
    if isinstance(exc, aiohttp.ClientSSLError):
        untrusted = isinstance(exc, aiohttp.ClientConnectorCertificateError)
        return TLSFailure(f"{what}: {cause}", server=server, cause=cause, untrusted=untrusted)
    return NotReachable(f"{what}: {cause}", server=server, cause=cause)


def _cause(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        certificate_error = exc.certificate_error
        detail = getattr(certificate_error, "verify_message", "") or str(certificate_error)
        return f"the server's certificate is not trusted ({detail})"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"the TLS handshake failed ({_ssl_reason(exc.os_error)})"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"no such host {exc.host!r}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"connection refused by {exc.host}:{exc.port}"
        return f"cannot connect to {exc.host}:{exc.port} ({_os_reason(exc.os_error)})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, TimeoutError):
        return "no answer within the request timeout"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    return str(exc) or type(exc).__name__


def _ssl_reason(error: OSError) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return error.reason.replace("_", " ").lower()
    return _os_reason(error)


def _os_reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


class CredentialsError(Exception):
    """No usable credentials: a missing or malformed kubeconfig, an unsupported
    authentication method, or an exec plugin that failed."""
