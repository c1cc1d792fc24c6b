"""The control plane's binaries, built from Go modules by `tests/cluster/build.sh`.

The script is the single source of truth for versions and cache paths: this module
only asks it (`--list` to locate, no flag to build what is missing).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "tests" / "cluster" / "build.sh"

CLUSTER = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "kwokctl",
)
"""What a local cluster needs; `helm` is built too but only the chart's tests use it."""

BUILD_TIMEOUT = 90 * 60.0
LIST_TIMEOUT = 30.0


class BinariesError(RuntimeError):
    """The build script failed."""


def _run(args: list[str], timeout: float) -> dict[str, Path]:
    if not BUILD_SCRIPT.is_file():
        raise FileNotFoundError(f"{BUILD_SCRIPT}: gpupool.devcluster needs a source checkout")
    # Progress (stderr) goes straight to the caller's terminal.
    completed = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *args],
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise BinariesError(f"{BUILD_SCRIPT} {' '.join(args)} failed ({completed.returncode})")
    paths: dict[str, Path] = {}
    for line in completed.stdout.splitlines():
        name, _, path = line.partition(" ")
        if path:
            paths[name] = Path(path)
    return paths


def locate(names: Iterable[str] = CLUSTER) -> dict[str, Path]:
    """Where each binary is (or would be) in the cache; builds nothing."""
    return _run(["--list", *names], LIST_TIMEOUT)


def ensure(names: Iterable[str] = CLUSTER) -> dict[str, Path]:
    """The binaries' paths, building the missing ones first (minutes when cold)."""
    wanted = list(names)
    found = locate(wanted)
    if all(path.is_file() for path in found.values()):
        return found
    return _run(wanted, BUILD_TIMEOUT)


def built(name: str) -> Path:
    """The cached binary `name`; FileNotFoundError if it has not been built."""
    path = locate([name])[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} (run `make bins` or `bash {BUILD_SCRIPT}`)")
    return path


def helm() -> Path:
    """The cached helm; FileNotFoundError if it has not been built."""
    return built("helm")


def kubectl() -> Path:
    """The cached kubectl; FileNotFoundError if it has not been built."""
    return built("kubectl")
