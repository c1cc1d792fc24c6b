"""Checkpoint on SIGTERM and report checkpoint locations through the termination message.

gpupool's `signal` hook deletes the worker pods with a grace period equal to the
hook's timeout: SIGTERM now, SIGKILL at the deadline. `Checkpointer` turns the
SIGTERM into one call of the user's save function, writes the location it returns to
the container's termination-message file (the kubelet hands it to gpupool) and exits.

The exit status is 143 (128 + SIGTERM) by default, not 0: the worker was
interrupted, it did not finish, and a pod that exits 0 would read as a completed job
to anyone who sent the SIGTERM without gpupool (a node drain, say).

Two ways to run the save:

- immediately (default): inside the signal handler, i.e. in the main thread between
  two Python bytecodes of the training loop. Fine for single-process jobs whose save
  only reads the model.
- deferred (`defer=True`): the handler only records the request; the training loop
  calls `poll()` (or checks `stop_requested`) at a step boundary. Distributed jobs
  need this: the ranks must agree on the step they stop at (all-reduce the flag), or
  one rank leaves while the others wait for it in a collective.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any, NoReturn

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
# The kubelet keeps at most 4096 bytes of a container's termination message.
MAX_MESSAGE_BYTES = 4096

_warned: set[str] = set()


def termination_log_path() -> str:
    """The container's termination-message file (`GPUPOOL_TERMINATION_LOG` overrides)."""
    return os.environ.get("GPUPOOL_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG


def report(location: str, path: str | None = None) -> bool:
    """Record `location` as the latest checkpoint: `{"checkpoint": ...}` in the file.

    The kubelet reads the file when the container ends, however it ends (SIGTERM,
    a crash, an OOM kill), so the last reported location survives all of them.
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
    ) -> None:
        self.save = save
        self.defer = defer
        self.exit_code = exit_code
        self.termination_log = termination_log
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
        written = report(location, self.termination_log)
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
