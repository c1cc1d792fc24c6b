"""docs/api.md is generated from the models: the committed file matches them, and it
documents every field the CRDs define."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpupool.api.crdgen import RESOURCES, build_crd
from gpupool.api.podtemplate import POD_SPEC_PATH
from gpupool.api.reference import render_reference

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / "docs" / "api.md"


def test_the_committed_reference_matches_the_models() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render_reference(), (
        f"{REFERENCE} drifted from the models: run `make crds`"
    )


def leaves(node: dict[str, Any], prefix: str) -> list[str]:
    found = []
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}"
        found.append(path)
        if path == f"spec{POD_SPEC_PATH}":
            continue  # Kubernetes' own PodSpec: documented by Kubernetes
        nested = child.get("items", child) if child.get("type") == "array" else child
        suffix = "[]" if nested is not child else ""
        found += leaves(nested, path + suffix)
    return found


def test_every_field_and_rule_is_documented() -> None:
    text = render_reference()
    for resource in RESOURCES:
        root = build_crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for path in leaves(root["properties"][part], part):
                assert f"| `{path}`" in text, path
    assert "spec.gpusPerWorker is immutable" in text
    assert "| `spec.checkpoint.timeoutSeconds` | integer | `120` | ≥ 1; ≤ 3600 |" in text
