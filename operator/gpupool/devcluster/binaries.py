"""The control plane's binaries, built from Go modules by `tests/cluster/build.sh`.

The script is the single source of truth for versions and cache paths: this module
only asks it (`--list` to locate, no flag to build what is missing).
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from gpupool.progress import Step, Steps

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
"""What a local cluster needs; `helm` is built too but only the chart's tests use it.
The workload kinds' controllers (gpupool.devcluster.controllers) are built only when
something asks for them: `ensure(["kueue"])`."""

BUILD_TIMEOUT = 90 * 60.0
LIST_TIMEOUT = 30.0


class BinariesError(RuntimeError):
    """The build script failed."""


def _script() -> list[str]:
    if not BUILD_SCRIPT.is_file():
        raise FileNotFoundError(f"{BUILD_SCRIPT}: gpupool.devcluster needs a source checkout")
    return ["bash", str(BUILD_SCRIPT)]


def _paths(stdout: str) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for line in stdout.splitlines():
        name, _, path = line.partition(" ")
        if path:
            paths[name] = Path(path)
    return paths


def go_env() -> dict[str, str]:
    """The environment of the go commands build.sh runs (its wrapper modules as pinned)."""
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}


def locate(names: Iterable[str] = CLUSTER) -> dict[str, Path]:
    """Where each binary is (or would be) in the cache; builds nothing."""
    args = ["--list", *names]
    completed = subprocess.run(
        [*_script(), *args], stdout=subprocess.PIPE, text=True, timeout=LIST_TIMEOUT, check=False
    )
    if completed.returncode != 0:
        raise BinariesError(f"{BUILD_SCRIPT} {' '.join(args)} failed ({completed.returncode})")
    return _paths(completed.stdout)


def ensure(names: Iterable[str] = CLUSTER) -> dict[str, Path]:
    """The binaries' paths, building the missing ones first (minutes when cold)."""
    wanted = list(names)
    found = locate(wanted)
    missing = [name for name, path in found.items() if not path.is_file()]
    if not missing:
        return found
    return _build(wanted, missing)


def _build(wanted: list[str], missing: list[str]) -> dict[str, Path]:
    """Run the build script with a progress bar over the binaries it has to build (its
    own log lines go through as they are when stderr is not a terminal)."""
    steps = Steps()
    what = (
        f"building {', '.join(missing)} from Go modules (the first build takes about "
        "15 minutes on 2 cores; later runs use the cache)"
    )
    with steps.step(what, total=len(missing)) as step:
        process = subprocess.Popen(
            [*_script(), *wanted], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stderr is not None
        # The build may also sit waiting for another one's lock, silent: a timer, not the
        # lines, bounds it.
        watchdog = threading.Timer(BUILD_TIMEOUT, process.kill)
        watchdog.start()
        try:
            for line in process.stderr:
                _follow(line.rstrip("\n"), step, steps)
            stdout, _ = process.communicate(timeout=LIST_TIMEOUT)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0:
            raise BinariesError(f"{BUILD_SCRIPT} {' '.join(wanted)} failed ({process.returncode})")
    return _paths(stdout)


def _follow(line: str, step: Step, steps: Steps) -> None:
    """One log line of build.sh: move the bar, and keep what matters on screen."""
    if not steps.console.is_terminal:
        steps.console.print(line, markup=False)
        return
    if line.startswith("building "):
        step.describe(line.removesuffix(" ..."))
    elif line.startswith("waiting "):
        step.describe(line)
    elif line.startswith("built "):
        step.advance()
        steps.console.print(f"  {line}", markup=False)
    elif not line.startswith(("  ... ", "cached ", "binaries in ")):
        steps.console.print(line, markup=False)


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
