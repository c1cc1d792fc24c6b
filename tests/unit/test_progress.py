"""Progress of long work: steps on stderr, and the control plane's build followed line by
line (a stand-in build script: the real one builds for minutes)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from gpupool.devcluster import binaries
from gpupool.progress import Steps

FAKE_BUILD = """#!/usr/bin/env bash
out={out}
if [[ $1 == --list ]]; then shift; for n in "$@"; do echo "$n $out/$n"; done; exit 0; fi
for n in "$@"; do
  echo "building $n v1 (package example.com/$n) ..." >&2
  echo "  ... $n: 30s" >&2
  touch "$out/$n"
  echo "built    $n v1 in 1s" >&2
done
for n in "$@"; do echo "$n $out/$n"; done
"""


def test_a_step_says_when_it_starts_and_how_long_it_took() -> None:
    stream = io.StringIO()
    steps = Steps(Console(file=stream, force_terminal=False, width=200))
    with steps.step("counting", total=3) as step:
        step.advance()
    with pytest.raises(RuntimeError), steps.step("breaking"):
        raise RuntimeError("no")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "… counting" and lines[1].startswith("✓ counting (")
    assert lines[2] == "… breaking" and lines[3].startswith("✗ breaking (failed after ")


def test_a_terminal_gets_a_bar_that_ends_as_one_line() -> None:
    stream = io.StringIO()
    steps = Steps(Console(file=stream, force_terminal=True, width=200))
    with steps.step("timing plans", total=2) as step:
        step.advance(2)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # drop the colours
    assert "2/2" in shown and "✓ timing plans (" in shown


def test_the_build_is_followed_and_its_paths_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "build.sh"
    script.write_text(FAKE_BUILD.format(out=tmp_path))
    monkeypatch.setattr(binaries, "BUILD_SCRIPT", script)
    found = binaries.ensure(["etcd", "kwok"])
    assert found == {"etcd": tmp_path / "etcd", "kwok": tmp_path / "kwok"}
    assert all(path.is_file() for path in found.values())
    err = capsys.readouterr().err  # not a terminal: the script's lines pass through
    assert "… building etcd, kwok from Go modules" in err
    assert "built    kwok v1 in 1s" in err and "✓ building etcd, kwok" in err
    assert binaries.ensure(["etcd"]) == {"etcd": tmp_path / "etcd"}  # cached: no build
    assert "building" not in capsys.readouterr().err


def test_a_failed_build_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "build.sh"
    script.write_text(
        '#!/usr/bin/env bash\n[[ $1 == --list ]] && { echo "etcd /nonexistent/etcd"; exit 0; }\n'
        'echo "build.sh: building etcd v1 failed" >&2; exit 1\n'
    )
    monkeypatch.setattr(binaries, "BUILD_SCRIPT", script)
    with pytest.raises(binaries.BinariesError, match="failed"):
        binaries.ensure(["etcd"])
