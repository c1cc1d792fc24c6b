"""Checkpoints that running pods report, read from their container logs.

The workload helper prints `gpupool.io/checkpoint {"checkpoint": "<location>"}` to
stderr every time it reports a checkpoint (`gpupool.workload.report`). The kubelet's
container runtime writes every container's output to
`/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, one line per
output line, stamped with the time it was written:

- CRI format: `<RFC 3339 time> <stream> <P|F> <text>` (F: a full line; P: a part of a
  line longer than the runtime's 16 KiB buffer — a report line is far shorter, so only
  full lines are read);
- Docker's json-file (through cri-dockerd): `{"log": "<text>\\n", "time": "..."}`.

The agent reads, for every pod it attributes a GPU to, the new bytes of its
containers' current log file each tick, and keeps the latest location and its time
per pod; `node.NodeAgent` publishes them in GPUNode `status.checkpoints`. This is the
channel log collectors use (a read-only hostPath of /var/log/pods): the workload needs
no API access, and it can only speak for itself — the directory is named by the
kubelet after the pod that writes into it.

Bounded: at most `max_bytes` per pod per tick (the rest on the next ticks), only
whole lines, and only the lines that contain the marker are decoded (a training log is
mostly other output); state only for the pods currently attributed. A file rotated away
(size below what was read, or a new inode) is read again from its start; lines written
to the old file after the last read are missed (a later report replaces them anyway).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gpupool.agent.status import PodCheckpoint, PodRef
from gpupool.workload import LOG_MARKER

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("/var/log/pods")
_MARKER = LOG_MARKER.encode()
MAX_BYTES_PER_TICK = 1 << 20

PodKey = tuple[str, str]


@dataclass
class _File:
    inode: int
    offset: int = 0


@dataclass
class _Pod:
    uid: str = ""
    location: str = ""
    saved_at: datetime | None = None
    files: dict[Path, _File] = field(default_factory=dict)


def _time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(microsecond=0) if when.tzinfo is not None else None


def parse_report(text: str) -> str | None:
    """The location in one output line of the workload, or None if it is not a report."""
    head, _, document = text.strip().partition(" ")
    if head != LOG_MARKER:
        return None
    try:
        body = json.loads(document)
    except ValueError:
        return None
    location = body.get("checkpoint") if isinstance(body, dict) else None
    if isinstance(location, str) and location.strip():
        return location.strip()
    return None


def parse_log_line(line: str) -> tuple[datetime | None, str | None]:
    """One line of a container log file: (the time the runtime stamped on it, the
    workload's text), or (None, None) for what is not a full line of output."""
    line = line.rstrip("\n")
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None, None
        text = entry.get("log") if isinstance(entry, dict) else None
        if not isinstance(text, str) or not text.endswith("\n"):
            return None, None
        return _time(str(entry.get("time", ""))), text.rstrip("\n")
    stamp, _, rest = line.partition(" ")
    _, _, rest = rest.partition(" ")
    tag, _, text = rest.partition(" ")
    if tag != "F":
        return None, None
    return _time(stamp), text


class LogCheckpoints:
    """The latest checkpoint each GPU pod on this node reported in its log."""

    def __init__(self, root: Path = DEFAULT_ROOT, *, max_bytes: int = MAX_BYTES_PER_TICK) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._pods: dict[PodKey, _Pod] = {}
        self._warned = False

    def scan(self, pods: Iterable[PodRef]) -> list[PodCheckpoint]:
        """Read what the pods logged since the last scan; their latest checkpoints."""
        wanted: dict[PodKey, PodRef] = {}
        for ref in pods:
            wanted.setdefault((ref.namespace, ref.name), ref)
        for key in self._pods.keys() - wanted.keys():
            del self._pods[key]
        if wanted and not self.root.is_dir():
            if not self._warned:
                self._warned = True
                log.warning(
                    "%s absent (mount hostPath /var/log/pods read-only): running pods' "
                    "checkpoints are not reported",
                    self.root,
                )
            return []
        found = []
        for key, ref in sorted(wanted.items()):
            state = self._pods.setdefault(key, _Pod())
            for path in self._log_files(ref):
                self._read(state, path)
            if state.location:
                found.append(
                    PodCheckpoint(
                        namespace=key[0],
                        name=key[1],
                        uid=ref.uid or state.uid,
                        location=state.location,
                        saved_at=state.saved_at,
                    )
                )
        return found

    def _log_files(self, ref: PodRef) -> list[Path]:
        """The current log file of each of the pod's containers (only the GPU one when
        attribution named it)."""
        if ref.uid:
            directories = [self.root / f"{ref.namespace}_{ref.name}_{ref.uid}"]
        else:
            directories = sorted(self.root.glob(f"{ref.namespace}_{ref.name}_*"))
        files = []
        for directory in directories:
            named = [directory / ref.container] if ref.container else []
            for container in named or _subdirectories(directory):
                current = _current_log(container)
                if current is not None:
                    files.append(current)
        return files

    def _read(self, state: _Pod, path: Path) -> None:
        try:
            with path.open("rb") as stream:
                info = os.fstat(stream.fileno())
                known = state.files.get(path)
                if known is None or known.inode != info.st_ino or info.st_size < known.offset:
                    known = state.files[path] = _File(info.st_ino)
                stream.seek(known.offset)
                chunk = stream.read(self.max_bytes)
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            if len(chunk) == self.max_bytes:
                # One line longer than a tick's budget: not a report; skip it.
                known.offset += len(chunk)
            return
        known.offset += end
        found = chunk.find(_MARKER, 0, end)
        while found >= 0:
            first = chunk.rfind(b"\n", 0, found) + 1
            last = chunk.find(b"\n", found, end)
            when, text = parse_log_line(chunk[first:last].decode("utf-8", errors="replace"))
            location = parse_report(text) if text is not None else None
            newer = when is not None and (state.saved_at is None or when >= state.saved_at)
            if location is not None and newer:
                state.location, state.saved_at = location, when
                state.uid = path.parent.parent.name.rsplit("_", 1)[-1]
            found = chunk.find(_MARKER, last, end)


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return sorted(entry for entry in directory.iterdir() if entry.is_dir())
    except OSError:
        return []


def _current_log(container: Path) -> Path | None:
    """`<restart>.log` with the highest restart count (the running container's)."""
    best: tuple[int, Path] | None = None
    try:
        entries = list(container.iterdir())
    except OSError:
        return None
    for entry in entries:
        stem, dot, suffix = entry.name.partition(".")
        if dot and suffix == "log" and stem.isdigit():
            candidate = (int(stem), entry)
            if best is None or candidate[0] > best[0]:
                best = candidate
    return None if best is None else best[1]
