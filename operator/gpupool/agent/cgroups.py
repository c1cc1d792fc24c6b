"""Pod UID and container ID from a process's /proc/<pid>/cgroup.

The forms the kubelet's cgroup drivers produce, v1 and v2 alike:

systemd driver:  .../kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>.slice
                 /cri-containerd-<id>.scope   (also docker-<id>.scope, crio-<id>.scope)
cgroupfs driver: .../kubepods/burstable/pod<uid>/<id>   (guaranteed pods: /kubepods/pod<uid>/<id>)

A v1 file has one line per hierarchy (`11:memory:/kubepods/...`), v2 a single
`0::/...` line; inside a cgroup namespace the path may start with `/../`. The pod
UID is searched for anywhere under a `kubepods` component, so nesting (kind's
`kubelet.slice/kubelet-kubepods.slice/...`) does not matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_POD = re.compile(rf"kubepods.*?pod({_UID})(?:\.slice)?(?:/|$)")
_CONTAINER = re.compile(
    r"^(?:(?:cri-containerd|docker|crio|containerd)-)?([0-9a-f]{12,64})(?:\.scope)?$"
)


@dataclass(frozen=True)
class CgroupRef:
    pod_uid: str
    container_id: str = ""
    """Empty when the process sits in the pod's cgroup itself (e.g. the pause process)."""


def parse_cgroup_line(path: str) -> CgroupRef | None:
    """The pod of one cgroup path, or None for a process outside Kubernetes pods."""
    match = _POD.search(path)
    if match is None:
        return None
    uid = match.group(1).replace("_", "-")
    rest = path[match.end() :].strip("/")
    container = ""
    if rest:
        found = _CONTAINER.match(rest.split("/", 1)[0])
        if found is not None:
            container = found.group(1)
    return CgroupRef(pod_uid=uid, container_id=container)


def parse_cgroup(text: str) -> CgroupRef | None:
    """The pod of a /proc/<pid>/cgroup file; the first line naming one wins."""
    best: CgroupRef | None = None
    for line in text.splitlines():
        # hierarchy-ID:controllers:path; the path itself may contain ':'.
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        ref = parse_cgroup_line(parts[2])
        if ref is None:
            continue
        if ref.container_id:
            return ref
        best = best or ref
    return best


def pod_of_pid(pid: int, proc_root: Path = Path("/proc")) -> CgroupRef | None:
    """Read /proc/<pid>/cgroup; None if the process is gone or outside a pod.

    Needs the host PID namespace (hostPID: true) to see other containers' processes.
    """
    try:
        text = (proc_root / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    return parse_cgroup(text)
