"""The docs a platform engineer looks for exist and are linked, and the architecture
picture still renders from its script."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_the_architecture_picture_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("architecture", DOCS / "architecture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "architecture", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "architecture.png")
    module.draw()
    assert (tmp_path / "architecture.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (DOCS / "architecture.png").is_file()


def test_every_relative_link_in_the_docs_and_readme_resolves() -> None:
    broken = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = re.sub(r"`[^`\n]*`", "", page.read_text(encoding="utf-8"))  # code is not a link
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken


def test_operations_covers_upgrade_uninstall_and_compatibility() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    for heading in ("## Upgrade", "## Uninstall", "## Compatibility"):
        assert heading in text
    assert "architecture.png" in text
    assert re.search(r"\| MIG \| not yet", text) and "time-slicing" in text
