"""The demo's story, as manifests and the conditions that move it on.

4 fake nodes × 8 GPUs in 2 racks, three teams, and a neighbour:

- `llm-gateway`, an inference Deployment of the platform team that does not go through
  gpupool, is placed by kube-scheduler and holds 4 GPUs of one node for the whole
  story: gpupool counts them ("not managed"), never places onto them, never takes them.
- `research` (guaranteed 8, may borrow up to 32, idle reclaim enforced after 1 minute)
  starts 8-GPU training jobs while nobody else needs the GPUs: it borrows what is idle.
  One of them, `train-1`, is stuck (a hung data loader: 3% GPU utilization).
- `serving` (guaranteed 8) runs a 4-GPU inference job inside its guarantee.
- `train-1` has been idle for a minute while `train-4` waits: it is checkpointed and
  requeued, and its GPUs go to `train-4`.
- `vision` (guaranteed 16) arrives with a 2×8 DDP job: research's borrowed jobs are
  checkpointed (SIGTERM; the workload writes where it saved) and requeued; vision
  runs within seconds.
- vision's job finishes: research borrows the free GPUs again and its requeued jobs
  resume from their checkpoints (`GPUPOOL_RESUME_FROM`).

Every pod of the fake workloads is played by kwok (`gpupool.devcluster` Stages): the
fake-checkpoint annotation is what the "training script" writes to its termination
message on SIGTERM, the fake-utilization annotation is what the fake node agents
report for its GPUs, the fake-duration is when it finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
GROUP = "gpupool.io/v1alpha1"


@dataclass(frozen=True)
class TeamSpec:
    name: str
    guaranteed: int
    max_gpus: int
    idle_enforced: bool = False

    @property
    def namespace(self) -> str:
        return f"{self.name}-jobs"

    def namespace_manifest(self) -> JSON:
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}

    def manifest(self) -> JSON:
        spec: JSON = {
            "namespaces": [self.namespace],
            "guaranteedGPUs": self.guaranteed,
            "maxGPUs": self.max_gpus,
            "weight": 1,
        }
        if self.idle_enforced:
            spec["idleReclaim"] = {"utilizationBelow": 10, "forMinutes": 1, "mode": "enforce"}
        return {
            "apiVersion": GROUP,
            "kind": "TeamQuota",
            "metadata": {"name": self.name},
            "spec": spec,
        }


@dataclass(frozen=True)
class JobSpec:
    team: TeamSpec
    name: str
    workers: int = 1
    gpus_per_worker: int = 8
    utilization: str = "90"
    duration: str | None = None
    topology: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.team.namespace}/{self.name}"

    def manifest(self) -> JSON:
        annotations = {
            "gpupool.io/fake-utilization": self.utilization,
            "gpupool.io/fake-checkpoint": f"s3://ckpt/{self.team.name}/{self.name}/latest",
            **self.annotations,
        }
        if self.duration is not None:
            annotations["gpupool.io/fake-duration"] = self.duration
        spec: JSON = {
            "gpusPerWorker": self.gpus_per_worker,
            "workers": self.workers,
            "checkpoint": {"mode": "signal", "timeoutSeconds": 30},
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "containers": [
                        {
                            "name": "train",
                            "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
                            "command": ["python", "/app/train.py"],
                        }
                    ]
                },
            },
        }
        if self.topology is not None:
            spec["placement"] = {"topology": self.topology, "required": False}
        return {
            "apiVersion": GROUP,
            "kind": "GPUJob",
            "metadata": {"name": self.name, "namespace": self.team.namespace},
            "spec": spec,
        }


@dataclass(frozen=True)
class ServingSpec:
    """A Deployment outside gpupool (no TeamQuota owns its namespace)."""

    namespace: str
    name: str
    gpus: int

    def namespace_manifest(self) -> JSON:
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}

    def manifest(self) -> JSON:
        labels = {"app": self.name}
        container = {
            "name": "serve",
            "image": "vllm/vllm-openai:v0.6.3",
            "resources": {"limits": {"nvidia.com/gpu": str(self.gpus)}},
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {"gpupool.io/gpu-node": "true"},
                        "containers": [container],
                    },
                },
            },
        }


GATEWAY = ServingSpec("platform", "llm-gateway", gpus=4)
RESEARCH = TeamSpec("research", guaranteed=8, max_gpus=32, idle_enforced=True)
SERVING = TeamSpec("serving", guaranteed=8, max_gpus=16)
VISION = TeamSpec("vision", guaranteed=16, max_gpus=32)
TEAMS = (RESEARCH, SERVING, VISION)

TRAIN_1 = JobSpec(RESEARCH, "train-1", utilization="3")
TRAIN_2 = JobSpec(RESEARCH, "train-2")
TRAIN_3 = JobSpec(RESEARCH, "train-3")
TRAIN_4 = JobSpec(RESEARCH, "train-4")
CHAT = JobSpec(SERVING, "chat-inference", gpus_per_worker=4, utilization="60")
RESNET = JobSpec(VISION, "resnet-ddp", workers=2, duration="45s", topology="rack")
RESEARCH_JOBS = (TRAIN_1, TRAIN_2, TRAIN_3, TRAIN_4)


def phase(job: JSON) -> str:
    return str((job.get("status") or {}).get("phase") or "Pending")
