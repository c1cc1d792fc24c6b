"""Credentials from a kubeconfig or, inside a pod, from its service account.

What kubectl reads, minus what gpupool has no use for: the current (or a named)
context; its cluster's server, certificate authority (file or data),
insecure-skip-tls-verify and tls-server-name; its user's client certificate and key
(file or data) and one of token/tokenFile, username/password or an exec plugin
(`gpupool.k8s.execplugin`). KUBECONFIG may list several files, merged as kubectl
merges them: the first file to set current-context, or to name a cluster, user or
context, wins. Relative paths are relative to the file that holds them. Fields
gpupool does not support (auth-provider, proxy-url, impersonation) are refused with
an error naming them rather than ignored.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupool.k8s.credentials import Credentials, Pem
from gpupool.k8s.errors import CredentialsError
from gpupool.k8s.execplugin import API_VERSIONS, ExecPlugin

SERVICE_ACCOUNT = Path("var/run/secrets/kubernetes.io/serviceaccount")
UNSUPPORTED_CLUSTER_FIELDS = ("proxy-url",)
UNSUPPORTED_USER_FIELDS = ("auth-provider", "as", "as-uid", "as-groups", "as-user-extra")


def load_credentials(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    root: Path = Path("/"),
) -> Credentials:
    """The pod's service account when in a pod and no kubeconfig or context is named,
    else the kubeconfig (`kubeconfig`, else $KUBECONFIG, else ~/.kube/config)."""
    if kubeconfig is None and context is None:
        in_cluster = in_cluster_credentials(environ=environ, root=root)
        if in_cluster is not None:
            return in_cluster
    return load_kubeconfig(kubeconfig_paths(kubeconfig, environ), context)


def in_cluster_credentials(
    *, environ: Mapping[str, str] = os.environ, root: Path = Path("/")
) -> Credentials | None:
    """The service account's credentials, or None outside a pod (no service env or
    no mounted token). `root` stands for / (tests use a fake one)."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT")
    account = root / SERVICE_ACCOUNT
    token = account / "token"
    if not host or not port or not token.is_file():
        return None
    ca = account / "ca.crt"
    if not ca.is_file():
        raise CredentialsError(f"in-cluster: {ca} is missing (the service account's CA)")
    namespace_file = account / "namespace"
    namespace = (
        namespace_file.read_text(encoding="utf-8").strip() if namespace_file.is_file() else None
    )
    if ":" in host:
        host = f"[{host}]"
    return Credentials(
        server=f"https://{host}:{port}",
        ca=ca,
        token_file=token,
        namespace=namespace or None,
        source="in-cluster",
    )


def kubeconfig_paths(kubeconfig: str | None, environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The files to read, in order of precedence."""
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    listed = [Path(p).expanduser() for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return listed
    home = environ.get("HOME")
    return [(Path(home) if home else Path.home()) / ".kube" / "config"]


@dataclass(frozen=True)
class _Entry:
    """A named cluster, user or context, with the directory its relative paths use."""

    fields: Mapping[str, Any]
    directory: Path
    where: str


@dataclass
class _Merged:
    current_context: str | None
    clusters: dict[str, _Entry]
    users: dict[str, _Entry]
    contexts: dict[str, _Entry]
    files: str


def load_kubeconfig(paths: list[Path], context: str | None = None) -> Credentials:
    """The credentials of `context` (default: current-context) in the merged files."""
    merged = _merge(paths)
    name = context or merged.current_context
    if not name:
        raise CredentialsError(f"kubeconfig {merged.files}: no current-context, and none named")
    chosen = merged.contexts.get(name)
    if chosen is None:
        raise CredentialsError(f"kubeconfig {merged.files}: no context named {name!r}")
    cluster_name = _string(chosen, "cluster")
    if not cluster_name:
        raise CredentialsError(f"{chosen.where}: missing field 'cluster'")
    cluster = merged.clusters.get(cluster_name)
    if cluster is None:
        raise CredentialsError(f"{chosen.where}: names cluster {cluster_name!r}, not in clusters")
    user_name = _string(chosen, "user")
    user = None
    if user_name:
        user = merged.users.get(user_name)
        if user is None:
            raise CredentialsError(f"{chosen.where}: names user {user_name!r}, not in users")
    source = f"kubeconfig {merged.files} (context {name!r})"
    return _credentials(cluster, user, _string(chosen, "namespace"), source)


def _merge(paths: list[Path]) -> _Merged:
    merged = _Merged(None, {}, {}, {}, os.pathsep.join(str(p) for p in paths))
    found = False
    for path in paths:
        if len(paths) > 1 and not path.is_file():
            continue  # kubectl skips missing KUBECONFIG entries
        document = _read(path)
        found = True
        if merged.current_context is None and document.get("current-context"):
            merged.current_context = str(document["current-context"])
        for section, into in (
            ("clusters", merged.clusters),
            ("users", merged.users),
            ("contexts", merged.contexts),
        ):
            singular = section[:-1]
            for index, item in enumerate(document.get(section) or []):
                if not isinstance(item, dict) or not item.get("name"):
                    raise CredentialsError(f"kubeconfig {path}: {section}[{index}] has no name")
                fields = item.get(singular) or {}
                where = f"kubeconfig {path}: {singular} {item['name']!r}"
                if not isinstance(fields, dict):
                    raise CredentialsError(f"{where}: {singular!r} is not a mapping")
                into.setdefault(str(item["name"]), _Entry(fields, path.parent, where))
    if not found:
        raise CredentialsError(f"kubeconfig: none of {merged.files} exists")
    return merged


def _read(path: Path) -> dict[str, Any]:
    import yaml  # only kubeconfig users pay for it; in a pod the agent never loads it

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CredentialsError(f"kubeconfig {path}: {error.strerror or error}") from error
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise CredentialsError(f"kubeconfig {path}: not YAML: {error}") from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CredentialsError(f"kubeconfig {path}: not a kubeconfig (a mapping at the top)")
    return document


def _credentials(
    cluster: _Entry, user: _Entry | None, namespace: str | None, source: str
) -> Credentials:
    for unsupported in UNSUPPORTED_CLUSTER_FIELDS:
        if cluster.fields.get(unsupported):
            raise CredentialsError(f"{cluster.where}: {unsupported!r} is not supported by gpupool")
    server = _string(cluster, "server")
    if not server:
        raise CredentialsError(f"{cluster.where}: missing field 'server'")
    insecure = cluster.fields.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise CredentialsError(f"{cluster.where}: 'insecure-skip-tls-verify' is not a boolean")
    base = Credentials(
        server=server,
        ca=_pem(cluster, "certificate-authority"),
        insecure_skip_tls_verify=insecure,
        tls_server_name=_string(cluster, "tls-server-name"),
        namespace=namespace,
        source=source,
    )
    if user is None:
        return base
    return _with_user(base, user)


def _with_user(base: Credentials, user: _Entry) -> Credentials:
    for unsupported in UNSUPPORTED_USER_FIELDS:
        if user.fields.get(unsupported):
            raise CredentialsError(f"{user.where}: {unsupported!r} is not supported by gpupool")
    certificate = _pem(user, "client-certificate")
    key = _pem(user, "client-key")
    if (certificate is None) != (key is None):
        missing = "client-key" if key is None else "client-certificate"
        raise CredentialsError(f"{user.where}: missing field {missing!r} (or {missing}-data)")
    token = _string(user, "token")
    token_file = _path(user, "tokenFile")
    username = _string(user, "username")
    plugin = _exec_plugin(user)
    methods = [
        name
        for name, present in (
            ("token/tokenFile", token is not None or token_file is not None),
            ("username/password", username is not None),
            ("exec", plugin is not None),
        )
        if present
    ]
    if len(methods) > 1:
        raise CredentialsError(f"{user.where}: more than one way to authenticate: {methods}")
    if token_file is not None and not token_file.is_file():
        raise CredentialsError(f"{user.where}: tokenFile {token_file} does not exist")
    return dataclasses.replace(
        base,
        client_certificate=certificate,
        client_key=key,
        token=token,
        token_file=token_file,
        username=username,
        password=_string(user, "password"),
        exec_plugin=plugin,
    )


def _exec_plugin(user: _Entry) -> ExecPlugin | None:
    spec = user.fields.get("exec")
    if not spec:
        return None
    where = f"{user.where}: exec"
    if not isinstance(spec, dict):
        raise CredentialsError(f"{where} is not a mapping")
    exec_entry = _Entry(spec, user.directory, where)
    command = _string(exec_entry, "command")
    if not command:
        raise CredentialsError(f"{where}: missing field 'command'")
    if os.sep in command and not os.path.isabs(command):
        command = str(user.directory / command)
    api_version = _string(exec_entry, "apiVersion")
    if api_version not in API_VERSIONS:
        raise CredentialsError(
            f"{where}: apiVersion {api_version!r} is not one of {', '.join(API_VERSIONS)}"
        )
    if spec.get("interactiveMode") == "Always":
        raise CredentialsError(
            f"{where}: interactiveMode Always needs a terminal, which gpupool never has"
        )
    args = spec.get("args") or []
    env = spec.get("env") or []
    if not isinstance(args, list) or not isinstance(env, list):
        raise CredentialsError(f"{where}: 'args' and 'env' must be lists")
    try:
        variables = tuple((str(v["name"]), str(v["value"])) for v in env)
    except (KeyError, TypeError) as error:
        raise CredentialsError(f"{where}: every env entry needs a name and a value") from error
    return ExecPlugin(
        command=command,
        api_version=api_version,
        args=tuple(str(a) for a in args),
        env=variables,
        provide_cluster_info=bool(spec.get("provideClusterInfo", False)),
        install_hint=_string(exec_entry, "installHint"),
        source=user.where,
    )


def _string(entry: _Entry, field: str) -> str | None:
    value = entry.fields.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CredentialsError(f"{entry.where}: {field!r} is not a string")
    return value


def _path(entry: _Entry, field: str) -> Path | None:
    value = _string(entry, field)
    if value is None:
        return None
    return entry.directory / Path(value).expanduser()


def _pem(entry: _Entry, field: str) -> Pem | None:
    """`field`-data (base64, wins as in kubectl) or the file `field` names."""
    data = _string(entry, f"{field}-data")
    if data is not None:
        try:
            return base64.b64decode("".join(data.split()), validate=True)
        except binascii.Error as error:
            raise CredentialsError(f"{entry.where}: {field}-data is not base64") from error
    path = _path(entry, field)
    if path is not None and not path.is_file():
        raise CredentialsError(f"{entry.where}: {field} {path} does not exist")
    return path
