"""API errors, classified the way callers act on them."""

from __future__ import annotations

from typing import Any


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


class NotReachable(ApiError):
    """No answer at all (connection refused, reset, timed out)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "NotReachable", message)


class CredentialsError(Exception):
    """No usable credentials: a missing or malformed kubeconfig, an unsupported
    authentication method, or an exec plugin that failed."""
