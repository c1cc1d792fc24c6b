"""Running pods' checkpoint reports, read from their container logs (gpupool.agent.checkpoints)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpupool.agent.checkpoints import LogCheckpoints, parse_log_line, parse_report
from gpupool.agent.node import NodeAgent
from gpupool.agent.nvml import NvmlBackend
from gpupool.agent.nvml_standin import StandInNVML
from gpupool.agent.policy import PublishPolicy
from gpupool.agent.status import PodCheckpoint, PodRef
from gpupool.workload import report

TRAIN = PodRef(namespace="vision", name="a-0-0", container="train", uid="uid-a")


def helper_line(location: str, tmp_path: Path) -> str:
    """What the workload helper prints when it reports `location`."""
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        assert report(location, str(tmp_path / "termination-log"))
    (line,) = captured.getvalue().splitlines()
    return line


def cri(when: str, text: str, *, stream: str = "stderr", tag: str = "F") -> str:
    return f"{when} {stream} {tag} {text}\n"


def log_file(root: Path, ref: PodRef, *, container: str | None = None, restart: int = 0) -> Path:
    directory = root / f"{ref.namespace}_{ref.name}_{ref.uid}" / (container or ref.container)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{restart}.log"


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as stream:
        stream.write("".join(lines))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(microsecond=0)


def test_the_helpers_line_in_a_cri_log_is_the_pods_checkpoint_at_the_runtimes_time(
    tmp_path: Path,
) -> None:
    root = tmp_path / "pods"
    path = log_file(root, TRAIN)
    append(
        path,
        cri("2026-12-08T00:00:01.123456789Z", "step 100 loss 0.3", stream="stdout"),
        cri("2026-12-08T00:00:02.5Z", helper_line("s3://ckpt/a/step-100", tmp_path)),
    )
    reader = LogCheckpoints(root)
    assert reader.scan([TRAIN]) == [
        PodCheckpoint(
            namespace="vision",
            name="a-0-0",
            uid="uid-a",
            location="s3://ckpt/a/step-100",
            saved_at=at("2026-12-08T00:00:02Z"),
        )
    ]
    append(path, cri("2026-12-08T00:01:00Z", helper_line("s3://ckpt/a/step-200", tmp_path)))
    (latest,) = reader.scan([TRAIN])
    assert latest.location == "s3://ckpt/a/step-200"
    assert latest.saved_at == at("2026-12-08T00:01:00Z")


def test_full_cri_lines_and_docker_json_logs(tmp_path: Path) -> None:
    line = helper_line("/ckpt/step-7", tmp_path)
    assert parse_report(line) == "/ckpt/step-7"
    assert parse_report('gpupool.io/checkpoint {"nope": 1}') is None
    assert parse_report("step 7: gpupool.io/checkpoint is great") is None
    assert parse_log_line(cri("2026-12-08T00:00:00Z", line, tag="P")) == (None, None)
    when, text = parse_log_line(cri("2026-12-08T00:00:00Z", line))
    assert when == at("2026-12-08T00:00:00Z") and text is not None
    assert parse_report(text) == "/ckpt/step-7"
    docker = json.dumps({"log": line + "\n", "stream": "stderr", "time": "2026-12-08T00:00:03Z"})
    when, text = parse_log_line(docker)
    assert when == at("2026-12-08T00:00:03Z") and text is not None and parse_report(text)
    assert parse_log_line(json.dumps({"log": line, "time": "2026-12-08T00:00:03Z"})) == (
        None,
        None,
    )


def test_reads_are_bounded_and_resume_where_they_stopped(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    path = log_file(root, TRAIN)
    noise = [cri("2026-12-08T00:00:00Z", "x" * 60) for _ in range(50)]
    append(path, *noise, cri("2026-12-08T00:00:09Z", helper_line("/ckpt/late", tmp_path)))
    reader = LogCheckpoints(root, max_bytes=1024)
    scans = 0
    while not reader.scan([TRAIN]):
        scans += 1
        assert scans < 10
    assert scans >= 3


def test_a_rotated_log_is_read_from_its_start(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    path = log_file(root, TRAIN)
    append(path, cri("2026-12-08T00:00:01Z", helper_line("/ckpt/1", tmp_path)))
    reader = LogCheckpoints(root)
    assert reader.scan([TRAIN])[0].location == "/ckpt/1"
    os.rename(path, path.with_name("0.log.20261208-000010"))
    append(path, cri("2026-12-08T00:00:20Z", helper_line("/ckpt/2", tmp_path)))
    assert reader.scan([TRAIN])[0].location == "/ckpt/2"


def test_a_pod_speaks_only_for_itself_and_only_its_gpu_container(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    other = PodRef(namespace="vision", name="b-0-0", container="train", uid="uid-b")
    append(log_file(root, other), cri("2026-12-08T00:00:01Z", helper_line("/ckpt/b", tmp_path)))
    sidecar = log_file(root, TRAIN, container="sidecar")
    append(sidecar, cri("2026-12-08T00:00:01Z", helper_line("/ckpt/sidecar", tmp_path)))
    log_file(root, TRAIN).touch()
    reader = LogCheckpoints(root)
    assert reader.scan([TRAIN]) == []
    # Without a container name (attribution by process), every container is read; the
    # pod's directory is found by namespace and name when the UID is unknown.
    anonymous = PodRef(namespace="vision", name="a-0-0")
    (found,) = reader.scan([anonymous])
    assert (found.location, found.uid) == ("/ckpt/sidecar", "uid-a")


def test_the_latest_restart_counts_and_pods_gone_are_forgotten(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    append(log_file(root, TRAIN), cri("2026-12-08T00:00:01Z", helper_line("/ckpt/0", tmp_path)))
    append(
        log_file(root, TRAIN, restart=1),
        cri("2026-12-08T00:00:05Z", helper_line("/ckpt/1", tmp_path)),
    )
    reader = LogCheckpoints(root)
    assert reader.scan([TRAIN])[0].location == "/ckpt/1"
    assert reader.scan([]) == []
    assert reader.scan([TRAIN])[0].location == "/ckpt/1"


def test_without_the_logs_nothing_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = LogCheckpoints(tmp_path / "absent")
    assert reader.scan([TRAIN]) == []
    assert reader.scan([TRAIN]) == []
    assert sum("/var/log/pods" in record.getMessage() for record in caplog.records) == 1


def test_the_agent_publishes_a_new_checkpoint_beside_utilization(tmp_path: Path) -> None:
    root = tmp_path / "pods"
    standin = StandInNVML.with_gpus(1)
    agent = NodeAgent("n1", NvmlBackend(standin), checkpoints=LogCheckpoints(root))
    pods = {standin.devices[0].uuid: TRAIN}
    agent.absorb(agent.poll(0.0), pods, 0.0)
    assert agent.status.checkpoints == []
    before = agent.status
    append(log_file(root, TRAIN), cri("2026-12-08T00:00:01Z", helper_line("/ckpt/9", tmp_path)))
    agent.absorb(agent.poll(11.0), pods, 11.0)
    assert [c.location for c in agent.status.checkpoints] == ["/ckpt/9"]
    assert agent.status.to_k8s()["checkpoints"][0]["savedAt"] == "2026-12-08T00:00:01Z"
    decision = PublishPolicy().decide(before, agent.status, 11.0)
    assert (decision.publish, decision.reason) == (True, "a pod reported a checkpoint")
