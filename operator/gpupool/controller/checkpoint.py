"""The checkpoint hook protocol: ask a job's workers to save their work, then take the pods.

`request_checkpoint` runs the job's hook with its timeout and always ends with the
worker pods deleted (or being deleted): the hook has its time, no more. Modes:

- `signal` (the default mode of a hook): graceful delete of every worker with grace
  period = the hook timeout, so the kubelet sends SIGTERM now and SIGKILL at the
  deadline. The workload writes its checkpoint location to its termination message
  (`gpupool.workload` does it); gpupool reads it from the pods' container statuses.
  It watches the pods rather than polling them: the kubelet deletes a pod as soon as
  its containers have stopped, so the status carrying the message may exist for only
  a moment; the watch delivers it (and the final state on DELETED). If the watch
  fails, it falls back to listing every 0.5 s. The wait ends when a location shows
  up (worker 0's when several arrive together), when every worker pod is gone, or at
  the deadline plus a short margin for the kubelet to report the final status.
  A watch holds one of the API client's connections for the whole hook, so at most
  `MAX_CONCURRENT_WATCHES` hooks watch at once; in a larger reclaim burst the others
  list instead (the operator's own pod index still sees a message a list misses).
- `httpPost`: POST `http://<podIP>:<port><path>` to every worker at once, each with
  what is left of the timeout; the JSON reply `{"checkpoint": "<location>"}` of
  worker 0, or else of the first worker that answered, is the location. The caller's
  `persist` runs with it before any pod is deleted (an operator killed in between still
  knows where the job saved). Then the pods are deleted: with a 5 s grace period
  when a location came back (the state is saved; the short grace only lets the
  process exit cleanly), else 30 s (a last
  chance for a SIGTERM handler to save). Never 0: a grace-0 delete removes the pod
  object before the kubelet has stopped the containers, and gpupool could bind a new
  worker to GPUs that are still in use.
  The hook goes to the job's own pods only: their IP, the port of the spec. (A pod
  annotation once overrode the address: any user could make the operator POST to any
  host and read the reply back from the job's status.) Test setups whose pods have IPs
  nobody listens on give the operator an `address` instead (GPUPOOL_CHECKPOINT_ADDRESS).
  A reply is read up to `MAX_REPLY_BYTES`; only its `checkpoint` field is kept, and
  neither the reply nor anything else it says reaches status or Events.
- no hook: `skipped`; the pods are deleted with their own grace period and the job
  resumes from the last checkpoint it reported, if any.

A hook that fails or times out is reported in the outcome and eviction proceeds.
Every API call goes through the `gpupool.k8s` client; every wait is bounded.
Pods are matched and deleted by uid, so a newer pod with the same name is never hit;
the signal mode watches the job's pods by the `gpupool.io/job` label that
`manifests.worker_pod` sets (pods without it: the whole namespace).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp

from gpupool.api import CheckpointHook
from gpupool.api.bounds import CHECKPOINT_MAX_LENGTH, checkpoint_location
from gpupool.controller.manifests import LABEL_JOB, LABEL_WORKER_INDEX, job_selector, label_value
from gpupool.controller.termination import checkpoint_from_pod
from gpupool.k8s import PODS, ApiError, Resource

JSON = dict[str, Any]
Outcome = Literal["succeeded", "failed", "timeout", "skipped"]
Source = Literal["hook", "terminationMessage", "unknown"]

POLL_INTERVAL_S = 0.5
# A reply `{"checkpoint": "<location of at most 1,024 characters>"}` fits many times over.
MAX_REPLY_BYTES = 16 * 1024
# After SIGKILL at the deadline the kubelet still has to report the final status.
DEADLINE_MARGIN_S = 5.0
GRACE_AFTER_SAVED_S = 5
GRACE_AFTER_FAILED_HOOK_S = 30
# Well below the client's connection pool (64), which admissions and status need too.
MAX_CONCURRENT_WATCHES = 16
_watches_open = 0


@dataclass(frozen=True)
class CheckpointOutcome:
    """What the hook achieved; `location` goes to `status.lastCheckpoint` when set."""

    outcome: Outcome
    location: str | None
    source: Source
    duration_s: float
    message: str


class PodApi(Protocol):
    """The `KubeClient` methods the protocol uses (a fake implements them in tests)."""

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> JSON: ...

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        missing_ok: bool = True,
    ) -> JSON | None: ...

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[JSON]: ...


async def request_checkpoint(
    client: PodApi,
    *,
    namespace: str,
    job_name: str,
    pods: Sequence[Mapping[str, Any]],
    hook: CheckpointHook | None,
    now: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    address: str | None = None,
    persist: Callable[[str], Awaitable[object]] | None = None,
) -> CheckpointOutcome:
    """Run the job's checkpoint hook on its worker `pods`, then have them deleted.

    `now` is a monotonic clock in seconds; `sleep` paces the signal mode's wait. Both
    are injected so tests run the whole protocol on a fake clock. `address` (host:port,
    test setups only) replaces every pod's IP and port for the httpPost hook.
    `persist` records a location the hook returned before the pods are deleted
    (httpPost; in signal mode the location only exists once the pods are being
    deleted).
    """
    started = now()
    if not pods:
        return CheckpointOutcome("skipped", None, "unknown", 0.0, "no worker pods to checkpoint")
    if hook is None:
        failures = await _delete_all(client, namespace, pods, None)
        return CheckpointOutcome(
            outcome="skipped",
            location=None,
            source="unknown",
            duration_s=now() - started,
            message=_join(
                "no checkpoint hook: pods deleted with their own grace period; the job "
                "resumes from its last reported checkpoint",
                *failures,
            ),
        )
    if hook.mode == "httpPost":
        return await _http_post(
            client, namespace, job_name, pods, hook, now, started, address, persist
        )
    return await _signal(client, namespace, job_name, pods, hook, now, sleep, started)


async def delete_worker_pods(
    client: PodApi,
    namespace: str,
    pods: Sequence[Mapping[str, Any]],
    grace_seconds: int | None,
) -> None:
    """Delete the pods (by uid; None: their own grace period), all of them at once.

    Pods already gone, or replaced by a newer pod of the same name, are skipped. The
    first other API error is raised after every deletion has been attempted.
    """
    errors: list[ApiError] = []
    await _delete_all(client, namespace, pods, grace_seconds, errors)
    if errors:
        raise errors[0]


def _name(pod: Mapping[str, Any]) -> str:
    name: str = pod["metadata"]["name"]
    return name


def _uid(pod: Mapping[str, Any]) -> str | None:
    uid: str | None = pod["metadata"].get("uid")
    return uid


def _is_worker_zero(pod: Mapping[str, Any]) -> bool:
    return (pod["metadata"].get("labels") or {}).get(LABEL_WORKER_INDEX) == "0"


def _ordered(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Worker 0 first (by label, else the first pod given), then the others in order."""
    return sorted(pods, key=lambda pod: not _is_worker_zero(pod))


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


async def _delete_all(
    client: PodApi,
    namespace: str,
    pods: Sequence[Mapping[str, Any]],
    grace_seconds: int | None,
    errors: list[ApiError] | None = None,
) -> list[str]:
    """Delete every pod concurrently; the failures, as messages (and into `errors`)."""

    async def delete(pod: Mapping[str, Any]) -> str:
        try:
            await client.delete(
                PODS,
                _name(pod),
                namespace,
                grace_period_seconds=grace_seconds,
                uid=_uid(pod),
            )
        except ApiError as error:
            if errors is not None:
                errors.append(error)
            return f"deleting pod {_name(pod)} failed: {error}"
        return ""

    results = await asyncio.gather(*(delete(pod) for pod in pods))
    return [result for result in results if result]


class _Workers:
    """What is known about the worker pods during a signal hook, fed by watch or list."""

    def __init__(self, pods: Sequence[Mapping[str, Any]]) -> None:
        self.order = [_name(pod) for pod in _ordered(pods)]
        self.uids = {_name(pod): _uid(pod) for pod in pods}
        self.gone: set[str] = set()
        self.locations: dict[str, str] = {}

    def _ours(self, pod: Mapping[str, Any]) -> str | None:
        name = _name(pod)
        if name not in self.uids:
            return None
        expected = self.uids[name]
        return name if expected is None or expected == _uid(pod) else None

    def observe(self, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        name = self._ours(pod)
        if name is None:
            return
        location = checkpoint_from_pod(pod)
        if location is not None:
            self.locations.setdefault(name, location)
        if deleted:
            self.gone.add(name)

    def observe_listing(self, items: Sequence[Mapping[str, Any]]) -> None:
        present = set()
        for pod in items:
            name = self._ours(pod)
            if name is not None:
                present.add(name)
                self.observe(pod)
        self.gone.update(set(self.uids) - present)

    def location(self) -> tuple[str, str] | None:
        """(pod, location): worker 0's if it has one, else the first other worker's."""
        for name in self.order:
            if name in self.locations:
                return name, self.locations[name]
        return None

    def all_gone(self) -> bool:
        return self.gone >= set(self.uids)


def _selector(job_name: str, pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The job's label selector; None (the whole namespace) for pods without the label."""
    value = label_value(job_name)
    labelled = all((pod["metadata"].get("labels") or {}).get(LABEL_JOB) == value for pod in pods)
    return job_selector(job_name) if labelled else None


async def _watch(
    client: PodApi,
    namespace: str,
    selector: str | None,
    resource_version: str | None,
    seconds: int,
    workers: _Workers,
) -> None:
    """Feed pod events to `workers` until the server ends the watch (or it fails)."""
    async for event in client.watch(
        PODS,
        namespace,
        resource_version=resource_version,
        label_selector=selector,
        timeout_seconds=seconds,
    ):
        kind = event.get("type")
        pod = event.get("object") or {}
        if kind in ("ADDED", "MODIFIED", "DELETED") and pod.get("metadata"):
            workers.observe(pod, deleted=kind == "DELETED")


async def _list_into(
    client: PodApi, namespace: str, selector: str | None, workers: _Workers
) -> str | None:
    """List the job's pods into `workers`; the list's resourceVersion."""
    listing = await client.list(PODS, namespace, label_selector=selector)
    workers.observe_listing(listing.get("items") or ())
    version: str | None = (listing.get("metadata") or {}).get("resourceVersion")
    return version


async def _signal(
    client: PodApi,
    namespace: str,
    job_name: str,
    pods: Sequence[Mapping[str, Any]],
    hook: CheckpointHook,
    now: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    started: float,
) -> CheckpointOutcome:
    timeout = hook.timeout_seconds
    give_up = started + timeout + DEADLINE_MARGIN_S
    selector = _selector(job_name, pods)
    workers = _Workers(pods)
    failures: list[str] = []
    list_error = ""

    def outcome(kind: Outcome, message: str) -> CheckpointOutcome:
        found = workers.location()
        return CheckpointOutcome(
            outcome=kind,
            location=found[1] if found else None,
            source="terminationMessage" if found else "unknown",
            duration_s=now() - started,
            message=_join(message, *failures, list_error),
        )

    # List first: its resourceVersion starts the watch, so no event after it is missed.
    version: str | None = None
    try:
        version = await _list_into(client, namespace, selector, workers)
    except ApiError as error:
        list_error = f"listing pods failed: {error}"
    global _watches_open
    watcher: asyncio.Task[None] | None = None
    if version is not None and _watches_open < MAX_CONCURRENT_WATCHES:
        _watches_open += 1
        watcher = asyncio.create_task(
            _watch(client, namespace, selector, version, math.ceil(give_up - now()) + 1, workers)
        )
    try:
        failures = await _delete_all(client, namespace, pods, timeout)
        if pods and len(failures) == len(pods):
            return outcome("failed", "no worker pod could be deleted, so none was signalled")
        # A hard bound on top of the clock, in case `now` does not advance.
        for _ in range(math.ceil((timeout + DEADLINE_MARGIN_S) / POLL_INTERVAL_S) + 2):
            found = workers.location()
            if found is not None:
                return outcome("succeeded", f"pod {found[0]} wrote checkpoint {found[1]}")
            if workers.all_gone():
                return outcome(
                    "failed",
                    "the worker pods exited without writing a checkpoint location to their "
                    "termination message",
                )
            remaining = give_up - now()
            if remaining <= 0:
                break
            await sleep(min(POLL_INTERVAL_S, remaining))
            if watcher is None or watcher.done():
                try:
                    await _list_into(client, namespace, selector, workers)
                    list_error = ""
                except ApiError as error:
                    list_error = f"listing pods failed: {error}"
        return outcome(
            "timeout",
            f"no checkpoint location in the workers' termination messages within {timeout}s "
            "(SIGKILL at the deadline)",
        )
    finally:
        if watcher is not None:
            _watches_open -= 1
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)


@dataclass(frozen=True)
class _Reply:
    pod: str
    location: str | None = None
    error: str = ""
    timed_out: bool = False


def _endpoint(pod: Mapping[str, Any], port: int, path: str, address: str | None) -> str | None:
    if not address:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    return f"http://{address}{path}"


async def _post_one(
    session: aiohttp.ClientSession,
    pod: Mapping[str, Any],
    url: str | None,
    body: JSON,
    seconds: float,
    answered: list[str],
) -> _Reply:
    name = _name(pod)
    if url is None:
        return _Reply(name, error="the pod has no IP yet")
    if seconds <= 0:
        return _Reply(name, error="no time left", timed_out=True)
    try:
        async with session.post(
            url, json=body, timeout=aiohttp.ClientTimeout(total=seconds), allow_redirects=False
        ) as response:
            payload = await response.content.read(MAX_REPLY_BYTES + 1)
    except TimeoutError:
        return _Reply(name, error=f"no answer from {url} within {seconds:.0f}s", timed_out=True)
    except aiohttp.ClientError as error:
        return _Reply(name, error=f"POST {url} failed: {type(error).__name__}")
    answered.append(name)
    # What the reply says is never repeated: only its `checkpoint` field is kept.
    if response.status >= 300:
        return _Reply(name, error=f"POST {url} answered HTTP {response.status}")
    if len(payload) > MAX_REPLY_BYTES:
        return _Reply(name, error=f"POST {url}: the reply is longer than {MAX_REPLY_BYTES} bytes")
    try:
        document = json.loads(payload)
    except ValueError:
        document = None
    location = checkpoint_location(
        document.get("checkpoint") if isinstance(document, dict) else None
    )
    if location is None:
        return _Reply(
            name,
            error=f'POST {url}: the reply is not JSON {{"checkpoint": "<location>"}} '
            f"with a location of at most {CHECKPOINT_MAX_LENGTH} printable characters",
        )
    return _Reply(name, location=location)


async def _http_post(
    client: PodApi,
    namespace: str,
    job_name: str,
    pods: Sequence[Mapping[str, Any]],
    hook: CheckpointHook,
    now: Callable[[], float],
    started: float,
    address: str | None,
    persist: Callable[[str], Awaitable[object]] | None,
) -> CheckpointOutcome:
    settings = hook.http_post
    deadline = started + hook.timeout_seconds
    replies: list[_Reply] = []
    answered: list[str] = []
    if settings is None:
        replies = [_Reply(_name(pod), error="the hook has no httpPost port") for pod in pods]
    else:
        seconds = deadline - now()
        async with aiohttp.ClientSession() as session:
            replies = list(
                await asyncio.gather(
                    *(
                        _post_one(
                            session,
                            pod,
                            _endpoint(pod, settings.port, settings.path, address),
                            {
                                "job": job_name,
                                "namespace": namespace,
                                "pod": _name(pod),
                                "timeoutSeconds": max(math.floor(seconds), 0),
                            },
                            seconds,
                            answered,
                        )
                        for pod in pods
                    )
                )
            )
    by_pod = {reply.pod: reply for reply in replies}
    zero = _name(_ordered(pods)[0]) if pods else None
    saved = [name for name in answered if by_pod[name].location is not None]
    chosen = zero if zero is not None and by_pod[zero].location is not None else None
    chosen = chosen or (saved[0] if saved else None)
    location = by_pod[chosen].location if chosen else None
    problems = [f"pod {reply.pod}: {reply.error}" for reply in replies if reply.error]

    if location is not None and persist is not None:
        await persist(location)
    grace = GRACE_AFTER_SAVED_S if location is not None else GRACE_AFTER_FAILED_HOOK_S
    problems.extend(await _delete_all(client, namespace, pods, grace))
    if location is not None:
        kind: Outcome = "succeeded"
        summary = f"pod {chosen} saved checkpoint {location}"
    elif any(reply.timed_out for reply in replies):
        kind = "timeout"
        summary = f"no checkpoint within {hook.timeout_seconds}s"
    else:
        kind = "failed"
        summary = "no worker returned a checkpoint"
    return CheckpointOutcome(
        outcome=kind,
        location=location,
        source="hook" if location is not None else "unknown",
        duration_s=now() - started,
        message=_join(summary, *problems),
    )
