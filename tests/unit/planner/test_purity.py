"""The planner is pure: it imports nothing that talks to a cluster or a network."""

from __future__ import annotations

import ast
from pathlib import Path

import gpupool.planner

IMPURE = {
    "aiohttp",
    "asyncio",
    "gpupool.k8s",
    "gpupool.controller",
    "gpupool.agent",
    "http",
    "httpx",
    "kopf",
    "kubernetes",
    "requests",
    "socket",
    "subprocess",
    "urllib",
}
# The clock is injected: reading it would make plans unrepeatable.
CLOCKS = {"time", "datetime"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_planner_imports_nothing_impure() -> None:
    package = Path(gpupool.planner.__file__).parent
    files = sorted(package.glob("**/*.py"))
    assert len(files) >= 8
    for path in files:
        for module in imported_modules(path):
            root = module.split(".")[0]
            assert module.startswith("gpupool.planner") or not module.startswith("gpupool"), (
                f"{path.name} imports {module}"
            )
            for banned in IMPURE | CLOCKS:
                assert module != banned and not module.startswith(banned + "."), (
                    f"{path.name} imports {module}"
                )
            assert root != "random", f"{path.name} imports random"
