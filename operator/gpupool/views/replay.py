"""Reading a dumped snapshot back (`gpupool replay`), with errors that say what is wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from gpupool.planner import Snapshot
from gpupool.views.failures import CliError

# What `Snapshot.to_json` always writes.
_SECTIONS = ("config", "nodes", "teams", "jobs")


def _not_a_snapshot(path: Path, why: str) -> CliError:
    return CliError(
        f"{path} is not a gpupool snapshot ({why}); make one with "
        "`gpupool snapshot --output-file FILE`"
    )


def read_snapshot(path: Path) -> tuple[Snapshot, float | None]:
    """The snapshot in `path` ('-': stdin) and the time it was taken, if recorded."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        recorded = yaml.safe_load(text)  # JSON is YAML: `snapshot -o json` and `-o yaml` both
    except yaml.YAMLError as error:
        raise _not_a_snapshot(path, f"neither JSON nor YAML: {error}") from error
    if not isinstance(recorded, dict) or not all(key in recorded for key in _SECTIONS):
        raise _not_a_snapshot(path, f"a snapshot is an object with {', '.join(_SECTIONS)}")
    try:
        now = recorded.pop("now", None)
        snapshot = Snapshot.from_dict(recorded)
        return snapshot, None if now is None else float(now)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise _not_a_snapshot(path, f"{type(error).__name__}: {error}") from error
