"""docs/api.md: the API reference, generated from the same schemas as the CRDs.

Every field of every resource's spec and status, with its type, default, bounds and
description, and the CEL rules the API server enforces with their messages. Generated
by `gpupool crds` (`make crds`); a test fails when the committed file drifts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpupool.api.base import API_GROUP, API_VERSION
from gpupool.api.crdgen import RESOURCES, Resource, build_crd
from gpupool.api.podtemplate import POD_SPEC_PATH

HEADER = "<!-- Generated from the resource models by `gpupool crds` (make crds). Do not edit. -->\n"

_BOUNDS = (
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
    ("pattern", "matches `{}`"),
)


def _type(node: dict[str, Any]) -> str:
    kind = str(node.get("type", "object" if "properties" in node else "any"))
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    if node.get("format"):
        return f"{kind} ({node['format']})"
    return kind


def _bounds(node: dict[str, Any]) -> str:
    found = []
    for key, text in _BOUNDS:
        if key in node:
            value = node[key]
            exclusive = node.get(f"exclusive{key[0].upper()}{key[1:]}") is True
            rendered = text.format(value)
            if exclusive:
                rendered = rendered.replace("≥", ">").replace("≤", "<")
            found.append(rendered)
    if "enum" in node:
        found.append("one of " + ", ".join(f"`{value}`" for value in node["enum"]))
    if node.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys", []))
        found.append(f"a list keyed by {keys}")
    return "; ".join(found)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fields(
    node: dict[str, Any], prefix: str
) -> Iterator[tuple[str, dict[str, Any], bool, list[dict[str, Any]]]]:
    """(path, schema, required, CEL rules) for every field under `node`, depth first."""
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}"
        yield path, child, name in required, child.get("x-kubernetes-validations", [])
        nested = child.get("items", child) if child.get("type") == "array" else child
        # The pod template's PodSpec is Kubernetes' own: its fields are not listed here.
        if "properties" in nested and path != POD_SPEC_PATH:
            yield from _fields(nested, f"{path}[]" if nested is not child else path)


def _section(resource: Resource, part: str, schema: dict[str, Any]) -> list[str]:
    lines = [
        f"### {resource.kind} `.{part}`",
        "",
        "| Field | Type | Default | Bounds | Description |",
        "|---|---|---|---|---|",
    ]
    rules: list[tuple[str, dict[str, Any]]] = [
        (f".{part}", rule) for rule in schema.get("x-kubernetes-validations", [])
    ]
    for path, node, required, node_rules in _fields(schema, ""):
        default = node.get("default")
        lines.append(
            "| `{}`{} | {} | {} | {} | {} |".format(
                f"{part}{path}",
                " (required)" if required else "",
                _cell(_type(node)),
                "" if default is None else f"`{_cell(json.dumps(default))}`",
                _cell(_bounds(node)),
                _cell(node.get("description", "")),
            )
        )
        rules += [(f".{part}{path}", rule) for rule in node_rules]
    if rules:
        lines += ["", "Rules the API server enforces (CEL):", ""]
        lines += [f"- on `{where}`: {rule['message']} (`{rule['rule']}`)" for where, rule in rules]
    return [*lines, ""]


def _resource(resource: Resource) -> list[str]:
    crd = build_crd(resource)
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]["properties"]
    scope = "namespaced" if resource.namespaced else "cluster-scoped"
    short = ", ".join(f"`{name}`" for name in resource.short_names)
    lines = [
        f"## {resource.kind}",
        "",
        f"`{API_GROUP}/{API_VERSION}`, {scope}, plural `{resource.plural}`, short name {short}. "
        + _cell((resource.spec.__doc__ or "").strip().split("\n\n")[0]),
        "",
        "`kubectl get` columns: "
        + ", ".join(
            f"{column['name']}{' (-o wide)' if column.get('priority') else ''}"
            for column in version["additionalPrinterColumns"]
        )
        + ".",
        "",
    ]
    lines += _section(resource, "spec", root["spec"])
    lines += _section(resource, "status", root["status"])
    return lines


def render_reference() -> str:
    lines = [
        HEADER,
        f"# API reference: `{API_GROUP}/{API_VERSION}`",
        "",
        "Every field of gpupool's resources as the CRDs define them (the same models "
        "validate them in the webhook and the operator). Defaults are applied by the API "
        "server; status is written by gpupool only.",
        "",
        *(f"- [{resource.kind}](#{resource.kind.lower()})" for resource in RESOURCES),
        "",
    ]
    for resource in RESOURCES:
        lines += _resource(resource)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_reference(path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_reference(), encoding="utf-8")
    return target
