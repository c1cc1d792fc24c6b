"""The checkpoint hook protocol, against an in-process fake of the pod API.

`signal` runs on a fake clock (no real waiting); `httpPost` talks to a real aiohttp
server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gpupool.api import CheckpointHook
from gpupool.controller import checkpoint
from gpupool.controller.checkpoint import (
    DEADLINE_MARGIN_S,
    GRACE_AFTER_FAILED_HOOK_S,
    GRACE_AFTER_SAVED_S,
    CheckpointOutcome,
    PodApi,
    delete_worker_pods,
    request_checkpoint,
)
from gpupool.controller.manifests import LABEL_JOB, LABEL_WORKER_INDEX
from gpupool.k8s import PODS, ApiError, Resource

JSON = dict[str, Any]
NAMESPACE = "team-a"
JOB = "llm"


def make_pod(index: int, *, job: str = JOB, uid: str | None = None) -> JSON:
    return {
        "metadata": {
            "name": f"{job}-0-{index}",
            "namespace": NAMESPACE,
            "uid": uid or f"uid-{index}",
            "labels": {LABEL_JOB: job, LABEL_WORKER_INDEX: str(index)},
            "resourceVersion": "1",
        },
        "spec": {"containers": [{"name": "train"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "train", "state": {"running": {}}}],
        },
    }


def terminated(pod: JSON, message: str | None) -> JSON:
    result = copy.deepcopy(pod)
    state: JSON = {"exitCode": 143, "reason": "Error"}
    if message is not None:
        state["message"] = message
    result["status"]["containerStatuses"][0]["state"] = {"terminated": state}
    return result


class FakeClock:
    """Monotonic fake time; `sleep` advances it and runs what was scheduled meanwhile."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.actions: list[tuple[float, Callable[[], None]]] = []

    def now(self) -> float:
        return self.time

    def at(self, offset: float, action: Callable[[], None]) -> None:
        self.actions.append((self.time + offset, action))
        self.actions.sort(key=lambda item: item[0])

    async def sleep(self, seconds: float) -> None:
        self.time += seconds
        while self.actions and self.actions[0][0] <= self.time:
            self.actions.pop(0)[1]()
        # Let the watch task deliver what the actions produced.
        for _ in range(10):
            await asyncio.sleep(0)


@dataclass
class Deletion:
    name: str
    grace: int | None
    uid: str | None


@dataclass
class FakePods:
    """The three pod verbs `request_checkpoint` uses, on an in-memory store."""

    pods: dict[str, JSON] = field(default_factory=dict)
    deletions: list[Deletion] = field(default_factory=list)
    failing_deletes: dict[str, ApiError] = field(default_factory=dict)
    watch_error: ApiError | None = None
    list_calls: int = 0
    version: int = 100
    watchers: list[asyncio.Queue[JSON]] = field(default_factory=list)

    def add(self, *pods: JSON) -> None:
        for pod in pods:
            self.pods[pod["metadata"]["name"]] = copy.deepcopy(pod)

    def _event(self, kind: str, pod: JSON) -> None:
        self.version += 1
        pod = copy.deepcopy(pod)
        pod["metadata"]["resourceVersion"] = str(self.version)
        for queue in self.watchers:
            queue.put_nowait({"type": kind, "object": pod})

    def update(self, pod: JSON) -> None:
        """The kubelet reports a new status."""
        self.pods[pod["metadata"]["name"]] = copy.deepcopy(pod)
        self._event("MODIFIED", pod)

    def remove(self, name: str, final: JSON | None = None) -> None:
        """The kubelet confirms the deletion (the object's last state in the event)."""
        pod = self.pods.pop(name)
        self._event("DELETED", final or pod)

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON:
        assert resource == PODS and namespace == NAMESPACE
        self.list_calls += 1
        items = list(self.pods.values())
        if label_selector:
            key, _, value = label_selector.partition("=")
            items = [pod for pod in items if pod["metadata"]["labels"].get(key) == value]
        return {
            "metadata": {"resourceVersion": str(self.version)},
            "items": copy.deepcopy(items),
        }

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        missing_ok: bool = True,
    ) -> JSON | None:
        assert resource == PODS and namespace == NAMESPACE
        self.deletions.append(Deletion(name, grace_period_seconds, uid))
        if name in self.failing_deletes:
            raise self.failing_deletes[name]
        pod = self.pods.get(name)
        if pod is None or (uid is not None and pod["metadata"]["uid"] != uid):
            return None
        pod["metadata"]["deletionTimestamp"] = "now"
        self._event("MODIFIED", pod)
        return copy.deepcopy(pod)

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[JSON]:
        assert resource_version is not None
        if self.watch_error is not None:
            raise self.watch_error
        queue: asyncio.Queue[JSON] = asyncio.Queue()
        self.watchers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self.watchers.remove(queue)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> FakePods:
    return FakePods()


SIGNAL = CheckpointHook(mode="signal", timeout_seconds=60)


async def run(
    api: FakePods, clock: FakeClock, pods: list[JSON], hook: CheckpointHook | None = SIGNAL
) -> CheckpointOutcome:
    started = time.monotonic()
    outcome = await request_checkpoint(
        api,
        namespace=NAMESPACE,
        job_name=JOB,
        pods=pods,
        hook=hook,
        now=clock.now,
        sleep=clock.sleep,
    )
    assert time.monotonic() - started < 2, "the fake clock must not cost real time"
    assert not api.watchers, "the watch must be stopped"
    return outcome


async def test_signal_location_appears(api: FakePods, clock: FakeClock) -> None:
    pods = [make_pod(0), make_pod(1)]
    api.add(*pods)
    clock.at(3.2, lambda: api.update(terminated(pods[0], '{"checkpoint": "s3://b/step-9"}')))
    outcome = await run(api, clock, pods)
    assert outcome.outcome == "succeeded"
    assert outcome.location == "s3://b/step-9"
    assert outcome.source == "terminationMessage"
    assert 3.2 <= outcome.duration_s <= 3.2 + 0.5
    assert "llm-0-0" in outcome.message
    assert api.list_calls == 1, "the watch delivers the status; no polling"
    assert sorted((d.name, d.grace, d.uid) for d in api.deletions) == [
        ("llm-0-0", 60, "uid-0"),
        ("llm-0-1", 60, "uid-1"),
    ]


async def test_signal_location_only_in_the_final_deleted_state(
    api: FakePods, clock: FakeClock
) -> None:
    pods = [make_pod(0)]
    api.add(*pods)
    clock.at(1, lambda: api.remove("llm-0-0", final=terminated(pods[0], "/ckpt/step-3")))
    outcome = await run(api, clock, pods)
    assert (outcome.outcome, outcome.location) == ("succeeded", "/ckpt/step-3")


async def test_signal_never_answers_times_out_at_the_deadline(
    api: FakePods, clock: FakeClock
) -> None:
    pods = [make_pod(0), make_pod(1)]
    api.add(*pods)
    outcome = await run(api, clock, pods)
    assert outcome.outcome == "timeout"
    assert outcome.location is None
    assert outcome.source == "unknown"
    assert outcome.duration_s == pytest.approx(60 + DEADLINE_MARGIN_S)
    assert "60s" in outcome.message


async def test_signal_pods_gone_without_message_fail_early(api: FakePods, clock: FakeClock) -> None:
    pods = [make_pod(0), make_pod(1)]
    api.add(*pods)
    clock.at(2, lambda: api.remove("llm-0-0", final=terminated(pods[0], None)))
    clock.at(4, lambda: api.remove("llm-0-1", final=terminated(pods[1], "Traceback: boom")))
    outcome = await run(api, clock, pods)
    assert outcome.outcome == "failed"
    assert outcome.location is None
    assert outcome.duration_s == pytest.approx(4, abs=0.5)
    assert "without writing a checkpoint" in outcome.message


async def test_signal_any_worker_may_report(api: FakePods, clock: FakeClock) -> None:
    pods = [make_pod(0), make_pod(1)]
    api.add(*pods)
    clock.at(1, lambda: api.update(terminated(pods[1], '{"checkpoint": "/ckpt/from-1"}')))
    outcome = await run(api, clock, pods)
    assert (outcome.outcome, outcome.location) == ("succeeded", "/ckpt/from-1")


async def test_signal_prefers_worker_zero_when_both_report(api: FakePods, clock: FakeClock) -> None:
    pods = [make_pod(1), make_pod(0)]
    api.add(*pods)

    def both() -> None:
        api.update(terminated(pods[0], "/ckpt/from-1"))
        api.update(terminated(pods[1], "/ckpt/from-0"))

    clock.at(1, both)
    outcome = await run(api, clock, pods)
    assert outcome.location == "/ckpt/from-0"


async def test_signal_falls_back_to_listing_when_the_watch_fails(
    api: FakePods, clock: FakeClock
) -> None:
    api.watch_error = ApiError(500, "InternalError", "watch broken")
    pods = [make_pod(0)]
    api.add(*pods)
    clock.at(2, lambda: api.update(terminated(pods[0], "/ckpt/listed")))
    outcome = await run(api, clock, pods)
    assert (outcome.outcome, outcome.location) == ("succeeded", "/ckpt/listed")
    assert api.list_calls > 1


async def test_signal_lists_when_too_many_hooks_watch_already(
    api: FakePods, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "MAX_CONCURRENT_WATCHES", 0)
    pods = [make_pod(0)]
    api.add(*pods)
    clock.at(2, lambda: api.update(terminated(pods[0], "/ckpt/listed")))
    outcome = await run(api, clock, pods)
    assert (outcome.outcome, outcome.location) == ("succeeded", "/ckpt/listed")
    assert api.list_calls > 1
    assert checkpoint._watches_open == 0


async def test_concurrent_hooks_share_the_watch_budget(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "MAX_CONCURRENT_WATCHES", 2)
    apis = [FakePods() for _ in range(4)]
    pods = [make_pod(0) for _ in apis]
    for api, pod in zip(apis, pods, strict=True):
        api.add(pod)
        clock.at(3, lambda api=api, pod=pod: api.update(terminated(pod, "/ckpt/x")))
    outcomes = await asyncio.gather(
        *(
            request_checkpoint(
                api,
                namespace=NAMESPACE,
                job_name=JOB,
                pods=[pod],
                hook=SIGNAL,
                now=clock.now,
                sleep=clock.sleep,
            )
            for api, pod in zip(apis, pods, strict=True)
        )
    )
    assert [outcome.location for outcome in outcomes] == ["/ckpt/x"] * 4
    assert sorted(api.list_calls == 1 for api in apis) == [False, False, True, True]
    assert checkpoint._watches_open == 0


async def test_signal_ignores_a_newer_pod_with_the_same_name(
    api: FakePods, clock: FakeClock
) -> None:
    old = make_pod(0, uid="old")
    api.add(terminated(make_pod(0, uid="new"), "/ckpt/not-ours"))
    outcome = await run(api, clock, [old])
    assert outcome.outcome == "failed"
    assert outcome.location is None
    assert api.deletions == [Deletion("llm-0-0", 60, "old")]
    assert "llm-0-0" in api.pods, "the newer pod must survive"


async def test_signal_when_no_pod_can_be_deleted(api: FakePods, clock: FakeClock) -> None:
    pods = [make_pod(0)]
    api.add(*pods)
    api.failing_deletes["llm-0-0"] = ApiError(403, "Forbidden", "no delete for you")
    outcome = await run(api, clock, pods)
    assert outcome.outcome == "failed"
    assert "no delete for you" in outcome.message
    assert clock.time == 1000.0


async def test_signal_watches_the_namespace_for_unlabelled_pods(
    api: FakePods, clock: FakeClock
) -> None:
    pod = make_pod(0)
    pod["metadata"]["labels"] = {}
    api.add(pod)
    clock.at(1, lambda: api.update(terminated(pod, "/ckpt/unlabelled")))
    outcome = await run(api, clock, [pod])
    assert outcome.location == "/ckpt/unlabelled"


async def test_no_hook_is_skipped_and_pods_keep_their_grace(
    api: FakePods, clock: FakeClock
) -> None:
    pods = [make_pod(0), make_pod(1)]
    api.add(*pods)
    outcome = await run(api, clock, pods, hook=None)
    assert outcome.outcome == "skipped"
    assert outcome.location is None
    assert "last reported checkpoint" in outcome.message
    assert sorted((d.name, d.grace, d.uid) for d in api.deletions) == [
        ("llm-0-0", None, "uid-0"),
        ("llm-0-1", None, "uid-1"),
    ]


@pytest.mark.parametrize("hook", [SIGNAL, None])
async def test_no_pods_is_skipped(api: FakePods, clock: FakeClock, hook: CheckpointHook) -> None:
    outcome = await run(api, clock, [], hook=hook)
    assert (outcome.outcome, outcome.message) == ("skipped", "no worker pods to checkpoint")
    assert not api.deletions and api.list_calls == 0


async def test_delete_worker_pods_uses_uids_and_raises_after_trying_all(
    api: FakePods,
) -> None:
    pods = [make_pod(0), make_pod(1), make_pod(2)]
    api.add(*pods)
    await delete_worker_pods(api, NAMESPACE, pods, 0)
    assert [(d.name, d.grace, d.uid) for d in api.deletions] == [
        ("llm-0-0", 0, "uid-0"),
        ("llm-0-1", 0, "uid-1"),
        ("llm-0-2", 0, "uid-2"),
    ]
    api.deletions.clear()
    api.failing_deletes["llm-0-1"] = ApiError(500, "InternalError", "etcd is sad")
    with pytest.raises(ApiError, match="etcd is sad"):
        await delete_worker_pods(api, NAMESPACE, pods, None)
    assert len(api.deletions) == 3


# --- httpPost, against a real HTTP server on loopback --------------------------------

Behaviour = Callable[[web.Request, JSON], Awaitable[web.StreamResponse]]


def reply(status: int, body: Any) -> Behaviour:
    async def respond(request: web.Request, _: JSON) -> web.StreamResponse:
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type="application/json")

    return respond


def hang() -> Behaviour:
    async def respond(request: web.Request, _: JSON) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response(text="{}")

    return respond


@dataclass
class Workers:
    """The workers' checkpoint endpoints: one server, behaviour chosen per pod."""

    port: int
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[JSON] = field(default_factory=list)

    def pod(self, index: int, behaviour: Behaviour, *, ip: str = "127.0.0.1") -> JSON:
        """A worker pod whose IP is where this server listens (loopback)."""
        pod = make_pod(index)
        self.behaviour[pod["metadata"]["name"]] = behaviour
        pod["status"]["podIP"] = ip
        return pod

    def hook(self, timeout: int = 5) -> CheckpointHook:
        return http_hook(port=self.port, timeout=timeout)


@pytest.fixture
async def workers() -> Any:
    state: dict[str, Workers] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state["w"].requests.append({"path": request.path, **body})
        return await state["w"].behaviour[body["pod"]](request, body)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state["w"] = Workers(port)
    yield state["w"]
    await runner.cleanup()


def http_hook(port: int = 1, timeout: int = 5) -> CheckpointHook:
    return CheckpointHook.model_validate(
        {"mode": "httpPost", "timeoutSeconds": timeout, "httpPost": {"port": port, "path": "/ck"}}
    )


async def run_http(
    api: FakePods, pods: list[JSON], hook: CheckpointHook
) -> tuple[CheckpointOutcome, float]:
    api.add(*pods)
    started = time.monotonic()
    outcome = await request_checkpoint(
        api, namespace=NAMESPACE, job_name=JOB, pods=pods, hook=hook, now=time.monotonic
    )
    return outcome, time.monotonic() - started


def graces(api: FakePods) -> set[int | None]:
    return {deletion.grace for deletion in api.deletions}


async def test_http_success_prefers_worker_zero(api: FakePods, workers: Workers) -> None:
    async def slow_zero(request: web.Request, body: JSON) -> web.StreamResponse:
        await asyncio.sleep(0.2)
        return web.json_response({"checkpoint": "s3://b/zero"})

    pods = [workers.pod(1, reply(200, {"checkpoint": "s3://b/one"})), workers.pod(0, slow_zero)]
    outcome, _ = await run_http(api, pods, workers.hook())
    assert outcome.outcome == "succeeded"
    assert (outcome.location, outcome.source) == ("s3://b/zero", "hook")
    assert {r["path"] for r in workers.requests} == {"/ck"}
    assert {r["pod"] for r in workers.requests} == {"llm-0-0", "llm-0-1"}
    assert all(r["job"] == JOB and r["timeoutSeconds"] <= 5 for r in workers.requests)
    assert graces(api) == {GRACE_AFTER_SAVED_S}
    assert {deletion.uid for deletion in api.deletions} == {"uid-0", "uid-1"}


async def test_http_persists_the_location_before_any_pod_is_deleted(
    api: FakePods, workers: Workers
) -> None:
    """An operator killed between the delete and its status write would forget where the
    job saved: the caller's `persist` runs first, with the chosen location."""
    pods = [workers.pod(0, reply(200, {"checkpoint": "s3://b/zero"})), workers.pod(1, hang())]
    api.add(*pods)
    persisted: list[tuple[str, int]] = []

    async def persist(location: str) -> None:
        persisted.append((location, len(api.deletions)))

    outcome = await request_checkpoint(
        api,
        namespace=NAMESPACE,
        job_name=JOB,
        pods=pods,
        hook=workers.hook(timeout=1),
        now=time.monotonic,
        persist=persist,
    )
    assert outcome.location == "s3://b/zero"
    assert persisted == [("s3://b/zero", 0)]
    assert len(api.deletions) == 2


async def test_http_persists_nothing_when_no_worker_saved(api: FakePods, workers: Workers) -> None:
    pods = [workers.pod(0, reply(500, "disk full"))]
    api.add(*pods)
    persisted: list[str] = []

    async def persist(location: str) -> None:
        persisted.append(location)

    outcome = await request_checkpoint(
        api,
        namespace=NAMESPACE,
        job_name=JOB,
        pods=pods,
        hook=workers.hook(),
        now=time.monotonic,
        persist=persist,
    )
    assert outcome.outcome == "failed" and persisted == []
    assert len(api.deletions) == 1


async def test_http_first_answer_when_worker_zero_fails(api: FakePods, workers: Workers) -> None:
    pods = [
        workers.pod(0, reply(500, "disk full")),
        workers.pod(1, reply(200, {"checkpoint": "/c/1"})),
    ]
    outcome, _ = await run_http(api, pods, workers.hook())
    assert (outcome.outcome, outcome.location) == ("succeeded", "/c/1")
    # What an error reply says is never repeated (status, Events): only its code.
    assert "HTTP 500" in outcome.message and "disk full" not in outcome.message


async def test_http_goes_to_the_pod_ip_and_the_spec_port(api: FakePods, workers: Workers) -> None:
    pod = workers.pod(0, reply(200, {"checkpoint": "/c/ip"}))
    pod["metadata"]["annotations"] = {"gpupool.io/checkpoint-address": "127.0.0.1:9"}
    outcome, _ = await run_http(api, [pod], workers.hook())
    assert (outcome.outcome, outcome.location) == ("succeeded", "/c/ip")
    assert workers.requests[0]["path"] == "/ck"


async def test_the_operator_setting_replaces_the_address(api: FakePods, workers: Workers) -> None:
    pods = [workers.pod(0, reply(200, {"checkpoint": "/c/set"}), ip="192.0.2.7")]
    api.add(*pods)
    outcome = await request_checkpoint(
        api,
        namespace=NAMESPACE,
        job_name=JOB,
        pods=pods,
        hook=http_hook(port=1),
        now=time.monotonic,
        address=f"127.0.0.1:{workers.port}",
    )
    assert (outcome.outcome, outcome.location) == ("succeeded", "/c/set")


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (200, "not json", "not JSON"),
        (200, {"saved": True}, "not JSON"),
        (200, {"checkpoint": ""}, "not JSON"),
        (500, {"error": "boom"}, "HTTP 500"),
        (200, {"checkpoint": "s3://" + "x" * 2000}, "at most 1024 printable characters"),
        (200, {"checkpoint": "/c\n/1"}, "at most 1024 printable characters"),
        (200, {"checkpoint": "/c/1", "pad": "x" * 20_000}, "longer than 16384 bytes"),
    ],
)
async def test_http_failures(
    api: FakePods, workers: Workers, status: int, body: Any, words: str
) -> None:
    outcome, _ = await run_http(api, [workers.pod(0, reply(status, body))], workers.hook())
    assert outcome.outcome == "failed"
    assert outcome.location is None
    assert outcome.source == "unknown"
    assert words in outcome.message
    assert graces(api) == {GRACE_AFTER_FAILED_HOOK_S}


async def test_http_timeout_is_bounded_by_the_hook(api: FakePods, workers: Workers) -> None:
    pods = [workers.pod(0, hang()), workers.pod(1, reply(500, "no"))]
    outcome, elapsed = await run_http(api, pods, workers.hook(timeout=1))
    assert outcome.outcome == "timeout"
    assert 0.9 <= elapsed < 3
    assert "within 1s" in outcome.message
    assert len(api.deletions) == 2
    assert graces(api) == {GRACE_AFTER_FAILED_HOOK_S}


async def test_http_unreachable_and_ip_less_pods_fail(api: FakePods) -> None:
    unreachable = make_pod(0)
    unreachable["status"]["podIP"] = "127.0.0.1"
    no_ip = make_pod(1)
    outcome, _ = await run_http(api, [unreachable, no_ip], http_hook(port=9))
    assert outcome.outcome == "failed"
    assert "POST http://127.0.0.1:9/ck failed" in outcome.message
    assert "no IP" in outcome.message
    assert len(api.deletions) == 2


def test_fake_implements_every_verb_the_protocol_uses() -> None:
    verbs = [name for name in vars(PodApi) if not name.startswith("_")]
    assert sorted(verbs) == ["delete", "list", "watch"]
    assert all(callable(getattr(FakePods, verb)) for verb in verbs)
