"""The generated CRDs: committed files match the models, and the schemas are structural."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupool.api.crdgen import RESOURCES, Resource, build_crd, file_name, rendered_crds

ROOT = Path(__file__).resolve().parents[3]
COPIES = [ROOT / "crds", ROOT / "helm" / "gpupool" / "files" / "crds"]


@pytest.mark.parametrize("directory", COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_crds_match_the_models(directory: Path) -> None:
    for name, text in rendered_crds().items():
        path = directory / name
        assert path.exists(), f"{path} missing: run `make crds`"
        assert path.read_text() == text, f"{path} drifted from the models: run `make crds`"


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(walk(value, f"{path}[{i}]"))
    return found


def schema(resource: Resource) -> dict[str, Any]:
    crd = build_crd(resource)
    root: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource: Resource) -> None:
    for path, node in walk(schema(resource)):
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "title"):
            assert banned not in node or path.endswith("/properties"), f"{banned} at {path}"
        if "properties" in node and not path.endswith("/properties"):
            assert node.get("type") == "object", f"untyped object at {path}"
            assert "additionalProperties" not in node, f"properties+additionalProperties at {path}"
        if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
            node.get("exclusiveMinimum"), bool
        ):
            pytest.fail(f"JSON Schema 2020 exclusiveMinimum at {path}")


def resolve(root: dict[str, Any], dotted: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = root
    for part in re.sub(r"\[\?\(@.*?\)\]", "[]", dotted).strip(".").split("."):
        if node is None:
            return None
        list_item = part.endswith("[]")
        node = node.get("properties", {}).get(part.removesuffix("[]"))
        if node is not None and list_item:
            node = node.get("items")
    return node


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_printer_columns_read_fields_that_exist(resource: Resource) -> None:
    root = schema(resource)
    for column in resource.columns:
        if column.json_path.startswith(".metadata."):
            continue
        assert resolve(root, column.json_path) is not None, f"{column.name}: {column.json_path}"


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_cel_rules_name_fields_that_exist(resource: Resource) -> None:
    for path, node in walk(schema(resource)):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"], f"rule without message at {path}"
            for field in re.findall(r"self\.([A-Za-z]+)", rule["rule"]):
                assert field in node.get("properties", {}), f"{rule['rule']} at {path}"


def test_crd_names_and_scopes() -> None:
    by_kind = {r.kind: build_crd(r) for r in RESOURCES}
    assert by_kind["GPUJob"]["spec"]["scope"] == "Namespaced"
    assert by_kind["TeamQuota"]["spec"]["scope"] == "Cluster"
    assert by_kind["GPUNode"]["spec"]["names"]["shortNames"] == ["gn"]
    for resource in RESOURCES:
        assert file_name(resource) == f"gpupool.io_{resource.plural}.yaml"
        assert yaml.safe_load(rendered_crds()[file_name(resource)]) == build_crd(resource)
