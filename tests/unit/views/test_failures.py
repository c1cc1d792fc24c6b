"""What the CLI says when the cluster cannot be read, for every kind of failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.k8s import GPUJOBS, NODES, TEAMQUOTAS, ApiError, Credentials, NotReachable, TLSFailure
from gpupool.views.failures import api_failure, did_you_mean, listing_failure

SERVER = "https://10.0.0.1:6443"
KUBECONFIG = Credentials(server=SERVER, token="t", source="kubeconfig /k.yaml (context 'prod')")
REFUSED = (
    'gpujobs.gpupool.io is forbidden: User "jane" cannot list resource "gpujobs" in API group '
    '"gpupool.io" in the namespace "vision"'
)


def test_unreachable_names_the_server_and_the_context() -> None:
    error = NotReachable("GET /x: connection refused", server=SERVER, cause="connection refused")
    text = str(api_failure(error, KUBECONFIG))
    assert text.startswith(f"cannot reach the API server {SERVER} (kubeconfig /k.yaml")
    assert "(context 'prod')" in text and "connection refused" in text
    assert "Is the cluster up?" in text and "kubectl cluster-info" in text


def test_tls_failure_says_which_ca_to_check_and_is_not_retried() -> None:
    error = TLSFailure(
        "GET /x", server=SERVER, cause="the server's certificate is not trusted", untrusted=True
    )
    assert not error.retryable
    broken_off = TLSFailure("GET /x", server=SERVER, cause="handshake", untrusted=False)
    assert broken_off.retryable
    text = str(api_failure(error, KUBECONFIG))
    assert text.startswith(f"TLS with the API server {SERVER}")
    assert "certificate-authority" in text and "re-created" in text


@pytest.mark.parametrize(
    ("credentials", "advice"),
    [
        (KUBECONFIG, "kubectl create token NAME"),
        (Credentials(server=SERVER, token_file=Path("/t")), "The token comes from /t"),
        (
            Credentials(server=SERVER, authorization="Bearer t", exec_command="aws"),
            "exec plugin 'aws': log in with it again",
        ),
        (
            Credentials(server=SERVER, authorization="Bearer t", auth_provider="oidc"),
            "'oidc' auth-provider: log in again",
        ),
        (Credentials(server=SERVER, authorization="Bearer t"), "kubectl create token NAME"),
        (Credentials(server=SERVER, authorization="Basic YTpi"), "a username and password"),
        (Credentials(server=SERVER, source="in-cluster"), "Restart the pod"),
        (
            Credentials(server=SERVER, client_certificate=b"c", client_key=b"k"),
            "a new one from your admin",
        ),
    ],
)
def test_expired_credentials_say_how_to_renew_them(credentials: Credentials, advice: str) -> None:
    text = str(api_failure(ApiError(401, "Unauthorized", "Unauthorized"), credentials))
    assert "does not accept these credentials (401 Unauthorized)" in text
    assert "expired, were revoked" in text and advice in text


def test_forbidden_names_user_verb_resource_namespace_and_role() -> None:
    failure = listing_failure(ApiError(403, "Forbidden", REFUSED), GPUJOBS, "vision")
    text = str(failure)
    assert text.startswith("forbidden: jane may not list gpujobs.gpupool.io in namespace vision.")
    assert "gpupool-gpujob-viewer" in text and "RoleBinding to `view`" in text


def test_forbidden_cluster_scoped_resources_need_a_cluster_role_binding() -> None:
    text = str(listing_failure(ApiError(403, "Forbidden", "nope"), TEAMQUOTAS, None))
    assert "teamquotas.gpupool.io (cluster-scoped)" in text
    assert "ClusterRoleBinding to the ClusterRole gpupool-teamquota-viewer" in text
    nodes = str(listing_failure(ApiError(403, "Forbidden", "nope"), NODES, None))
    assert "may not list nodes (cluster-scoped)" in nodes and "gpupool-cluster-viewer" in nodes


def test_a_missing_crd_says_how_to_install_it() -> None:
    text = str(listing_failure(ApiError(404, "NotFound", "not found"), GPUJOBS, "vision"))
    assert "gpujobs.gpupool.io resource is not installed" in text and "crds/" in text


def test_other_errors_are_left_to_the_caller_and_then_quote_the_server() -> None:
    error = ApiError(503, "ServiceUnavailable", "etcd is down")
    assert listing_failure(error, GPUJOBS, None) is None
    text = str(api_failure(error, KUBECONFIG))
    assert text == (
        f"the API server {SERVER} (kubeconfig /k.yaml (context 'prod')) answered 503 "
        "ServiceUnavailable: etcd is down"
    )


def test_refusal_parses_the_authorizers_message() -> None:
    refusal = ApiError(403, "Forbidden", REFUSED).refusal()
    assert refusal is not None
    assert (refusal.user, refusal.verb, refusal.qualified_resource, refusal.namespace) == (
        "jane",
        "list",
        "gpujobs.gpupool.io",
        "vision",
    )
    assert ApiError(404, "NotFound", REFUSED).refusal() is None


def test_did_you_mean() -> None:
    assert did_you_mean("visoin", ["vision", "nlp"]) == " Did you mean vision?"
    assert did_you_mean("zzz", ["vision", "nlp"]) == ""
