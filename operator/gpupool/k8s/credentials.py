"""What the client needs to reach and authenticate to one API server, and the
Authorization header it sends, kept fresh: token files are re-read (bound
service-account tokens rotate) and exec-plugin tokens are renewed when they expire.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpupool.k8s.errors import CredentialsError
from gpupool.k8s.execplugin import ExecPlugin, run_exec_plugin

# Certificates and keys, either a file to read or the PEM bytes themselves.
Pem = Path | bytes

# client-go re-reads token files once a minute; the kubelet renews projected tokens
# well before they expire, so this never sends a stale one.
TOKEN_FILE_PERIOD = 60.0


@dataclass(frozen=True)
class Credentials:
    """One API server and how to authenticate to it (from a kubeconfig or in-cluster).

    At most one of token/token_file, username/password and exec_plugin is set; a
    client certificate may come with any of them. A token_file, when set, is re-read
    every TOKEN_FILE_PERIOD seconds.
    """

    server: str
    ca: Pem | None = None
    client_certificate: Pem | None = None
    client_key: Pem | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    token_file: Path | None = None
    username: str | None = None
    password: str | None = None
    exec_plugin: ExecPlugin | None = None
    namespace: str | None = None
    source: str = "explicit credentials"

    def with_token(self, token: str) -> Credentials:
        """The same server, authenticating with `token` only (no client certificate,
        which the API server would check first)."""
        return dataclasses.replace(
            self,
            client_certificate=None,
            client_key=None,
            token=token,
            token_file=None,
            username=None,
            password=None,
            exec_plugin=None,
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
        elif credentials.exec_plugin is not None:
            issued = await run_exec_plugin(credentials.exec_plugin, _cluster_info(credentials))
            self._header = f"Bearer {issued.token}"
            self.valid_until = issued.expires_at if issued.expires_at is not None else float("inf")
        elif credentials.token is not None:
            self._header = f"Bearer {credentials.token}"
            self.valid_until = float("inf")
        elif credentials.username is not None:
            basic = f"{credentials.username}:{credentials.password or ''}".encode()
            self._header = f"Basic {base64.b64encode(basic).decode()}"
            self.valid_until = float("inf")
        else:
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


def _cluster_info(credentials: Credentials) -> dict[str, object]:
    """spec.cluster of the ExecCredential, for plugins that ask for it."""
    cluster: dict[str, object] = {
        "server": credentials.server,
        "insecure-skip-tls-verify": credentials.insecure_skip_tls_verify,
    }
    ca = credentials.ca
    if isinstance(ca, Path):
        ca = ca.read_bytes()
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    if credentials.tls_server_name:
        cluster["tls-server-name"] = credentials.tls_server_name
    return cluster
