"""/proc/<pid>/cgroup -> pod UID and container ID, for every driver and cgroup version."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.agent.cgroups import CgroupRef, parse_cgroup, parse_cgroup_line, pod_of_pid

UID = "0f3a9b1c-2d4e-4f60-8a7b-9c0d1e2f3a4b"
UID_ = UID.replace("-", "_")
CID = "4c8e2a1f" * 8  # 64 hex digits

CASES = [
    # cgroup v2, systemd driver, containerd
    (
        f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
        f"cri-containerd-{CID}.scope",
        CgroupRef(UID, CID),
    ),
    # cgroup v2, systemd, guaranteed QoS (no QoS slice), CRI-O
    (
        f"0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope",
        CgroupRef(UID, CID),
    ),
    # cgroup v2, systemd, docker (cri-dockerd)
    (
        f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
        f"docker-{CID}.scope",
        CgroupRef(UID, CID),
    ),
    # cgroup v2, cgroupfs driver
    (f"0::/kubepods/burstable/pod{UID}/{CID}", CgroupRef(UID, CID)),
    # cgroup v1, cgroupfs driver, guaranteed QoS
    (f"11:memory:/kubepods/pod{UID}/{CID}", CgroupRef(UID, CID)),
    # cgroup v1, systemd driver, several controllers on one line
    (
        f"4:cpu,cpuacct:/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope",
        CgroupRef(UID, CID),
    ),
    # kind / nested kubelet
    (
        f"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
        f"kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
        CgroupRef(UID, CID),
    ),
    # seen from inside a cgroup namespace
    (
        f"0::/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope",
        CgroupRef(UID, CID),
    ),
    # the pod's own cgroup (pause process, or a process in the pod slice)
    (f"0::/kubepods.slice/kubepods-pod{UID_}.slice", CgroupRef(UID, "")),
    # conmon sits beside the container: the pod, but no container
    (f"0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{CID}.scope", CgroupRef(UID, "")),
    # not a pod
    ("0::/system.slice/containerd.service", None),
    ("0::/user.slice/user-1000.slice/session-3.scope", None),
    ("12:pids:/", None),
    (f"0::/system.slice/docker-{CID}.scope", None),
    ("", None),
]


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_parse_cgroup_file(line: str, expected: CgroupRef | None) -> None:
    assert parse_cgroup(line + "\n") == expected


def test_v1_file_with_many_hierarchies_prefers_a_line_with_the_container() -> None:
    text = "\n".join(
        [
            "12:pids:/",
            f"11:memory:/kubepods/burstable/pod{UID}",
            f"10:cpu,cpuacct:/kubepods/burstable/pod{UID}/{CID}",
            "1:name=systemd:/init.scope",
        ]
    )
    assert parse_cgroup(text) == CgroupRef(UID, CID)


def test_line_parser_takes_a_bare_path() -> None:
    assert parse_cgroup_line(f"/kubepods/pod{UID}/{CID}") == CgroupRef(UID, CID)


def test_pod_of_pid_reads_proc(tmp_path: Path) -> None:
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "cgroup").write_text(f"0::/kubepods/besteffort/pod{UID}/{CID}\n")
    assert pod_of_pid(77, tmp_path) == CgroupRef(UID, CID)
    assert pod_of_pid(78, tmp_path) is None
