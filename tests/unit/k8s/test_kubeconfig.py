"""The credentials loader: kubeconfig files (data and file references, contexts,
KUBECONFIG lists, tokens, exec plugins) and the in-cluster service account."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from gpupool.k8s import (
    NODES,
    Credentials,
    CredentialsError,
    KubeClient,
    NotReachable,
    load_credentials,
)
from gpupool.k8s.credentials import TOKEN_FILE_PERIOD, Authorization
from gpupool.k8s.kubeconfig import kubeconfig_paths, load_kubeconfig
from gpupool.k8s.listing import context_namespace
from gpupool.webhook.certs import ServingCertificate, self_signed

NO_POD: dict[str, str] = {}
EXEC_V1 = "client.authentication.k8s.io/v1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(
    *,
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]] | None = None,
    contexts: dict[str, dict[str, Any]],
    current: str | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current:
        document["current-context"] = current
    return document


def write(path: Path, document: dict[str, Any]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


def one_context(cluster: dict[str, Any], user: dict[str, Any], **context: Any) -> dict[str, Any]:
    return kubeconfig(
        clusters={"c": cluster},
        users={"u": user},
        contexts={"ctx": {"cluster": "c", "user": "u", **context}},
        current="ctx",
    )


@pytest.fixture(scope="module")
def server_cert() -> ServingCertificate:
    return self_signed(["127.0.0.1"])


@pytest.fixture(scope="module")
def client_cert() -> ServingCertificate:
    return self_signed(["gpupool-agent"])


# --- kubeconfig files ----------------------------------------------------------------------


def test_data_fields_are_decoded(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        one_context(
            {"server": "https://10.0.0.1:6443", "certificate-authority-data": b64(b"CA")},
            {
                "client-certificate-data": b64(b"CERT"),
                "client-key-data": b64(b"KEY"),
                "token": "abc",
            },
            namespace="team-a",
        ),
    )
    credentials = load_credentials(path, environ=NO_POD)
    assert credentials.server == "https://10.0.0.1:6443"
    # The kubernetes package writes data fields to private files.
    files = (credentials.ca, credentials.client_certificate, credentials.client_key)
    assert [Path(str(f)).read_bytes() for f in files] == [b"CA", b"CERT", b"KEY"]
    assert credentials.authorization == "Bearer abc"
    assert credentials.namespace == "team-a"
    assert "ctx" in credentials.source


def test_file_references_are_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    pki = tmp_path / "conf" / "pki"
    pki.mkdir(parents=True)
    for name in ("ca.crt", "admin.crt", "admin.key", "token"):
        (pki / name).write_text("x")
    path = write(
        tmp_path / "conf" / "kubeconfig.yaml",
        one_context(
            {"server": "https://h:1", "certificate-authority": "pki/ca.crt"},
            {
                "client-certificate": "pki/admin.crt",
                "client-key": str(pki / "admin.key"),
                "tokenFile": "pki/token",
            },
        ),
    )
    credentials = load_credentials(path, environ=NO_POD)
    assert credentials.ca == pki / "ca.crt"
    assert credentials.client_certificate == pki / "admin.crt"
    assert credentials.client_key == pki / "admin.key"
    # Re-read every minute, as client-go does, not read once.
    assert credentials.token_file == pki / "token"
    assert credentials.authorization is None


def test_data_wins_over_a_file_reference(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        one_context(
            {
                "server": "https://h:1",
                "certificate-authority": "missing.crt",
                "certificate-authority-data": b64(b"CA"),
            },
            {},
        ),
    )
    assert Path(str(load_credentials(path, environ=NO_POD).ca)).read_bytes() == b"CA"


def test_a_named_context_replaces_the_current_one(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig(
            clusters={"prod": {"server": "https://prod:443"}, "dev": {"server": "http://dev:80"}},
            users={"alice": {"token": "a"}, "bob": {"token": "b"}},
            contexts={
                "prod": {"cluster": "prod", "user": "alice"},
                "dev": {"cluster": "dev", "user": "bob", "namespace": "sandbox"},
            },
            current="prod",
        ),
    )
    assert load_credentials(path, environ=NO_POD).authorization == "Bearer a"
    dev = load_credentials(path, "dev", environ=NO_POD)
    assert (dev.server, dev.authorization, dev.namespace) == (
        "http://dev:80",
        "Bearer b",
        "sandbox",
    )
    assert context_namespace(path, "dev") == "sandbox"
    assert context_namespace(path, None) == "default"
    assert context_namespace(str(tmp_path / "absent"), None) == "default"


def test_kubeconfig_env_lists_files_merged_first_one_wins(tmp_path: Path) -> None:
    first = write(
        tmp_path / "a" / "config",
        kubeconfig(
            clusters={"c": {"server": "https://first:1"}},
            users={"u": {"token": "first"}},
            contexts={"ctx": {"cluster": "c", "user": "u"}},
            current="ctx",
        ),
    )
    second = write(
        tmp_path / "b" / "config",
        kubeconfig(
            clusters={"c": {"server": "https://second:1"}, "other": {"server": "https://o:1"}},
            users={"u": {"token": "second"}},
            contexts={"ctx": {"cluster": "other", "user": "u"}, "x": {"cluster": "c"}},
            current="x",
        ),
    )
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"}
    credentials = load_credentials(environ=environ)
    # current-context from the first file that sets it (kubectl's rule); the context,
    # cluster and user from the first file that names them.
    assert (credentials.server, credentials.authorization) == ("https://first:1", "Bearer first")
    anonymous = load_credentials(context="x", environ=environ)
    assert (anonymous.server, anonymous.authorization) == ("https://first:1", None)


def test_the_default_kubeconfig_is_in_home(tmp_path: Path) -> None:
    assert kubeconfig_paths(None, {"HOME": str(tmp_path)}) == [tmp_path / ".kube" / "config"]
    assert kubeconfig_paths("/x/config", {"KUBECONFIG": "/y"}) == [Path("/x/config")]


def test_username_and_password_are_basic_auth(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        one_context({"server": "https://h:1"}, {"username": "admin", "password": "secret"}),
    )
    credentials = load_credentials(path, environ=NO_POD)
    assert credentials.authorization == f"Basic {b64(b'admin:secret')}"


def test_an_oidc_auth_provider_token_is_used(tmp_path: Path) -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 4_102_444_800}).encode()).decode()
    token = f"eyJhbGciOiJub25lIn0.{claims.rstrip('=')}.c2ln"
    path = write(
        tmp_path / "config",
        one_context(
            {"server": "https://h:1"},
            {"auth-provider": {"name": "oidc", "config": {"id-token": token}}},
        ),
    )
    credentials = load_credentials(path, environ=NO_POD)
    assert (credentials.authorization, credentials.auth_provider) == (f"Bearer {token}", "oidc")


# --- proxies and impersonation -------------------------------------------------------------


def test_proxy_url_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    path = write(
        tmp_path / "config",
        one_context({"server": "https://h:1", "proxy-url": "http://proxy:3128"}, {}),
    )
    assert load_credentials(path, environ=NO_POD).proxy == "http://proxy:3128"


def test_https_proxy_and_no_proxy_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://corp-proxy:8080")
    monkeypatch.setenv("NO_PROXY", ".internal,10.0.0.0/8")
    outside = write(tmp_path / "a", one_context({"server": "https://api.example.com:6443"}, {}))
    assert load_credentials(outside, environ=NO_POD).proxy == "http://corp-proxy:8080"
    for server in ("https://api.internal:6443", "https://10.1.2.3:6443"):
        inside = write(tmp_path / "b", one_context({"server": server}, {}))
        assert load_credentials(inside, environ=NO_POD).proxy is None, server


def test_socks_proxies_are_refused_by_name(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        one_context({"server": "https://h:1", "proxy-url": "socks5://proxy:1080"}, {}),
    )
    with pytest.raises(CredentialsError, match="socks proxies"):
        load_credentials(path, environ=NO_POD)


def test_impersonation_becomes_headers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        one_context(
            {"server": "https://h:1"},
            {
                "token": "t",
                "as": "jane",
                "as-uid": "42",
                "as-groups": ["ml", "viewers"],
                "as-user-extra": {"scopes": ["a", "b"]},
            },
        ),
    )
    assert load_credentials(path, environ=NO_POD).impersonation == (
        ("Impersonate-User", "jane"),
        ("Impersonate-Uid", "42"),
        ("Impersonate-Group", "ml"),
        ("Impersonate-Group", "viewers"),
        ("Impersonate-Extra-scopes", "a"),
        ("Impersonate-Extra-scopes", "b"),
    )


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            kubeconfig(clusters={"c": {"server": "https://h"}}, contexts={"ctx": {"cluster": "c"}}),
            "no current-context",
        ),
        (
            kubeconfig(clusters={}, contexts={}, current="gone"),
            "no context named 'gone'",
        ),
        (
            kubeconfig(clusters={}, contexts={"ctx": {"cluster": "c"}}, current="ctx"),
            "Expected object with name c",
        ),
        (
            kubeconfig(clusters={"c": {}}, contexts={"ctx": {"cluster": "c"}}, current="ctx"),
            "cluster 'c' has no 'server'",
        ),
        (
            kubeconfig(
                clusters={"c": {"server": "https://h"}},
                contexts={"ctx": {"cluster": "c", "user": "nobody"}},
                current="ctx",
            ),
            "names user 'nobody', not in users",
        ),
        (
            one_context({"server": "https://h"}, {"client-certificate-data": b64(b"C")}),
            "missing 'client-key' (or client-key-data)",
        ),
        (
            one_context({"server": "https://h"}, {"client-key-data": b64(b"K")}),
            "missing 'client-certificate'",
        ),
        (
            one_context({"server": "https://h", "certificate-authority": "nope.crt"}, {}),
            "File does not exist",
        ),
        (
            one_context({"server": "https://h"}, {"tokenFile": "no-token"}),
            "no-token",
        ),
        (
            one_context({"server": "https://h"}, {"auth-provider": {"name": "azure"}}),
            "auth-provider 'azure' issued no token",
        ),
        (
            one_context({"server": "https://h"}, {"as-groups": ["ml"]}),
            "impersonation needs 'as'",
        ),
    ],
)
def test_errors_name_what_is_missing(
    tmp_path: Path, document: dict[str, Any], message: str
) -> None:
    path = write(tmp_path / "config", document)
    with pytest.raises(CredentialsError, match="kubeconfig") as caught:
        load_credentials(path, environ=NO_POD)
    assert message in str(caught.value)


def test_unreadable_kubeconfigs_are_errors(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="none of"):
        load_credentials(str(tmp_path / "absent"), environ=NO_POD)
    with pytest.raises(CredentialsError, match="none of"):
        load_credentials(environ={"KUBECONFIG": f"{tmp_path / 'a'}:{tmp_path / 'b'}"})
    (tmp_path / "list").write_text("- 1\n")
    with pytest.raises(CredentialsError, match="not a kubeconfig"):
        load_kubeconfig([tmp_path / "list"])
    (tmp_path / "bad").write_text("a: [\n")
    with pytest.raises(CredentialsError, match="not YAML"):
        load_kubeconfig([tmp_path / "bad"])


# --- in-cluster ----------------------------------------------------------------------------

POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def service_account(root: Path, *, ca: bool = True) -> Path:
    account = root / "var/run/secrets/kubernetes.io/serviceaccount"
    account.mkdir(parents=True)
    (account / "token").write_text("token-1\n")
    (account / "namespace").write_text("gpupool-system")
    if ca:
        (account / "ca.crt").write_text("CA")
    return account


def test_in_cluster_uses_the_service_account(tmp_path: Path) -> None:
    account = service_account(tmp_path)
    credentials = load_credentials(environ=POD_ENV, root=tmp_path)
    assert credentials.server == "https://10.96.0.1:443"
    assert credentials.ca == account / "ca.crt"
    assert credentials.token_file == account / "token"
    assert credentials.namespace == "gpupool-system"
    assert credentials.source == "in-cluster"


def test_in_cluster_brackets_ipv6(tmp_path: Path) -> None:
    service_account(tmp_path)
    environ = {**POD_ENV, "KUBERNETES_SERVICE_HOST": "fd00::1"}
    assert load_credentials(environ=environ, root=tmp_path).server == "https://[fd00::1]:443"


def test_a_named_kubeconfig_or_context_wins_over_the_pod(tmp_path: Path) -> None:
    service_account(tmp_path)
    path = write(tmp_path / "config", one_context({"server": "http://h:1"}, {}))
    assert load_credentials(path, environ=POD_ENV, root=tmp_path).server == "http://h:1"
    environ = {**POD_ENV, "KUBECONFIG": path}
    assert load_credentials(context="ctx", environ=environ, root=tmp_path).server == "http://h:1"


def test_outside_a_pod_the_kubeconfig_is_used(tmp_path: Path) -> None:
    path = write(tmp_path / "config", one_context({"server": "http://h:1"}, {}))
    environ = {"KUBECONFIG": path}
    assert load_credentials(environ=environ, root=tmp_path).server == "http://h:1"
    # The service env without a mounted token (automountServiceAccountToken: false).
    assert load_credentials(environ={**POD_ENV, **environ}, root=tmp_path).server == "http://h:1"


def test_in_cluster_without_the_ca_is_an_error(tmp_path: Path) -> None:
    service_account(tmp_path, ca=False)
    with pytest.raises(CredentialsError, match=r"in-cluster: .*ca\.crt is missing"):
        load_credentials(environ=POD_ENV, root=tmp_path)


# --- the Authorization header --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_token_files_are_reread_as_bound_tokens_rotate(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    clock = Clock()
    authorization = Authorization(Credentials(server="https://h", token_file=token), clock)
    assert await authorization.header() == "Bearer one"
    token.write_text("two\n")
    clock.now += TOKEN_FILE_PERIOD - 1
    assert await authorization.header() == "Bearer one"
    clock.now += 2
    assert await authorization.header() == "Bearer two"
    # A failed read keeps the last token (the kubelet swaps the file atomically).
    token.unlink()
    clock.now += TOKEN_FILE_PERIOD + 1
    assert await authorization.header() == "Bearer two"


async def test_an_unreadable_token_file_is_an_error_at_first(tmp_path: Path) -> None:
    authorization = Authorization(Credentials(server="https://h", token_file=tmp_path / "none"))
    with pytest.raises(CredentialsError, match="token file"):
        await authorization.header()


async def test_static_tokens_ready_headers_and_none() -> None:
    assert await Authorization(Credentials(server="h", token="t")).header() == "Bearer t"
    basic = Credentials(server="h", authorization="Basic YTpi")
    assert await Authorization(basic).header() == "Basic YTpi"
    assert await Authorization(Credentials(server="h")).header() is None


def plugin_script(tmp_path: Path, credential: dict[str, Any] | str, *, prompt: str = "") -> Path:
    """An exec plugin that records its environment, writes `prompt` to stderr and prints
    `credential`."""
    printed = credential if isinstance(credential, str) else json.dumps(credential)
    script = tmp_path / "bin" / "plugin"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib, sys\n"
        "calls = pathlib.Path(__file__).with_name('calls')\n"
        "with calls.open('a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'info': os.environ['KUBERNETES_EXEC_INFO'],"
        " 'team': os.environ.get('TEAM')}) + '\\n')\n"
        f"sys.stderr.write({prompt!r})\n"
        f"print({printed!r})\n"
    )
    script.chmod(0o755)
    return script


def exec_kubeconfig(tmp_path: Path, **exec_fields: Any) -> str:
    return write(
        tmp_path / "config",
        one_context(
            {"server": "https://h:1", "certificate-authority-data": b64(b"CA")},
            {
                "exec": {
                    "command": str(tmp_path / "bin" / "plugin"),
                    "apiVersion": EXEC_V1,
                    "args": ["get-token", "--cluster", "gpu"],
                    "env": [{"name": "TEAM", "value": "ml"}],
                    "interactiveMode": "IfAvailable",
                    **exec_fields,
                }
            },
        ),
    )


def exec_credential(token: str, expiry: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"token": token}
    if expiry:
        status["expirationTimestamp"] = expiry
    return {"apiVersion": EXEC_V1, "kind": "ExecCredential", "status": status}


def plugin_calls(script: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (script.parent / "calls").read_text().splitlines()]


async def test_exec_plugins_issue_tokens_until_they_expire(tmp_path: Path) -> None:
    script = plugin_script(tmp_path, exec_credential("issued", "2030-01-01T00:00:00Z"))
    credentials = load_credentials(
        exec_kubeconfig(tmp_path, provideClusterInfo=True), environ=NO_POD
    )
    assert credentials.exec_command == str(script)
    clock = Clock()
    authorization = Authorization(credentials, clock)
    assert await authorization.header() == "Bearer issued"
    assert await authorization.header() == "Bearer issued"
    calls = plugin_calls(script)
    assert len(calls) == 1
    assert calls[0]["argv"] == ["get-token", "--cluster", "gpu"]
    assert calls[0]["team"] == "ml"
    info = json.loads(calls[0]["info"])
    assert info["kind"] == "ExecCredential"
    assert info["spec"]["cluster"]["server"] == "https://h:1"
    clock.now = 1_893_456_000.0  # 2030-01-01: expired, so the plugin runs again
    assert await authorization.header() == "Bearer issued"
    assert len(plugin_calls(script)) == 2


async def test_concurrent_calls_run_the_plugin_once(tmp_path: Path) -> None:
    script = plugin_script(tmp_path, exec_credential("t"))
    authorization = Authorization(load_credentials(exec_kubeconfig(tmp_path), environ=NO_POD))
    authorization.forget()
    headers = await asyncio.gather(*(authorization.header() for _ in range(5)))
    assert headers == ["Bearer t"] * 5
    assert len(plugin_calls(script)) == 2  # loading, then one refresh for all five


async def test_a_refused_token_is_fetched_again(tmp_path: Path) -> None:
    script = plugin_script(tmp_path, exec_credential("t"))
    authorization = Authorization(load_credentials(exec_kubeconfig(tmp_path), environ=NO_POD))
    await authorization.header()
    authorization.forget()
    await authorization.header()
    assert len(plugin_calls(script)) == 2


def test_an_exec_plugin_may_answer_with_a_client_certificate(
    tmp_path: Path, client_cert: ServingCertificate
) -> None:
    status = {
        "clientCertificateData": client_cert.cert_pem.decode(),
        "clientKeyData": client_cert.key_pem.decode(),
    }
    plugin_script(tmp_path, {"apiVersion": EXEC_V1, "kind": "ExecCredential", "status": status})
    credentials = load_credentials(exec_kubeconfig(tmp_path), environ=NO_POD)
    assert credentials.authorization is None
    assert Path(str(credentials.client_certificate)).read_bytes() == client_cert.cert_pem
    assert Path(str(credentials.client_key)).read_bytes() == client_cert.key_pem


def test_exec_plugin_failures_are_clear(tmp_path: Path) -> None:
    config = exec_kubeconfig(tmp_path, installHint="install it with: brew install plugin")
    with pytest.raises(CredentialsError, match=r"exec plugin .*brew install plugin"):
        load_credentials(config, environ=NO_POD)
    plugin_script(tmp_path, "not json")
    with pytest.raises(CredentialsError, match="failed to decode process output"):
        load_credentials(config, environ=NO_POD)


class Terminal:
    """A stream that says it is a terminal (the pty a user's shell would give)."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self.file.fileno())

    def write(self, text: str) -> int:
        return int(self.file.write(text))

    def flush(self) -> None:
        self.file.flush()


def test_exec_plugin_prompts_reach_the_terminal_when_stdout_is_piped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gpupool status | less` in a terminal: the plugin may prompt on stderr (and read
    stdin), as with kubectl; its credential still comes through its stdout."""
    script = plugin_script(tmp_path, exec_credential("t"), prompt="Enter your OTP: ")
    config = exec_kubeconfig(tmp_path)
    with (tmp_path / "tty").open("w+") as tty, (tmp_path / "piped").open("w") as piped:
        monkeypatch.setattr(sys, "stdin", Terminal(tty))
        monkeypatch.setattr(sys, "stderr", Terminal(tty))
        monkeypatch.setattr(sys, "stdout", piped)
        credentials = load_credentials(config, environ=NO_POD)
        assert sys.stdout is piped
    assert credentials.authorization == "Bearer t"
    assert (tmp_path / "tty").read_text() == "Enter your OTP: "
    assert (tmp_path / "piped").read_text() == ""
    assert json.loads(plugin_calls(script)[0]["info"])["spec"]["interactive"] is True


def test_a_plugin_that_never_prompts_is_not_given_the_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = plugin_script(tmp_path, exec_credential("t"))
    config = exec_kubeconfig(tmp_path, interactiveMode="Never")
    with (tmp_path / "tty").open("w+") as tty, (tmp_path / "piped").open("w") as piped:
        monkeypatch.setattr(sys, "stdin", Terminal(tty))
        monkeypatch.setattr(sys, "stderr", Terminal(tty))
        monkeypatch.setattr(sys, "stdout", piped)
        load_credentials(config, environ=NO_POD)
    assert json.loads(plugin_calls(script)[0]["info"])["spec"]["interactive"] is False


def test_without_a_terminal_exec_plugins_are_not_interactive(tmp_path: Path) -> None:
    script = plugin_script(tmp_path, exec_credential("t"))
    load_credentials(exec_kubeconfig(tmp_path), environ=NO_POD)
    assert json.loads(plugin_calls(script)[0]["info"])["spec"]["interactive"] is False


# --- TLS, end to end -----------------------------------------------------------------------


@pytest.fixture
def tls_server(
    server_cert: ServingCertificate, client_cert: ServingCertificate, tmp_path: Path
) -> Iterator[ssl.SSLContext]:
    """The TLS settings of an API server that asks for a client certificate."""
    cert, key = server_cert.write(tmp_path / "server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cadata=client_cert.cert_pem.decode())
    context.verify_mode = ssl.CERT_OPTIONAL
    yield context


async def test_the_client_authenticates_with_data_fields(
    tmp_path: Path,
    tls_server: ssl.SSLContext,
    server_cert: ServingCertificate,
    client_cert: ServingCertificate,
) -> None:
    seen: list[tuple[bool, str | None]] = []

    async def node(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append((bool(peer), request.headers.get("Authorization")))
        return web.json_response({"metadata": {"name": request.match_info["name"]}})

    app = web.Application()
    app.router.add_get("/api/v1/nodes/{name}", node)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_server)
    await site.start()
    port = runner.addresses[0][1]
    try:
        path = write(
            tmp_path / "config",
            one_context(
                {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": b64(server_cert.cert_pem),
                },
                {
                    "client-certificate-data": b64(client_cert.cert_pem),
                    "client-key-data": b64(client_cert.key_pem),
                    "token": "secret",
                },
            ),
        )
        async with KubeClient.from_kubeconfig(path) as client:
            assert (await client.get(NODES, "n1"))["metadata"]["name"] == "n1"
        assert seen == [(True, "Bearer secret")]
        # Without a CA the server's self-signed certificate is refused ...
        untrusted = Credentials(server=f"https://127.0.0.1:{port}")
        async with KubeClient(untrusted) as client:
            with pytest.raises(NotReachable, match="certificate is not trusted"):
                await client.request("GET", "/api/v1/nodes/n1", retry=False)
        # ... unless verification is off.
        insecure = Credentials(server=untrusted.server, insecure_skip_tls_verify=True)
        async with KubeClient(insecure.with_token("t")) as client:
            await client.get(NODES, "n2")
        assert seen[-1] == (False, "Bearer t")
    finally:
        await runner.cleanup()


async def test_the_client_impersonates_through_the_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server only reachable through a proxy (proxy-url), with `as` and two
    groups: every request goes to the proxy, with one Impersonate-Group per group."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    seen: list[tuple[str, str | None, list[str], str | None]] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(
            (
                str(request.url),
                request.headers.get("Impersonate-User"),
                request.headers.getall("Impersonate-Group", []),
                request.headers.get("Authorization"),
            )
        )
        return web.json_response({"metadata": {"name": "n1"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        path = write(
            tmp_path / "config",
            one_context(
                {
                    "server": "http://api.cluster.example:6443",
                    "proxy-url": f"http://127.0.0.1:{port}",
                },
                {"token": "t", "as": "jane", "as-groups": ["ml", "viewers"]},
            ),
        )
        async with KubeClient.from_kubeconfig(path) as client:
            assert (await client.get(NODES, "n1"))["metadata"]["name"] == "n1"
        assert seen == [
            (
                "http://api.cluster.example:6443/api/v1/nodes/n1",
                "jane",
                ["ml", "viewers"],
                "Bearer t",
            )
        ]
    finally:
        await runner.cleanup()


def _operator_imports(script: str) -> list[str]:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            script + "\nimport gpupool.controller.handlers\n"
            "print(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    modules: list[str] = json.loads(completed.stdout.splitlines()[-1])
    return modules


def test_in_a_pod_the_operator_runs_without_the_kubernetes_package(tmp_path: Path) -> None:
    """kopf imports the package whenever it can (10 MB); with the service account the
    operator needs none of it."""
    service_account(tmp_path)
    prelude = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from gpupool.k8s.kubeconfig import leave_out_the_kubernetes_package\n"
        f"environ = {POD_ENV!r}\n"
        f"root = Path({str(tmp_path)!r})\n"
    )
    left_out = _operator_imports(
        prelude + "assert leave_out_the_kubernetes_package(None, environ=environ, root=root)"
    )
    assert "kopf" in left_out and not [m for m in left_out if m.split(".")[0] == "kubernetes"]
    named = _operator_imports(
        prelude + "assert not leave_out_the_kubernetes_package('/k', environ=environ, root=root)"
    )
    assert "kubernetes" in named
