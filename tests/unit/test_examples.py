"""Every example manifest is valid, admissible and builds worker pods; train.py runs.

The PyTorch example itself runs only where torch is installed (it is not a gpupool
dependency): two "pods" on CPU with gloo, SIGTERM, checkpoint, resume. Point
`GPUPOOL_TORCH_PYTHON` at an interpreter that has torch to run it from a virtualenv
that does not.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import gpupool
from gpupool.api import CheckpointHook, GPUJob, TeamQuota
from gpupool.controller.checkpoint import request_checkpoint
from gpupool.controller.manifests import (
    GPU_RESOURCE,
    LABEL_WORKER_INDEX,
    headless_service,
    worker_pod,
)
from gpupool.controller.termination import parse_termination_message
from gpupool.webhook.rules import validate_gpujob, validate_teamquota

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SOURCE_ROOT = str(Path(gpupool.__file__).resolve().parents[1])


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append(
                    (f"{path.relative_to(EXAMPLES)}:{document['metadata']['name']}", document)
                )
    return found


DOCUMENTS = documents()
JOBS = {name: GPUJob.model_validate(doc) for name, doc in DOCUMENTS if doc["kind"] == "GPUJob"}
TEAMS = {
    doc["metadata"]["name"]: TeamQuota.model_validate(doc)
    for _, doc in DOCUMENTS
    if doc["kind"] == "TeamQuota"
}


def test_the_examples_cover_the_documented_cases() -> None:
    assert {name.split(":")[0] for name in JOBS} == {
        "pytorch-ddp/gpujob.yaml",
        "inference/gpujob.yaml",
        "elastic/gpujob.yaml",
    }
    assert {doc["kind"] for _, doc in DOCUMENTS} == {"GPUJob", "TeamQuota"}
    by_file = {name.split(":")[0]: job.spec for name, job in JOBS.items()}
    ddp = by_file["pytorch-ddp/gpujob.yaml"]
    assert (ddp.workers, ddp.gpus_per_worker) == (2, 8)
    assert ddp.checkpoint is not None and ddp.checkpoint.mode == "signal"
    assert ddp.placement is not None and ddp.placement.topology == "rack"
    serving = by_file["inference/gpujob.yaml"]
    assert (serving.workers, serving.gpus_per_worker, serving.preemptible) == (1, 1, False)
    elastic = by_file["elastic/gpujob.yaml"]
    assert elastic.worker_range == (2, 8)
    assert elastic.checkpoint is not None and elastic.checkpoint.mode == "httpPost"


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_round_trips_through_the_models(name: str, document: dict[str, Any]) -> None:
    model = GPUJob if document["kind"] == "GPUJob" else TeamQuota
    parsed = model.model_validate(document)
    assert model.model_validate(parsed.to_k8s()) == parsed


def test_the_teams_admit_each_other_and_every_job() -> None:
    specs = {name: team.spec for name, team in TEAMS.items()}
    for name, spec in specs.items():
        verdict = validate_teamquota(name, spec.to_k8s(), specs, cluster_gpus=256)
        assert verdict.allowed and not verdict.warnings, verdict
    for name, job in JOBS.items():
        namespace = str(job.metadata["namespace"])
        verdict = validate_gpujob(namespace, job.spec.to_k8s(), specs, largest_node_gpus=8)
        assert verdict.allowed, (name, verdict.errors)


@pytest.mark.parametrize("name", sorted(JOBS))
def test_builds_worker_pods_and_a_service(name: str) -> None:
    job = JOBS[name]
    metadata = {**job.metadata, "uid": "0000"}
    raw = {"apiVersion": job.api_version, "kind": job.kind, "metadata": metadata}
    _, workers = job.spec.worker_range
    pods = [
        worker_pod(
            raw,
            job.spec,
            team="t",
            index=index,
            world_size=workers,
            node=f"node-{index}",
            incarnation=1,
            resume_from="/ckpt/x",
        )
        for index in range(workers)
    ]
    first = pods[0]["spec"]["containers"][0]
    assert first["resources"]["limits"][GPU_RESOURCE] == str(job.spec.gpus_per_worker)
    assert len({pod["metadata"]["name"] for pod in pods}) == workers
    json.dumps(pods)
    assert headless_service(raw, job.spec, team="t")["spec"]["clusterIP"] == "None"


# --- examples/pytorch-ddp/train.py, for real (CPU, gloo) -----------------------------

TRAIN = EXAMPLES / "pytorch-ddp" / "train.py"
TORCH_PYTHON = os.environ.get("GPUPOOL_TORCH_PYTHON") or sys.executable


def torch_available() -> bool:
    if sys.executable == TORCH_PYTHON:
        return importlib.util.find_spec("torch") is not None
    return subprocess.run([TORCH_PYTHON, "-c", "import torch"], check=False).returncode == 0


def start_pod(rank: int, tmp: Path, port: int, *extra: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TORCH_PYTHON, str(TRAIN), "--nproc-per-node", "1", "--batch-size", "32", *extra],
        env={
            **os.environ,
            "PYTHONPATH": SOURCE_ROOT,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "GPUPOOL_JOB": "ddp-test",
            "GPUPOOL_TERMINATION_LOG": str(tmp / f"termination-log-{rank}"),
            "CHECKPOINT_DIR": str(tmp / "checkpoints"),
            "OMP_NUM_THREADS": "1",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_until_sigterm(
    tmp: Path, seconds: float, world: int = 2, **env: str
) -> tuple[list[str], str]:
    """`world` single-process "pods"; SIGTERM all after `seconds`; (outputs, location)."""
    port = free_port()
    pods = [
        start_pod(rank, tmp, port, "--step-seconds", "0.01", WORLD_SIZE=str(world), **env)
        for rank in range(world)
    ]
    try:
        time.sleep(seconds)
        for pod in pods:
            pod.send_signal(signal.SIGTERM)
        outputs = [pod.communicate(timeout=60)[0] for pod in pods]
    finally:
        for pod in pods:
            if pod.poll() is None:
                pod.kill()
                pod.wait()
    assert [pod.returncode for pod in pods] == [143] * world, outputs
    locations = {
        parse_termination_message((tmp / f"termination-log-{rank}").read_text())
        for rank in range(world)
    }
    assert len(locations) == 1, locations
    location = locations.pop()
    assert location is not None and Path(location).is_file()
    return outputs, location


@pytest.mark.timeout(240)
def test_pytorch_ddp_example_checkpoints_on_sigterm_and_resumes(tmp_path: Path) -> None:
    if not torch_available():
        pytest.skip(f"torch is not installed for {TORCH_PYTHON}")
    outputs, first = run_until_sigterm(tmp_path, 8)
    assert "fresh start" in outputs[0]
    assert "SIGTERM: checkpoint at step" in outputs[0]
    stopped_at = int(Path(first).stem.split("-")[1])
    assert stopped_at > 0

    outputs, second = run_until_sigterm(tmp_path, 8, GPUPOOL_RESUME_FROM=first)
    assert f"resuming from {first} at step {stopped_at}" in outputs[0]
    assert int(Path(second).stem.split("-")[1]) > stopped_at


@pytest.mark.timeout(300)
def test_pytorch_ddp_example_resumes_at_a_new_world_size(tmp_path: Path) -> None:
    """What an elastic resize does to the script: the checkpoint of 2 pods resumed by 1
    (a shrink), then by 3 (a grow), each rank with the new WORLD_SIZE."""
    if not torch_available():
        pytest.skip(f"torch is not installed for {TORCH_PYTHON}")
    _, first = run_until_sigterm(tmp_path, 8)
    outputs, second = run_until_sigterm(tmp_path, 8, world=1, GPUPOOL_RESUME_FROM=first)
    assert "world 1, " in outputs[0] and f"resuming from {first}" in outputs[0]
    outputs, third = run_until_sigterm(tmp_path, 8, world=3, GPUPOOL_RESUME_FROM=second)
    assert "world 3, " in outputs[0] and f"resuming from {second}" in outputs[0]
    assert int(Path(third).stem.split("-")[1]) > int(Path(second).stem.split("-")[1])


def wait_listening(port: int, seconds: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {host}:{port} after {seconds}s")


class Kubelet:
    """Stands in for the API server + kubelet: a pod deletion sends SIGTERM."""

    def __init__(self, processes: dict[str, subprocess.Popen[str]]) -> None:
        self.processes = processes
        self.deleted: list[tuple[str, int | None]] = []

    async def delete(self, resource: Any, name: str, namespace: Any = None, **options: Any) -> None:
        self.deleted.append((name, options.get("grace_period_seconds")))
        self.processes[name].send_signal(signal.SIGTERM)


@pytest.mark.timeout(240)
async def test_elastic_example_answers_gpupool_http_hook(tmp_path: Path) -> None:
    if not torch_available():
        pytest.skip(f"torch is not installed for {TORCH_PYTHON}")
    # Each worker is a "pod" with its own loopback IP; gpupool posts to that IP and the
    # port of the spec, the same for every worker.
    rendezvous, port = free_port(), free_port()
    ips = {0: "127.0.0.2", 1: "127.0.0.3"}
    processes = {
        f"ddp-{rank}": start_pod(
            rank,
            tmp_path,
            rendezvous,
            "--step-seconds",
            "0.01",
            "--checkpoint-host",
            ips[rank],
            GPUPOOL_CHECKPOINT_MODE="httpPost",
            GPUPOOL_CHECKPOINT_PORT=str(port),
            GPUPOOL_CHECKPOINT_PATH="/checkpoint",
            GPUPOOL_CHECKPOINT_TIMEOUT="30",
        )
        for rank in (0, 1)
    }
    try:
        for ip in ips.values():
            await asyncio.to_thread(wait_listening, port, 90, ip)
        pods = [
            {
                "metadata": {
                    "name": f"ddp-{rank}",
                    "uid": f"uid-{rank}",
                    "labels": {LABEL_WORKER_INDEX: str(rank)},
                },
                "status": {"podIP": ips[rank]},
            }
            for rank in (0, 1)
        ]
        hook = CheckpointHook.model_validate(
            {"mode": "httpPost", "timeoutSeconds": 30, "httpPost": {"port": port}}
        )
        kubelet = Kubelet(processes)
        outcome = await request_checkpoint(
            kubelet, namespace="ns", job_name="ddp", pods=pods, hook=hook, now=time.monotonic
        )
        outputs = [
            await asyncio.to_thread(process.communicate, timeout=60)
            for process in processes.values()
        ]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    assert outcome.outcome == "succeeded", (outcome, outputs)
    assert outcome.location is not None and Path(outcome.location).is_file()
    assert sorted(kubelet.deleted) == [("ddp-0", 5), ("ddp-1", 5)]
    assert [process.returncode for process in processes.values()] == [143, 143]
