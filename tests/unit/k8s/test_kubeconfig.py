"""The credentials loader: kubeconfig files (data and file references, contexts,
KUBECONFIG lists, tokens, exec plugins) and the in-cluster service account."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
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
from gpupool.k8s.execplugin import parse_exec_credential
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


def test_data_fields_are_decoded(tmp_path: Path, server_cert: ServingCertificate) -> None:
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
    assert (credentials.ca, credentials.client_certificate, credentials.client_key) == (
        b"CA",
        b"CERT",
        b"KEY",
    )
    assert credentials.token == "abc"
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
    assert credentials.token_file == pki / "token"


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
    assert load_credentials(path, environ=NO_POD).ca == b"CA"


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
    assert load_credentials(path, environ=NO_POD).token == "a"
    dev = load_credentials(path, "dev", environ=NO_POD)
    assert (dev.server, dev.token, dev.namespace) == ("http://dev:80", "b", "sandbox")
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
        ),
    )
    second = write(
        tmp_path / "b" / "config",
        kubeconfig(
            clusters={"c": {"server": "https://second:1"}, "other": {"server": "https://o:1"}},
            users={"u": {"token": "second"}},
            contexts={"ctx": {"cluster": "other", "user": "u"}, "x": {"cluster": "c"}},
            current="ctx",
        ),
    )
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"}
    credentials = load_credentials(environ=environ)
    # current-context from the second file; the context, cluster and user from the first.
    assert (credentials.server, credentials.token) == ("https://first:1", "first")
    anonymous = load_credentials(context="x", environ=environ)
    assert (anonymous.server, anonymous.token) == ("https://first:1", None)


def test_the_default_kubeconfig_is_in_home(tmp_path: Path) -> None:
    assert kubeconfig_paths(None, {"HOME": str(tmp_path)}) == [tmp_path / ".kube" / "config"]
    assert kubeconfig_paths("/x/config", {"KUBECONFIG": "/y"}) == [Path("/x/config")]


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
            "names cluster 'c', not in clusters",
        ),
        (
            kubeconfig(clusters={"c": {}}, contexts={"ctx": {"cluster": "c"}}, current="ctx"),
            "cluster 'c': missing field 'server'",
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
            "user 'u': missing field 'client-key' (or client-key-data)",
        ),
        (
            one_context({"server": "https://h"}, {"client-key-data": b64(b"K")}),
            "missing field 'client-certificate'",
        ),
        (
            one_context({"server": "https://h", "certificate-authority": "nope.crt"}, {}),
            "certificate-authority",
        ),
        (
            one_context({"server": "https://h", "certificate-authority-data": "!!"}, {}),
            "certificate-authority-data is not base64",
        ),
        (
            one_context({"server": "https://h"}, {"tokenFile": "no-token"}),
            "tokenFile",
        ),
        (
            one_context({"server": "https://h"}, {"token": "t", "username": "u"}),
            "more than one way to authenticate",
        ),
        (
            one_context({"server": "https://h"}, {"auth-provider": {"name": "gcp"}}),
            "'auth-provider' is not supported",
        ),
        (
            one_context({"server": "https://h", "proxy-url": "http://proxy:3128"}, {}),
            "'proxy-url' is not supported",
        ),
        (
            one_context({"server": "https://h"}, {"exec": {"apiVersion": EXEC_V1}}),
            "exec: missing field 'command'",
        ),
        (
            one_context(
                {"server": "https://h"},
                {"exec": {"command": "x", "apiVersion": "client.authentication.k8s.io/v1alpha1"}},
            ),
            "apiVersion 'client.authentication.k8s.io/v1alpha1' is not one of",
        ),
        (
            one_context(
                {"server": "https://h"},
                {"exec": {"command": "x", "apiVersion": EXEC_V1, "interactiveMode": "Always"}},
            ),
            "interactiveMode Always",
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
    with pytest.raises(CredentialsError, match="No such file"):
        load_credentials(str(tmp_path / "absent"), environ=NO_POD)
    with pytest.raises(CredentialsError, match="none of"):
        load_credentials(environ={"KUBECONFIG": f"{tmp_path / 'a'}:{tmp_path / 'b'}"})
    (tmp_path / "list").write_text("- 1\n")
    with pytest.raises(CredentialsError, match="a mapping at the top"):
        load_kubeconfig([tmp_path / "list"])


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


async def test_static_tokens_basic_auth_and_none() -> None:
    assert await Authorization(Credentials(server="h", token="t")).header() == "Bearer t"
    basic = Credentials(server="h", username="admin", password="secret")
    assert await Authorization(basic).header() == f"Basic {b64(b'admin:secret')}"
    assert await Authorization(Credentials(server="h")).header() is None


def plugin_script(tmp_path: Path, credential: dict[str, Any] | str) -> Path:
    """An exec plugin that records its environment and prints `credential`."""
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
                    "command": "bin/plugin",
                    "apiVersion": EXEC_V1,
                    "args": ["get-token", "--cluster", "gpu"],
                    "env": [{"name": "TEAM", "value": "ml"}],
                    "interactiveMode": "Never",
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


async def test_exec_plugins_issue_tokens_until_they_expire(tmp_path: Path) -> None:
    script = plugin_script(tmp_path, exec_credential("issued", "2030-01-01T00:00:00Z"))
    credentials = load_credentials(
        exec_kubeconfig(tmp_path, provideClusterInfo=True), environ=NO_POD
    )
    assert credentials.exec_plugin is not None
    assert credentials.exec_plugin.command == str(script)
    clock = Clock()
    authorization = Authorization(credentials, clock)
    assert await authorization.header() == "Bearer issued"
    assert await authorization.header() == "Bearer issued"
    calls = [json.loads(line) for line in (script.parent / "calls").read_text().splitlines()]
    assert len(calls) == 1
    assert calls[0]["argv"] == ["get-token", "--cluster", "gpu"]
    assert calls[0]["team"] == "ml"
    info = json.loads(calls[0]["info"])
    assert info["kind"] == "ExecCredential" and info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == "https://h:1"
    assert info["spec"]["cluster"]["certificate-authority-data"] == b64(b"CA")
    clock.now = 1_893_456_000.0  # 2030-01-01: expired, so the plugin runs again
    assert await authorization.header() == "Bearer issued"
    assert len((script.parent / "calls").read_text().splitlines()) == 2


async def test_concurrent_calls_run_the_plugin_once(tmp_path: Path) -> None:
    script = plugin_script(tmp_path, exec_credential("t"))
    authorization = Authorization(load_credentials(exec_kubeconfig(tmp_path), environ=NO_POD))
    headers = await asyncio.gather(*(authorization.header() for _ in range(5)))
    assert headers == ["Bearer t"] * 5
    assert len((script.parent / "calls").read_text().splitlines()) == 1


async def test_a_refused_token_is_fetched_again(tmp_path: Path) -> None:
    script = plugin_script(tmp_path, exec_credential("t"))
    authorization = Authorization(load_credentials(exec_kubeconfig(tmp_path), environ=NO_POD))
    await authorization.header()
    authorization.forget()
    await authorization.header()
    assert len((script.parent / "calls").read_text().splitlines()) == 2


async def test_exec_plugin_failures_are_clear(tmp_path: Path) -> None:
    missing = load_credentials(
        exec_kubeconfig(tmp_path, installHint="install it with: brew install plugin"),
        environ=NO_POD,
    )
    with pytest.raises(CredentialsError, match=r"cannot run it.*brew install plugin"):
        await Authorization(missing).header()
    plugin_script(tmp_path, "not json")
    with pytest.raises(CredentialsError, match="printed no ExecCredential JSON"):
        await Authorization(missing).header()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"kind": "Other"}, "other than an ExecCredential"),
        (
            {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential"},
            "answered with apiVersion",
        ),
        (
            {
                "apiVersion": EXEC_V1,
                "kind": "ExecCredential",
                "status": {"clientCertificateData": "C", "clientKeyData": "K"},
            },
            "accepts only tokens",
        ),
        ({"apiVersion": EXEC_V1, "kind": "ExecCredential", "status": {}}, "no status.token"),
        (exec_credential("t", "tomorrow"), "bad status.expirationTimestamp"),
    ],
)
def test_exec_credentials_are_checked(answer: dict[str, Any], message: str) -> None:
    with pytest.raises(CredentialsError, match=message):
        parse_exec_credential(json.dumps(answer).encode(), EXEC_V1, "plugin")


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
