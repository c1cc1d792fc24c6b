"""`kubectl gpupool` through krew: the manifest template renders into a valid Plugin, the
archive holds what it names, and the launcher runs the CLI under the plugin's name."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import yaml

from gpupool import __version__

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / ".krew.yaml"
PACKAGE = ROOT / "krew" / "package.sh"


def render(tag: str, sha256: str) -> dict[str, Any]:
    """What krew-release-bot makes of the template for release `tag`."""
    text = TEMPLATE.read_text()
    text = re.sub(
        r'\{\{\s*addURIAndSha "([^"]+)" \.TagName\s*\}\}',
        lambda found: f"uri: {found.group(1)}\n      sha256: {sha256}",
        text,
    )
    rendered: dict[str, Any] = yaml.safe_load(re.sub(r"\{\{\s*\.TagName\s*\}\}", tag, text))
    return rendered


def package(tmp_path: Path) -> tuple[Path, str]:
    wheel = tmp_path / f"gpupool-{__version__}-py3-none-any.whl"
    wheel.write_bytes(b"a wheel")
    out = subprocess.run(
        ["bash", str(PACKAGE), "--wheel", str(wheel), str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return Path(out[0]), out[1]


def test_the_template_renders_into_a_krew_plugin(tmp_path: Path) -> None:
    archive, sha256 = package(tmp_path)
    assert sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    tag = f"v{__version__}"
    plugin = render(tag, sha256)
    assert plugin["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert plugin["kind"] == "Plugin" and plugin["metadata"]["name"] == "gpupool"
    spec = plugin["spec"]
    assert spec["version"] == tag
    assert len(spec["shortDescription"]) <= 50 and spec["homepage"].startswith("https://")
    with tarfile.open(archive) as tar:
        members = {member.lstrip("./") for member in tar.getnames()} - {""}
    assert members == {"kubectl-gpupool", f"gpupool-{__version__}-py3-none-any.whl"}
    assert {p["selector"]["matchLabels"]["os"] for p in spec["platforms"]} == {"linux", "darwin"}
    for platform in spec["platforms"]:
        assert platform["bin"] in members
        assert platform["uri"].endswith(f"/{tag}/{archive.name}")
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])


def test_the_version_is_the_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__
    assert project["scripts"]["kubectl-gpupool"] == "gpupool.cli:main"


def test_the_launcher_runs_the_cli_as_kubectl_gpupool(tmp_path: Path) -> None:
    """Installed by krew (its store, symlinked from ~/.krew/bin), after the first run made
    the virtualenv: here one whose kubectl-gpupool is this test's."""
    archive, _ = package(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(store, filter="data")
    (store / "venv" / "bin").mkdir(parents=True)
    installed = Path(sys.executable).parent / "kubectl-gpupool"
    (store / "venv" / "bin" / "kubectl-gpupool").symlink_to(installed)
    link = tmp_path / "bin" / "kubectl-gpupool"
    link.parent.mkdir()
    link.symlink_to(store / "kubectl-gpupool")
    shown = subprocess.run(
        [str(link), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "Usage: kubectl gpupool" in shown.stdout
