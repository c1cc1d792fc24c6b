"""requirements.lock, which the image installs, agrees with pyproject.toml's ranges."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1].parent
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^ ;\\]+)")


def _pins() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in the lock."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match["name"])
            pins[current] = (match["version"], [])
        elif line.strip().startswith("--hash=sha256:") and current:
            pins[current][1].append(line.strip())
    return pins


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_every_runtime_dependency_is_locked_within_its_range() -> None:
    pins = _pins()
    for requirement in _runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run `make lock`"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject.toml's "
            f"{requirement.specifier}: run `make lock`"
        )


def test_every_locked_package_has_hashes() -> None:
    pins = _pins()
    assert len(pins) > len(_runtime_requirements())  # the transitive ones too
    unhashed = sorted(name for name, (_, hashes) in pins.items() if not hashes)
    assert unhashed == [], "pip --require-hashes would refuse the image's install"


def test_kopf_is_bounded_to_the_minor_version_its_patches_were_written_for() -> None:
    (kopf,) = (r for r in _runtime_requirements() if r.name == "kopf")
    assert any(spec.operator == "<" for spec in kopf.specifier), kopf
