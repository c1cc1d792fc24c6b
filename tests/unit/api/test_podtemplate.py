"""spec.template's CRD schema: Kubernetes' PodTemplateSpec, structural, with gpupool's bounds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpupool.api.bounds import TEMPLATE_MAX_CONTAINERS
from gpupool.api.podtemplate import structural, template_schema


def keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from keys(value)


def test_the_schema_is_structural_and_closed() -> None:
    schema = template_schema()
    found = set(keys(schema))
    assert not found & {"$ref", "oneOf", "allOf", "x-kubernetes-unions"}
    # Nothing under the template keeps unknown fields: nothing can nest without bound.
    assert "x-kubernetes-preserve-unknown-fields" not in found


def test_gpupools_rules_sit_on_top() -> None:
    schema = template_schema()
    assert set(schema["properties"]["metadata"]["properties"]) == {"labels", "annotations"}
    pod = schema["properties"]["spec"]
    for field in ("containers", "initContainers"):
        containers = pod["properties"][field]
        assert containers["maxItems"] == TEMPLATE_MAX_CONTAINERS
        assert {"name", "image"} <= set(containers["items"]["required"])
    assert pod["properties"]["containers"]["minItems"] == 1
    rules = [rule["rule"] for rule in pod["x-kubernetes-validations"]]
    assert any("nodeName" in rule for rule in rules)
    annotations = schema["properties"]["metadata"]["properties"]["annotations"]
    assert "gpupool.io/checkpoint-address" in annotations["x-kubernetes-validations"][0]["rule"]


def test_int_or_string_and_embedded_metadata_are_converted() -> None:
    int_or_string = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    schemas = {
        int_or_string: {
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object", "properties": {}},
        "Probe": {
            "type": "object",
            "description": "dropped",
            "properties": {
                "port": {
                    "allOf": [{"$ref": "#/x/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
                },
                "meta": {"$ref": "#/x/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                "protocol": {"type": "string", "default": "TCP"},
                "item": {"type": "object", "default": {}, "properties": {"a": {"type": "string"}}},
            },
        },
    }
    converted = structural({"$ref": "#/x/Probe"}, schemas)
    properties = converted["properties"]
    assert properties["port"] == {"x-kubernetes-int-or-string": True}
    assert set(properties["meta"]["properties"]) == {"labels", "annotations"}
    assert properties["protocol"]["default"] == "TCP"
    assert "default" not in properties["item"] and "description" not in converted
