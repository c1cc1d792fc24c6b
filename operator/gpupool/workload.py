"""The helper training scripts import: resume, checkpoint on SIGTERM, report checkpoints.

One module, standard library only: it runs inside training containers next to PyTorch,
not next to the operator, and it is not published on any package index. It reaches a
training pod as a file: the Helm chart ships it in the ConfigMap `gpupool-workload`
(Helm value `workload.namespaces`) and the examples mount it as
/opt/gpupool/gpupool/workload.py with PYTHONPATH=/opt/gpupool; or copy this file into
your image (`operator/gpupool/workload.py` in the repository). Either way the import is
the same:

    from gpupool.workload import Checkpointer, resume_from

    state = load(resume_from()) if resume_from() else fresh()
    checkpointer = Checkpointer(lambda: save(state)).install()   # SIGTERM: save, exit
    for step in ...:
        train_step()
        if step % 500 == 0:
            checkpointer.report(save(state))   # a node failure resumes from here

gpupool reads the location from the container's termination message (mode `signal`)
or from the reply of `serve_checkpoint_endpoint` (mode `httpPost`) and, while the job
runs, from the `gpupool.io/checkpoint` line every report prints to stderr (the node
agent reads the container's log), records it in the GPUJob's `status.lastCheckpoint`,
and passes it back as `GPUPOOL_RESUME_FROM`.

## Checkpoint on SIGTERM

gpupool's `signal` hook deletes the worker pods with a grace period equal to the
hook's timeout: SIGTERM now, SIGKILL at the deadline. `Checkpointer` turns the
SIGTERM into one call of the user's save function, writes the location it returns to
the container's termination-message file (the kubelet hands it to gpupool) and exits.

The exit status is 143 (128 + SIGTERM) by default, not 0: the worker was
interrupted, it did not finish, and a pod that exits 0 would read as a completed job
to anyone who sent the SIGTERM without gpupool (a node drain, say).

Every reported location is also printed to stderr as one line,
`gpupool.io/checkpoint {"checkpoint": "<location>"}`: gpupool's node agent reads it
from the container's log (the container runtime stamps it with the time), publishes
it in its GPUNode, and the operator knows where a running job last saved — for the
cost of preempting it, and to resume from after a node failure — without the
workload needing any access to the Kubernetes API.

Two ways to run the save:

- immediately (default): inside the signal handler, i.e. in the main thread between
  two Python bytecodes of the training loop. Fine for single-process jobs whose save
  only reads the model.
- deferred (`defer=True`): the handler only records the request; the training loop
  calls `poll()` (or checks `stop_requested`) at a step boundary. Distributed jobs
  need this: the ranks must agree on the step they stop at (all-reduce the flag), or
  one rank leaves while the others wait for it in a collective.

## The httpPost endpoint

gpupool POSTs to `http://<podIP>:<port><path>` of every worker and waits, up to the
hook's timeout, for `{"checkpoint": "<location>"}`. The endpoint calls the save
function, reports the location to the termination message as well (so the pod's
final status carries it too) and replies with it; a failing save answers HTTP 500.

    checkpointer = Checkpointer(save, defer=True).install()
    serve_checkpoint_endpoint(8080, "/checkpoint", checkpointer.request)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, NoReturn

__all__ = [
    "LOG_MARKER",
    "CheckpointEndpoint",
    "Checkpointer",
    "Worker",
    "checkpoint_endpoint",
    "checkpoint_mode",
    "checkpoint_timeout",
    "report",
    "restart_count",
    "resume_from",
    "serve_checkpoint_endpoint",
    "termination_log_path",
    "worker",
]


# --- what gpupool tells a worker through its environment ------------------------------------------


def resume_from() -> str | None:
    """The checkpoint location to resume from (`GPUPOOL_RESUME_FROM`), or None."""
    return os.environ.get("GPUPOOL_RESUME_FROM") or None


def _integer(name: str) -> int | None:
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return None


def restart_count() -> int:
    """How many times the job was started before this one (`GPUPOOL_RESTART_COUNT`)."""
    return _integer("GPUPOOL_RESTART_COUNT") or 0


def checkpoint_mode() -> str | None:
    """The job's checkpoint hook mode, `signal` or `httpPost`; None without a hook."""
    return os.environ.get("GPUPOOL_CHECKPOINT_MODE") or None


def checkpoint_timeout() -> int | None:
    """Seconds the hook may take (the SIGTERM grace period in `signal` mode)."""
    return _integer("GPUPOOL_CHECKPOINT_TIMEOUT")


def checkpoint_endpoint() -> tuple[int, str] | None:
    """(port, path) gpupool will POST to in `httpPost` mode; None in other modes."""
    port = _integer("GPUPOOL_CHECKPOINT_PORT")
    if checkpoint_mode() != "httpPost" or port is None:
        return None
    return port, os.environ.get("GPUPOOL_CHECKPOINT_PATH") or "/checkpoint"


@dataclass(frozen=True)
class Worker:
    """This pod's place in its job, as gpupool started it.

    gpupool starts every worker of an incarnation with the same WORLD_SIZE (the pods of
    that incarnation) and MASTER_ADDR (its rank 0), and a distinct RANK. An elastic job
    that grows or shrinks is started again, as a new incarnation, at its new size: a
    static `init_process_group` with these values is always right.
    """

    rank: int
    world_size: int
    master_addr: str
    master_port: int
    incarnation: int


def worker(environ: Mapping[str, str] | None = None) -> Worker:
    """This worker's rank, world size and rendezvous (`os.environ` by default).

    ValueError, naming the variable, when they are missing or inconsistent — a
    worker that would otherwise hang in its first collective.
    """
    env = os.environ if environ is None else environ

    def number(name: str, default: str | None = None) -> int:
        value = env.get(name, default)
        try:
            return int(value or "")
        except ValueError:
            raise ValueError(f"{name}={value!r}: not an integer") from None

    world_size = number("WORLD_SIZE")
    rank = number("RANK")
    if world_size < 1:
        raise ValueError(f"WORLD_SIZE={world_size}: at least 1 worker")
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is not one of the {world_size} ranks of WORLD_SIZE")
    master_addr = env.get("MASTER_ADDR", "")
    if not master_addr:
        raise ValueError("MASTER_ADDR is not set")
    return Worker(
        rank=rank,
        world_size=world_size,
        master_addr=master_addr,
        master_port=number("MASTER_PORT", "29500"),
        incarnation=number("GPUPOOL_INCARNATION", "0"),
    )


# --- checkpoint on SIGTERM, report through the termination message ------------------------------


DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# The kubelet keeps at most 4096 bytes of a container's termination message.
MAX_MESSAGE_BYTES = 4096
# The log line's prefix (see the module docstring; gpupool.agent.checkpoints reads it).
LOG_MARKER = "gpupool.io/checkpoint"

_warned: set[str] = set()


def termination_log_path() -> str:
    """The container's termination-message file (`GPUPOOL_TERMINATION_LOG` overrides)."""
    return os.environ.get("GPUPOOL_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG


def report(location: str, path: str | None = None, *, log: bool = True) -> bool:
    """Record `location` as the latest checkpoint: `{"checkpoint": ...}` in the file,
    and (`log`) the `gpupool.io/checkpoint` line on stderr.

    The kubelet reads the file when the container ends, however it ends (SIGTERM,
    a crash, an OOM kill), so the last reported location survives all of them; the
    node agent reads the log line while the container runs.
    Returns False (with one warning on stderr) when the file cannot be written, e.g.
    outside Kubernetes without `GPUPOOL_TERMINATION_LOG`; training goes on.
    """
    if not location or not location.strip():
        raise ValueError("a checkpoint location must not be empty")
    message = json.dumps({"checkpoint": location.strip()})
    if len(message.encode()) > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"checkpoint location too long: the termination message holds {MAX_MESSAGE_BYTES} bytes"
        )
    if log:
        # One write of one line: the runtime never interleaves it with other output.
        sys.stderr.write(f"{LOG_MARKER} {message}\n")
        sys.stderr.flush()
    target = path or termination_log_path()
    try:
        # Rewritten in place: the kubelet bind-mounts this file, it cannot be renamed
        # over. No fsync: the kubelet reads it through the same kernel, and a node
        # crash loses the container's status anyway.
        with open(target, "w", encoding="utf-8") as stream:
            stream.write(message)
    except OSError as error:
        if target not in _warned:
            _warned.add(target)
            print(f"gpupool: cannot write checkpoint to {target}: {error}", file=sys.stderr)
        return False
    return True


class _Pending:
    """A save asked for from another thread (the HTTP endpoint), done by the loop."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.location: str | None = None
        self.error: BaseException | None = None


class Checkpointer:
    """Save once on SIGTERM, write the location to the termination message, exit."""

    def __init__(
        self,
        save: Callable[[], str],
        *,
        defer: bool = False,
        exit_code: int = 128 + signal.SIGTERM,
        termination_log: str | None = None,
        log: bool = True,
    ) -> None:
        self.save = save
        self.defer = defer
        self.exit_code = exit_code
        self.termination_log = termination_log
        # Whether reports print the log line (one process per pod is enough).
        self.log = log
        self.last_location: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        # Set by the thread that is saving (or waiting to): a signal handler running
        # in that same thread must not start a second save on top of it.
        self._local = threading.local()
        self._pending: list[_Pending] = []
        self._exiting = False
        self._previous: dict[int, Any] = {}

    def install(self, signals: Iterable[int] = (signal.SIGTERM,)) -> Checkpointer:
        """Register the handler (from the main thread); returns self."""
        for number in signals:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def uninstall(self) -> None:
        """Restore the handlers that were there before `install`."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    @property
    def stop_requested(self) -> bool:
        """A termination signal arrived: checkpoint and exit at the next step boundary."""
        return self._stop.is_set()

    @property
    def save_requested(self) -> bool:
        """Deferred mode: an HTTP checkpoint request waits for the training loop."""
        with self._lock:
            return bool(self._pending)

    def report(self, location: str) -> bool:
        """Record a checkpoint the script saved itself (e.g. every N steps)."""
        written = report(location, self.termination_log, log=self.log)
        self.last_location = location
        return written

    def checkpoint(self) -> str:
        """Call the save function now, report its location and return it.

        Saves never overlap (one at a time, whichever thread asks). Deferred HTTP
        requests waiting are answered with this location (or its error).
        """
        self._local.saving = True
        try:
            with self._save_lock:
                with self._lock:
                    waiting, self._pending = self._pending, []
                try:
                    location = self.save()
                    self.report(location)
                except BaseException as error:
                    for request in waiting:
                        request.error = error
                        request.done.set()
                    raise
        finally:
            self._local.saving = False
        for request in waiting:
            request.location = location
            request.done.set()
        if (
            self._stop.is_set()
            and not self.defer
            and not self._exiting
            and threading.current_thread() is threading.main_thread()
        ):
            # SIGTERM arrived while this save ran (the handler let it finish): exit now.
            self._exit()
        return location

    def checkpoint_and_exit(self) -> NoReturn:
        """Save, report, exit with `exit_code` (the last reported location stays on failure)."""
        self._exiting = True
        try:
            self.checkpoint()
        except Exception:
            traceback.print_exc()
            print(
                f"gpupool: checkpoint failed; the last reported one stays: {self.last_location}",
                file=sys.stderr,
            )
        self._exit()

    def poll(self) -> None:
        """Deferred mode, at a step boundary: act on a pending SIGTERM or HTTP request."""
        if self._stop.is_set():
            self.checkpoint_and_exit()
        if self.save_requested:
            self.checkpoint()

    def request(self, timeout: float | None = None) -> str:
        """Checkpoint on behalf of another thread (the HTTP endpoint passes this as `save`).

        Immediately: the save runs in the calling thread, concurrently with training.
        Deferred: waits until the training loop saves (`poll()` or `checkpoint()`);
        TimeoutError when it has not within `timeout` seconds.
        """
        if not self.defer:
            return self.checkpoint()
        pending = _Pending()
        with self._lock:
            self._pending.append(pending)
        if not pending.done.wait(timeout):
            with self._lock:
                if pending in self._pending:
                    self._pending.remove(pending)
            raise TimeoutError(f"the training loop did not checkpoint within {timeout}s")
        if pending.error is not None:
            raise RuntimeError(f"checkpoint failed: {pending.error!r}") from pending.error
        assert pending.location is not None
        return pending.location

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()
        if self.defer or self._exiting:
            return
        if getattr(self._local, "saving", False):
            # The signal interrupted a save in this thread; `checkpoint` exits after it.
            return
        self.checkpoint_and_exit()

    def _exit(self) -> NoReturn:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.exit(self.exit_code)


# --- the endpoint gpupool's httpPost hook calls -------------------------------------------------


# gpupool's request body is a few hundred bytes; anything much larger is not gpupool.
_MAX_BODY = 64 * 1024


class CheckpointEndpoint:
    """A running endpoint (daemon thread); `close()` stops it."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        port: int = self.server.server_address[1]
        return port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _handler(path: str, save: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self._reply(404, {"error": f"not found; POST {path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                self._reply(413, {"error": "request body too large"})
                return
            self.rfile.read(length)
            try:
                location = save()
                report(location)
            except Exception as error:
                self._reply(500, {"error": f"checkpoint failed: {error!r}"})
                return
            self._reply(200, {"checkpoint": location})

        def do_GET(self) -> None:
            self._reply(405, {"error": f"POST {path} to checkpoint"})

        def log_message(self, format: str, *args: Any) -> None:
            print(f"gpupool checkpoint endpoint: {format % args}", file=sys.stderr)

    return Handler


def serve_checkpoint_endpoint(
    port: int,
    path: str,
    save: Callable[[], str],
    *,
    host: str = "0.0.0.0",
) -> CheckpointEndpoint:
    """Serve `POST <path>` on `host:port` from a daemon thread; returns at once.

    `host` defaults to every interface because gpupool calls the pod IP.
    """
    server = ThreadingHTTPServer((host, port), _handler(path, save))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, name="gpupool-checkpoint-endpoint", daemon=True
    )
    thread.start()
    return CheckpointEndpoint(server, thread)
