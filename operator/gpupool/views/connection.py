"""How a command reaches the cluster: kubectl's flags, and the one place the CLI loads
credentials.

Every command that reads the cluster takes `--kubeconfig`, `--context`,
`--request-timeout` and `-v` as kubectl spells them; `Target` carries them to
`run_on_cluster`, which turns every failure into one message a person can act on
(gpupool.views.failures) and a traceback only with `-v`.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from gpupool.k8s import ApiError, ClientSettings, Credentials, CredentialsError, KubeClient
from gpupool.k8s.kubeconfig import load_credentials
from gpupool.views.failures import CliError, api_failure, credentials_failure

T = TypeVar("T")

# A CLI waits less than the operator for a server that does not answer.
ATTEMPTS = 3

Kubeconfig = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        help="Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config; in a "
        "pod, its service account).",
        show_default=False,
    ),
]
Context = Annotated[
    str | None,
    typer.Option("--context", help="The kubeconfig context to use.", show_default=False),
]
RequestTimeout = Annotated[
    str,
    typer.Option(
        "--request-timeout",
        help="How long to wait for each answer of the API server (30s, 1m, 500ms; 0: no limit).",
    ),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="On failure, also print the traceback."),
]
Namespace = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="The namespace (default: the context's).",
        show_default=False,
    ),
]
AllNamespaces = Annotated[
    bool,
    typer.Option("--all-namespaces", "-A", help="Every namespace."),
]
OUTPUT_HELP = "Output format."
ListingOutput = Annotated[
    Literal["table", "wide", "json", "yaml", "name"],
    typer.Option("--output", "-o", help=OUTPUT_HELP),
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """kubectl's --request-timeout: a number of seconds or a duration like 1m30s; None
    for 0 (no limit)."""
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    elif value and _DURATION.sub("", value) == "":
        seconds = sum(
            float(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION.findall(value)
        )
    else:
        raise typer.BadParameter(
            f"{text!r} is not a duration: use seconds (30), or 30s, 1m, 500ms, 1m30s; 0 for "
            "no limit",
            param_hint="'--request-timeout'",
        )
    return seconds or None


@dataclass(frozen=True)
class Target:
    """Which cluster to read, how long to wait for it, and how much to say on failure."""

    kubeconfig: str | None = None
    context: str | None = None
    request_timeout: str = "30s"
    verbose: bool = False


def credentials_for(target: Target) -> Credentials:
    """The one place the CLI loads credentials: the kubeconfig (and context) named, else
    $KUBECONFIG or ~/.kube/config, else in a pod its service account."""
    return load_credentials(target.kubeconfig, target.context)


def exclusive(namespace: str | None, all_namespaces: bool) -> None:
    if all_namespaces and namespace:
        raise typer.BadParameter(
            "give either -n/--namespace or -A/--all-namespaces, not both",
            param_hint="'-A'",
        )


def resolve_namespace(target: Target, namespace: str | None, all_namespaces: bool) -> str | None:
    """The namespace a namespaced command reads: -n, else the context's; None with -A."""
    exclusive(namespace, all_namespaces)
    if all_namespaces:
        return None
    if namespace:
        return namespace
    try:
        return credentials_for(target).namespace or "default"
    except CredentialsError:
        return "default"  # run_on_cluster reports the credentials problem itself


def run_on_cluster(target: Target, work: Callable[[KubeClient], Awaitable[T]]) -> T:
    """Run one async read against the cluster; every failure becomes a message and exit 2
    (exit 1 for a bug, with its traceback under -v)."""
    timeout = parse_duration(target.request_timeout)
    try:
        credentials = credentials_for(target)
    except CredentialsError as error:
        fail(credentials_failure(error, target.kubeconfig), error, target.verbose)
    settings = ClientSettings(request_timeout=timeout, attempts=ATTEMPTS)

    async def main() -> T:
        async with KubeClient(credentials, settings) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except CliError as error:
        fail(error, error, target.verbose)
    except ApiError as error:
        fail(api_failure(error, credentials), error, target.verbose)
    except CredentialsError as error:  # an exec plugin that failed
        fail(credentials_failure(error, target.kubeconfig), error, target.verbose)


def fail(message: CliError, cause: BaseException, verbose: bool) -> NoReturn:
    """Print `message` (and with `verbose` the traceback of `cause`) and exit 2."""
    console = Console(stderr=True, highlight=False)
    if verbose and sys.exc_info()[1] is not None:  # a refusal found by gpupool has none
        console.print_exception(show_locals=False)
    console.print(Text.assemble(("error: ", "red"), str(message)), soft_wrap=True)
    raise typer.Exit(2) from cause
