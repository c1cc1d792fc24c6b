"""Credentials from a kubeconfig or, inside a pod, from its service account.

`load_credentials` is the one way gpupool reads a cluster's address and credentials:
the CLI, the operator (and kopf's login), the agent, the demo and the benchmarks.

Kubeconfigs are read by the `kubernetes` package's loader, which handles what users'
kubeconfigs hold: certificate authorities and client certificates as files or data,
tokens and tokenFile, username/password, exec credential plugins (tokens or client
certificates; their prompts reach the terminal), auth-provider (oidc, gcp),
`proxy-url`, and $HTTPS_PROXY/$NO_PROXY. gpupool adds what that loader leaves out:
impersonation (`as`, `as-uid`, `as-groups`, `as-user-extra`) and kubectl's merge rule
for current-context (the first file of $KUBECONFIG that sets it wins).

In a pod, with no kubeconfig or context named, the service account is read here
without that package: importing it costs about 20 MB of memory, which the agent on
every GPU node and the operator do not pay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gpupool.k8s.credentials import Credentials
from gpupool.k8s.errors import CredentialsError

SERVICE_ACCOUNT = Path("var/run/secrets/kubernetes.io/serviceaccount")


def load_credentials(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    root: Path = Path("/"),
) -> Credentials:
    """The pod's service account when in a pod and no kubeconfig or context is named,
    else the kubeconfig (`kubeconfig`, else $KUBECONFIG, else ~/.kube/config).

    Raises CredentialsError naming the file and what is wrong with it."""
    if kubeconfig is None and context is None:
        in_cluster = in_cluster_credentials(environ=environ, root=root)
        if in_cluster is not None:
            return in_cluster
    return load_kubeconfig(kubeconfig_paths(kubeconfig, environ), context)


def leave_out_the_kubernetes_package(
    kubeconfig: str | None, *, environ: Mapping[str, str] = os.environ, root: Path = Path("/")
) -> bool:
    """In a pod, with no kubeconfig named, keep the kubernetes package out of this process
    (the operator's: `gpupool operator` calls this before kopf is imported).

    The process then authenticates with its service account, read here, and needs the
    package for nothing; but kopf imports it whenever it is installed (to recognise its
    model objects and to offer a login gpupool replaces): 10 MB of resident memory, 74
    instead of 64 MB at start-up. Says whether it did.
    """
    if kubeconfig or environ.get("KUBECONFIG") or "kopf" in sys.modules:
        return False
    if "kubernetes" in sys.modules or in_cluster_credentials(environ=environ, root=root) is None:
        return False
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # `import` raises ImportError
    return True


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


def load_kubeconfig(paths: list[Path], context: str | None = None) -> Credentials:
    """The credentials of `context` (default: current-context) in the merged files.

    Authenticates as the kubeconfig says: runs its exec plugin, refreshes its
    auth-provider token (written back to the file, as kubectl does)."""
    kubeconfig = _Kubeconfig.read(paths, context)
    return kubeconfig.credentials()


def kubeconfig_namespace(paths: list[Path], context: str | None = None) -> str | None:
    """The namespace of the (current) context, without authenticating."""
    return _Kubeconfig.read(paths, context).namespace


@dataclass
class _Kubeconfig:
    """One context of merged kubeconfig files, as the kubernetes package reads it."""

    paths: list[Path]
    context: str
    loader: Any  # kubernetes.config.kube_config.KubeConfigLoader
    user: Mapping[str, Any]
    where: str
    namespace: str | None = None
    errors: list[str] = field(default_factory=list)
    user_file: Path | None = None  # the file that defines the user

    @classmethod
    def read(cls, paths: list[Path], context: str | None) -> _Kubeconfig:
        import yaml
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

        files = os.pathsep.join(str(p) for p in paths)
        where = f"kubeconfig {files}"
        # kubectl skips missing entries of a list, not a file named on its own.
        existing = [p for p in paths if p.is_file()] if len(paths) > 1 else paths
        if not existing or not existing[0].is_file():
            raise CredentialsError(f"kubeconfig: none of {files} exists")
        try:
            try:
                merger = KubeConfigMerger(os.pathsep.join(str(p) for p in existing))  # type: ignore[no-untyped-call]
            except (TypeError, AttributeError) as error:
                raise CredentialsError(
                    f"{where}: not a kubeconfig (a mapping at the top)"
                ) from error
            raw = [merger.config_files[p] for p in merger.paths]
            # kubectl: the first file that sets current-context wins (the package: the last).
            name = context or next(
                (str(d["current-context"]) for d in raw if d.get("current-context")), None
            )
            if not name:
                raise CredentialsError(f"{where}: no current-context, and none named")
            if merger.config["contexts"].get_with_name(name, safe=True) is None:
                raise CredentialsError(f"{where}: no context named {name!r}")
            loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
                config_dict=merger.config,
                active_context=name,
                config_base_path=None,
                config_persister=merger.save_changes,
            )
        except OSError as error:
            raise CredentialsError(f"{where}: {error.strerror or error}") from error
        except yaml.YAMLError as error:
            raise CredentialsError(f"{where}: not YAML: {error}") from error
        except ConfigException as error:
            raise CredentialsError(f"{where}: {error}") from error
        selected = loader.current_context["context"]
        where = f"kubeconfig {files} (context {name!r})"
        # The loader already refused a context whose cluster is not in clusters.
        cluster = merger.config["clusters"].get_with_name(selected.get("cluster"))
        if not (cluster.value.get("cluster") or {}).get("server"):
            raise CredentialsError(f"{where}: cluster {selected.get('cluster')!r} has no 'server'")
        user: Mapping[str, Any] = {}
        user_file: Path | None = None
        if selected.get("user"):
            entry = merger.config["users"].get_with_name(selected["user"], safe=True)
            if entry is None:
                raise CredentialsError(f"{where}: names user {selected['user']!r}, not in users")
            user = entry.value.get("user") or {}
            user_file = Path(entry.path) if entry.path else None
        kubeconfig = cls(existing, name, loader, user, where, selected.get("namespace") or None)
        kubeconfig.user_file = user_file
        return kubeconfig

    def credentials(self) -> Credentials:
        from kubernetes.client import Configuration
        from kubernetes.client.rest import is_socks_proxy_url, should_bypass_proxies
        from kubernetes.config.config_exception import ConfigException

        configuration = Configuration()  # reads $HTTPS_PROXY, $HTTP_PROXY, $NO_PROXY
        try:
            prompts = (self.user.get("exec") or {}).get("interactiveMode") != "Never"
            with _plugin_terminal(prompts), _logged_errors(self.errors):
                self.loader.load_and_set(configuration)
        except ConfigException as error:
            raise CredentialsError(f"{self.where}: {error}") from error
        except OSError as error:
            raise CredentialsError(
                f"{self.where}: {error.filename or ''}: {error.strerror or error}"
            ) from error
        except Exception as error:  # the package's auth-providers fail in many ways
            raise CredentialsError(f"{self.where}: {type(error).__name__}: {error}") from error
        header = configuration.api_key.get("BearerToken")
        if header is None and not configuration.cert_file:
            self._refuse_silent_failure()
        if bool(configuration.cert_file) != bool(configuration.key_file):
            missing = "client-key" if configuration.cert_file else "client-certificate"
            raise CredentialsError(f"{self.where}: missing {missing!r} (or {missing}-data)")
        proxy = configuration.proxy
        if proxy and should_bypass_proxies(configuration.host, configuration.no_proxy or ""):
            proxy = None
        if proxy and is_socks_proxy_url(proxy):  # type: ignore[no-untyped-call]
            raise CredentialsError(f"{self.where}: socks proxies ({proxy}) are not supported")
        expiry = getattr(self.loader, "expiry", None)
        token_file = self._token_file()
        return Credentials(
            server=configuration.host,
            ca=Path(configuration.ssl_ca_cert) if configuration.ssl_ca_cert else None,
            client_certificate=Path(configuration.cert_file) if configuration.cert_file else None,
            client_key=Path(configuration.key_file) if configuration.key_file else None,
            insecure_skip_tls_verify=not configuration.verify_ssl,
            tls_server_name=configuration.tls_server_name,
            token_file=token_file,
            authorization=None if token_file else header,
            authorization_expires=expiry.timestamp() if isinstance(expiry, datetime) else None,
            reauthorize=None if token_file else self._reauthorize,
            proxy=proxy,
            impersonation=impersonation_headers(self.user, self.where),
            exec_command=_exec_command(self.user),
            auth_provider=_auth_provider(self.user),
            namespace=self.namespace,
            source=self.where,
        )

    def _token_file(self) -> Path | None:
        """A user's tokenFile, re-read as client-go does (the package reads it once)."""
        value = self.user.get("tokenFile")
        if not value or self.user.get("token") or self.user_file is None:
            return None
        return self.user_file.parent / Path(str(value)).expanduser()

    def _reauthorize(self) -> tuple[str | None, float | None]:
        """A new Authorization header: the files read again, the exec plugin run again."""
        fresh = load_kubeconfig(self.paths, self.context)
        return fresh.authorization, fresh.authorization_expires

    def _refuse_silent_failure(self) -> None:
        """The package logs a failing exec plugin and goes on without credentials."""
        if self.user.get("exec"):
            detail = self.errors[-1] if self.errors else "it issued no credentials"
            command = self.user["exec"].get("command")
            hint = self.user["exec"].get("installHint")
            raise CredentialsError(
                f"{self.where}: exec plugin {command!r}: {detail}"
                + (f" ({str(hint).strip()})" if hint else "")
            )
        provider = self.user.get("auth-provider")
        if provider:
            name = provider.get("name") if isinstance(provider, dict) else provider
            raise CredentialsError(
                f"{self.where}: auth-provider {name!r} issued no token "
                "(the kubernetes package supports oidc and gcp)"
            )


def _exec_command(user: Mapping[str, Any]) -> str | None:
    plugin = user.get("exec")
    return str(plugin["command"]) if isinstance(plugin, dict) and plugin.get("command") else None


def _auth_provider(user: Mapping[str, Any]) -> str | None:
    provider = user.get("auth-provider")
    if isinstance(provider, dict):
        return str(provider.get("name") or "") or None
    return None


def impersonation_headers(user: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """kubectl's --as flags from a kubeconfig user, as the API server's headers."""
    headers: list[tuple[str, str]] = []
    if user.get("as"):
        headers.append(("Impersonate-User", str(user["as"])))
    if user.get("as-uid"):
        headers.append(("Impersonate-Uid", str(user["as-uid"])))
    for group in user.get("as-groups") or ():
        headers.append(("Impersonate-Group", str(group)))
    extra = user.get("as-user-extra") or {}
    if not isinstance(extra, dict):
        raise CredentialsError(f"{where}: 'as-user-extra' is not a mapping")
    for key, values in extra.items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((f"Impersonate-Extra-{key}", str(value)))
    if headers and not user.get("as"):
        raise CredentialsError(f"{where}: impersonation needs 'as' (the user to act as)")
    return tuple(headers)


@contextlib.contextmanager
def _plugin_terminal(prompts: bool) -> Iterator[None]:
    """Let exec plugins prompt whenever gpupool runs in a terminal (unless the plugin's
    interactiveMode is Never).

    The package lets a plugin use the terminal (stdin, stderr) only when sys.stdout is
    one; kubectl asks whether stdin is, so `gpupool status | less` still prompts there.
    The plugin's stdout is a pipe either way: only its credential is read from it.
    """
    if not prompts or _tty(sys.stdout) or not (_tty(sys.stdin) and _tty(sys.stderr)):
        yield
        return
    original = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = original


def _tty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _logged_errors(into: list[str]) -> Iterator[None]:
    """Collect what the package logs as errors (it logs a failing exec plugin)."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            into.append(record.getMessage())

    handler = Collect(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
