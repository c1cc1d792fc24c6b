"""What the client needs to reach and authenticate to one API server, and the
Authorization header it sends, kept fresh: token files are re-read (bound
service-account tokens rotate), and a kubeconfig's credentials are fetched anew when
they expire or the server refuses them (its exec plugin runs again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpupool.k8s.errors import CredentialsError

# Certificates and keys, either a file to read or the PEM bytes themselves.
Pem = Path | bytes

# A new Authorization header and when it expires (seconds since the epoch; None: when
# the server refuses it).
Reauthorize = Callable[[], tuple[str | None, float | None]]

# client-go re-reads token files once a minute; the kubelet renews projected tokens
# well before they expire, so this never sends a stale one.
TOKEN_FILE_PERIOD = 60.0


@dataclass(frozen=True)
class Credentials:
    """One API server and how to authenticate to it (from a kubeconfig or in-cluster).

    At most one of token, token_file and authorization is set; a client certificate
    may come with any of them. A token_file, when set, is re-read every
    TOKEN_FILE_PERIOD seconds. `authorization` is a ready header (a kubeconfig's
    Bearer or Basic credentials), valid until `authorization_expires`; `reauthorize`
    (a kubeconfig read again) gives the next one.
    """

    server: str
    ca: Pem | None = None
    client_certificate: Pem | None = None
    client_key: Pem | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    token_file: Path | None = None
    authorization: str | None = None
    authorization_expires: float | None = None
    reauthorize: Reauthorize | None = field(default=None, compare=False, repr=False)
    # An http(s) proxy to reach the server through (proxy-url, or $HTTPS_PROXY unless
    # $NO_PROXY exempts the server).
    proxy: str | None = None
    # Impersonate-* headers (a kubeconfig user's `as`, `as-groups`, ...).
    impersonation: tuple[tuple[str, str], ...] = ()
    # Where the credentials come from, for messages: the exec plugin's command, or the
    # auth-provider's name.
    exec_command: str | None = None
    auth_provider: str | None = None
    namespace: str | None = None
    source: str = "explicit credentials"

    def with_token(self, token: str) -> Credentials:
        """The same server, authenticating with `token` only (no client certificate,
        which the API server would check first, and no impersonation)."""
        return dataclasses.replace(
            self,
            client_certificate=None,
            client_key=None,
            token=token,
            token_file=None,
            authorization=None,
            authorization_expires=None,
            reauthorize=None,
            impersonation=(),
            exec_command=None,
            auth_provider=None,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS settings for an https server; None for plain http."""
        if not self.server.startswith("https"):
            return None
        if isinstance(self.ca, bytes):
            context = ssl.create_default_context(cadata=self.ca.decode())
        else:
            context = ssl.create_default_context(cafile=self.ca)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_certificate is not None and self.client_key is not None:
            _load_cert_chain(context, self.client_certificate, self.client_key)
        return context


def _load_cert_chain(context: ssl.SSLContext, certificate: Pem, key: Pem) -> None:
    if isinstance(certificate, Path) and isinstance(key, Path):
        context.load_cert_chain(certificate, key)
        return
    # ssl reads certificates from files only: write the data to a private directory
    # just long enough to load it.
    with tempfile.TemporaryDirectory(prefix="gpupool-tls-") as private:
        paths = []
        for name, pem in (("tls.crt", certificate), ("tls.key", key)):
            if isinstance(pem, Path):
                paths.append(pem)
                continue
            path = Path(private) / name
            path.write_bytes(pem)
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])


class Authorization:
    """The Authorization header for `credentials`, refreshed as its source requires."""

    def __init__(self, credentials: Credentials, clock: Callable[[], float] = time.time) -> None:
        self.credentials = credentials
        self.clock = clock
        self._header: str | None = None
        # The clock reading until which the header may be sent without fetching it anew.
        self.valid_until = float("-inf")
        if credentials.authorization is not None:
            self._header = credentials.authorization
            expires = credentials.authorization_expires
            self.valid_until = float("inf") if expires is None else expires
        self._refreshing = asyncio.Lock()

    async def header(self) -> str | None:
        if self.clock() >= self.valid_until:
            # One refresh at a time: concurrent calls would each run the exec plugin.
            async with self._refreshing:
                if self.clock() >= self.valid_until:
                    await self._refresh()
        return self._header

    async def _refresh(self) -> None:
        credentials = self.credentials
        if credentials.token_file is not None:
            try:
                self._header = f"Bearer {_read_token(credentials.token_file)}"
            except CredentialsError:
                # As in client-go: the last token read stays in use until a read succeeds.
                if self._header is None:
                    raise
            self.valid_until = self.clock() + TOKEN_FILE_PERIOD
        elif credentials.reauthorize is not None:
            # In a thread: an exec plugin may take a while (or prompt).
            header, expires = await asyncio.to_thread(credentials.reauthorize)
            self._header = header
            self.valid_until = float("inf") if expires is None else expires
        elif credentials.token is not None:
            self._header = f"Bearer {credentials.token}"
            self.valid_until = float("inf")
        else:
            self._header = credentials.authorization
            self.valid_until = float("inf")

    def forget(self) -> None:
        """Fetch the header anew on the next call (the server refused it)."""
        self.valid_until = float("-inf")


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise CredentialsError(f"token file {path}: {error.strerror or error}") from error
    if not token:
        raise CredentialsError(f"token file {path} is empty")
    return token
