"""An operator's scheduling loop on an in-memory API server with a fake clock: the
world the loop and metrics tests drive (fixture `world` in conftest.py)."""

from __future__ import annotations

from typing import Any

from gpupool.controller.loop import Scheduler
from gpupool.controller.settings import OperatorConfig
from gpupool.k8s import EVENTS, PODS
from gpupool.k8s.events import EventRecorder
from gpupool.planner import PlannerConfig

from .builders import make_job
from .fakes import FakeClock, FakeKube, FakeSources

JSON = dict[str, Any]


def node(name: str, gpus: int = 8) -> JSON:
    return {
        "metadata": {"name": name},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def team(name: str, guaranteed: int) -> JSON:
    return {
        "metadata": {"name": name},
        "spec": {"namespaces": [name], "guaranteedGPUs": guaranteed},
    }


def job(key: str, *, gpus: int = 8, workers: int = 1, **spec: Any) -> JSON:
    body = make_job(key).gpus(gpus).workers(workers).spec(**spec).raw()
    del body["metadata"]["uid"], body["metadata"]["resourceVersion"]
    return body


class World:
    def __init__(self) -> None:
        self.kube = FakeKube()
        self.clock = FakeClock()
        self.recorder = EventRecorder(self.kube, instance="test")  # type: ignore[arg-type]
        self.scheduler = self._new_scheduler()

    def _new_scheduler(self) -> Scheduler:
        return Scheduler(
            self.kube,  # type: ignore[arg-type]
            FakeSources(self.kube),
            self.recorder,
            config=OperatorConfig(peering_name="", admitted_status_delay_seconds=0),
            planner_config=PlannerConfig(min_runtime_seconds=0),
            clock=self.clock,
        )

    async def restart(self) -> None:
        """A new operator process: empty cache and ledgers, same cluster."""
        await self.scheduler.executor.cancel()
        self.scheduler = self._new_scheduler()

    async def cycle(self, seconds: float = 1.0) -> None:
        self.clock.advance(seconds)
        await self.scheduler.cycle()
        await self.scheduler.drain()
        await self.recorder.flush()

    def pods(self, namespace: str | None = None) -> list[JSON]:
        return [
            pod
            for pod in self.kube.items(PODS)
            if namespace is None or pod["metadata"]["namespace"] == namespace
        ]

    def pods_of(self, key: str) -> list[JSON]:
        """The pods of GPUJob `namespace/name`."""
        namespace, _, name = key.partition("/")
        return [
            pod
            for pod in self.pods(namespace)
            if pod["metadata"]["labels"].get("gpupool.io/job") == name
        ]

    def run_pods(self) -> None:
        """What the kubelet (kwok) does: pods start running."""
        for pod in self.pods():
            status = pod.setdefault("status", {})
            if status.get("phase") not in ("Succeeded", "Failed"):
                status["phase"] = "Running"

    def status(self, key: str) -> JSON:
        namespace, _, name = key.partition("/")
        status: JSON = self.kube.objects[("gpujobs", namespace, name)].get("status", {})
        return status

    def condition(self, key: str, type_: str) -> tuple[str, str]:
        found = next(c for c in self.status(key)["conditions"] if c["type"] == type_)
        return found["status"], found["reason"]

    def events(self, reason: str) -> list[str]:
        return [e["note"] for e in self.kube.items(EVENTS) if e["reason"] == reason]
