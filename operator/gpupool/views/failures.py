"""Failures in words a person can act on: which server, which context, what was refused,
which role grants it, what to type next. Pure: errors in, `CliError`s out.

Role names are the Helm chart's for a release named `gpupool` (`<release>-...`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from gpupool.k8s import (
    GPUJOBS,
    ApiError,
    Credentials,
    CredentialsError,
    NotReachable,
    Refusal,
    Resource,
    TLSFailure,
)


class CliError(Exception):
    """A failure the user can act on; the message says how."""


RELEASE = "gpupool"
CLUSTER_VIEWER = f"{RELEASE}-cluster-viewer"
_CLUSTER_VIEWER_HINT = (
    f"the ClusterRole {CLUSTER_VIEWER} grants reading everything gpupool reads, "
    f"cluster-wide: bind it with the Helm value rbac.clusterViewers (or kubectl create "
    f"clusterrolebinding ... --clusterrole={CLUSTER_VIEWER})"
)


def _where(credentials: Credentials) -> str:
    return f"the API server {credentials.server} ({credentials.source})"


def api_failure(error: ApiError, credentials: Credentials) -> CliError:
    """Any API error that is not about one resource: no answer, TLS, credentials."""
    if isinstance(error, TLSFailure):
        return CliError(
            f"TLS with {_where(credentials)} failed: {error.cause}. The kubeconfig's "
            "certificate-authority must be the CA that signed the server's certificate, and "
            "a client certificate must still be valid: was the cluster re-created, or is "
            "this the wrong context?"
        )
    if isinstance(error, NotReachable):
        return CliError(
            f"cannot reach {_where(credentials)}: {error.cause}. Is the cluster up? "
            "`kubectl cluster-info` with the same --kubeconfig/--context checks it; "
            "--context or --kubeconfig choose another cluster."
        )
    if error.unauthorized:
        return CliError(
            f"{_where(credentials)} does not accept these credentials (401 Unauthorized): "
            f"they expired, were revoked, or belong to another cluster. {_renew(credentials)}"
        )
    return CliError(
        f"{_where(credentials)} answered {error.status} {error.reason or 'error'}: "
        f"{error.message or 'no message'}"
    )


def _renew(credentials: Credentials) -> str:
    if credentials.source == "in-cluster":
        return (
            "This pod's service-account token was refused: was its ServiceAccount deleted "
            "and created again? Restart the pod for a new token."
        )
    if credentials.exec_command is not None:
        return (
            f"They come from the exec plugin {credentials.exec_command!r}: log in "
            "with it again (e.g. your cloud's get-credentials or login command)."
        )
    if credentials.auth_provider is not None:
        return (
            f"They come from the {credentials.auth_provider!r} auth-provider: log in again "
            "(its refresh token may have expired)."
        )
    if credentials.token_file is not None:
        return f"The token comes from {credentials.token_file}: put a valid token there."
    authorization = credentials.authorization or ""
    if authorization.startswith("Basic "):
        return "The kubeconfig holds a username and password: ask your admin for new ones."
    if credentials.token is not None or authorization.startswith("Bearer "):
        return (
            "The kubeconfig holds a token: replace it (for a ServiceAccount, `kubectl "
            "create token NAME`)."
        )
    if credentials.client_certificate is not None:
        return "The kubeconfig holds a client certificate: get a new one from your admin."
    return "The kubeconfig's user has no credentials: add a token or a client certificate."


def credentials_failure(error: CredentialsError, kubeconfig: str | None) -> CliError:
    named = f"--kubeconfig {kubeconfig}" if kubeconfig else "$KUBECONFIG or ~/.kube/config"
    return CliError(
        f"cannot load Kubernetes credentials: {error}. Check {named}; `kubectl config "
        "get-contexts` lists the contexts, --context picks one."
    )


def listing_failure(error: ApiError, resource: Resource, namespace: str | None) -> CliError | None:
    """A missing CRD or an RBAC refusal while listing `resource`; None for other errors."""
    if error.not_found:
        return CliError(
            f"the {resource.plural}.{resource.group} resource is not installed on this "
            "cluster: install gpupool (helm install gpupool helm/gpupool) or apply its CRDs "
            "(kubectl apply -f crds/)"
        )
    if error.forbidden:
        return forbidden(error.refusal(), resource, namespace)
    return None


def forbidden(refusal: Refusal | None, resource: Resource, namespace: str | None) -> CliError:
    who = refusal.user if refusal else "your credentials"
    verb = refusal.verb if refusal else "list"
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    if refusal is not None:
        namespace = refusal.namespace
    scope = f"in namespace {namespace}" if namespace else "cluster-wide"
    if not resource.namespaced:
        scope = "(cluster-scoped)"
    return CliError(f"forbidden: {who} may not {verb} {qualified} {scope}. {_grant(resource)}")


def _grant(resource: Resource) -> str:
    if resource.group != GPUJOBS.group:
        return (
            "explain and snapshot read what the operator reads: Nodes, and the Pods "
            f"and Events of every namespace; {_CLUSTER_VIEWER_HINT}."
        )
    viewer = f"{RELEASE}-{resource.kind.lower()}-viewer"
    if resource.namespaced:
        return (
            f"The ClusterRole {viewer} grants it and is part of the built-in `view` role: a "
            "RoleBinding to `view` (or `edit`) in your team's namespace lets you use -n "
            f"NAMESPACE; for every namespace (-A) ask for {CLUSTER_VIEWER}, or a "
            f"ClusterRoleBinding to {viewer}."
        )
    return (
        f"{resource.plural} are cluster-scoped: a ClusterRoleBinding to the ClusterRole "
        f"{viewer} grants it, or {CLUSTER_VIEWER} (Helm value rbac.clusterViewers) with the "
        "rest of what gpupool reads."
    )


def did_you_mean(wanted: str, candidates: Iterable[str]) -> str:
    """' Did you mean X?' for the closest candidates, or ''."""
    close = difflib.get_close_matches(wanted, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(close) + "?"
