"""The only package that talks to the Kubernetes API server."""

from gpupool.k8s.client import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    ClientSettings,
    ErrorObserver,
    KubeClient,
)
from gpupool.k8s.credentials import Credentials
from gpupool.k8s.errors import ApiError, CredentialsError, NotReachable, Refusal, TLSFailure
from gpupool.k8s.kubeconfig import load_credentials
from gpupool.k8s.resources import (
    CRDS,
    EVENTS,
    GPUJOBS,
    GPUNODES,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SERVICE_ACCOUNTS,
    SERVICES,
    TEAMQUOTAS,
    Resource,
)

__all__ = [
    "APPLY_PATCH",
    "CRDS",
    "EVENTS",
    "GPUJOBS",
    "GPUNODES",
    "JSON_PATCH",
    "LEASES",
    "MERGE_PATCH",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SERVICES",
    "SERVICE_ACCOUNTS",
    "STRATEGIC_PATCH",
    "TEAMQUOTAS",
    "ApiError",
    "ClientSettings",
    "Credentials",
    "CredentialsError",
    "ErrorObserver",
    "KubeClient",
    "NotReachable",
    "Refusal",
    "Resource",
    "TLSFailure",
    "load_credentials",
]
