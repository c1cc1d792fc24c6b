"""The processes of a kwokctl `binary` cluster, one component at a time.

kwokctl starts and stops whole clusters only. A component is stopped and started the
way kwokctl does it: its command line is in the cluster's kwok.yaml, its pid in
`<workDir>/pids/<binary name>.pid`, its output in `<workDir>/logs/<binary name>.log`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

STOP_GRACE = 5.0
"""kube-apiserver can take minutes to end after SIGTERM (it stops listening at once)."""
KILL_WAIT = 10.0

_started: dict[int, subprocess.Popen[bytes]] = {}
"""The components this process restarted itself: their exit statuses are ours to reap."""


@dataclass(frozen=True)
class Component:
    name: str
    binary: str
    args: tuple[str, ...]
    workdir: Path
    env: dict[str, str]

    @property
    def pid_file(self) -> Path:
        return self.workdir / "pids" / f"{Path(self.binary).name}.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "logs" / f"{Path(self.binary).name}.log"


def read_components(cluster_dir: Path) -> dict[str, Component]:
    """The components kwokctl recorded in the cluster's kwok.yaml."""
    text = (cluster_dir / "kwok.yaml").read_text(encoding="utf-8")
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("kind") == "KwokctlConfiguration":
            return {c["name"]: _component(c, cluster_dir) for c in doc.get("components") or ()}
    raise ValueError(f"no KwokctlConfiguration in {cluster_dir / 'kwok.yaml'}")


def _component(raw: dict[str, Any], cluster_dir: Path) -> Component:
    return Component(
        name=raw["name"],
        binary=raw["binary"],
        args=tuple(raw.get("args") or ()),
        workdir=Path(raw.get("workDir") or cluster_dir),
        env={e["name"]: e.get("value", "") for e in raw.get("envs") or ()},
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def running_pid(component: Component) -> int | None:
    """The component's pid, if its pid file names a live process."""
    try:
        pid = int(component.pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop(component: Component, *, grace: float = STOP_GRACE) -> None:
    """SIGTERM the component, SIGKILL it after `grace` s, wait until it is gone; remove
    its pid file."""
    pid = running_pid(component)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, grace):
            os.kill(pid, signal.SIGKILL)
            if not _wait_gone(pid, KILL_WAIT):
                raise TimeoutError(f"{component.name} (pid {pid}) survived SIGKILL")
    component.pid_file.unlink(missing_ok=True)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        if not pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect the exit status when we started the process ourselves."""
    process = _started.get(pid)
    if process is not None and process.poll() is not None:
        del _started[pid]


def start(component: Component) -> int:
    """Start the component detached, as kwokctl does; its pid."""
    pid = running_pid(component)
    if pid is not None:
        return pid
    component.log_file.parent.mkdir(parents=True, exist_ok=True)
    component.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with component.log_file.open("ab") as log:
        process = subprocess.Popen(
            [component.binary, *component.args],
            cwd=component.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **component.env},
            start_new_session=True,
        )
    _started[process.pid] = process
    component.pid_file.write_text(str(process.pid), encoding="utf-8")
    return process.pid
