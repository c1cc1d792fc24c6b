"""The schema of `spec.template`: Kubernetes' own PodTemplateSpec, bounded, in the CRD.

With `x-kubernetes-preserve-unknown-fields` the API server stored whatever a user wrote
under `spec.template` — a typo (`imagee:`) failed only when the pods were created, and
any nesting passed. Now the CRD carries the PodTemplateSpec schema of the Kubernetes
version gpupool is built against (like the CRDs controller-gen writes for Kueue or
JobSet), so the API server itself — webhook or not — refuses a wrong type and names the
field, and prunes unknown fields (`kubectl` asks for strict validation: it refuses them).

`podtemplate.schema.json` is that schema made structural: `$ref`s inlined, descriptions
dropped, int-or-string and quantities as `x-kubernetes-int-or-string`, only scalar
defaults kept. It is regenerated from the API server's OpenAPI document with
`python -m gpupool.api.podtemplate <api__v1_openapi.json>` (the file is in the
`k8s.io/kubernetes` module, `api/openapi-spec/v3/`), and never edited by hand.

`template_schema()` adds gpupool's rules on top: template metadata is labels and
annotations only, a container needs an image, container lists are bounded, no
`nodeName` (gpupool binds), no GPU limits (`spec.gpusPerWorker` sets them), and no
`gpupool.io/checkpoint-address` annotation.
"""

from __future__ import annotations

import copy
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from gpupool.api.bounds import TEMPLATE_MAX_CONTAINERS

SCHEMA_FILE = Path(__file__).with_name("podtemplate.schema.json")
POD_TEMPLATE_SPEC = "io.k8s.api.core.v1.PodTemplateSpec"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
CHECKPOINT_ADDRESS_ANNOTATION = "gpupool.io/checkpoint-address"
GPU_RESOURCE = "nvidia.com/gpu"
MAX_METADATA_ENTRIES = 256
# Where, in a GPUJob's spec, Kubernetes' PodSpec begins (docs/api.md does not repeat it).
POD_SPEC_PATH = ".template.spec"

_DROPPED = frozenset(
    {
        "description",
        "x-kubernetes-patch-strategy",
        "x-kubernetes-patch-merge-key",
        "x-kubernetes-unions",
        "discriminator",
    }
)


def structural(node: Any, schemas: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """One OpenAPI v3 schema node of Kubernetes as a structural CRD schema node."""
    if isinstance(node, list):
        return [structural(item, schemas, seen) for item in node]
    if not isinstance(node, dict):
        return node
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        node = {**{k: v for k, v in node.items() if k != "allOf"}, "$ref": all_of[0]["$ref"]}
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name == OBJECT_META:
            # An embedded object's metadata: what a template may set (managedFields
            # would let any JSON in).
            return {
                "type": "object",
                "properties": {"labels": _string_map(), "annotations": _string_map()},
            }
        if name in seen:
            raise ValueError(f"recursive schema {name}: not expressible in a CRD")
        merged = {**schemas[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, schemas, (*seen, name))
    if "oneOf" in node:
        # IntOrString (integer | string) and Quantity (string | number).
        return {"x-kubernetes-int-or-string": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "default":
            if isinstance(value, str | int | float | bool):
                out[key] = value
            continue
        if key == "properties":
            out[key] = {name: structural(prop, schemas, seen) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = structural(value, schemas, seen)
        else:
            out[key] = value
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def convert(openapi: dict[str, Any], source: str) -> dict[str, Any]:
    schemas = openapi["components"]["schemas"]
    return {
        "source": f"{POD_TEMPLATE_SPEC} of {source}",
        "schema": structural(schemas[POD_TEMPLATE_SPEC], schemas),
    }


@cache
def _vendored() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    schema: dict[str, Any] = document["schema"]
    return schema


def _string_map(*rules: dict[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "maxProperties": MAX_METADATA_ENTRIES,
    }
    if rules:
        schema["x-kubernetes-validations"] = list(rules)
    return schema


def template_schema() -> dict[str, Any]:
    """The CRD schema of `spec.template` (a fresh copy)."""
    schema = copy.deepcopy(_vendored())
    schema["required"] = ["spec"]
    schema["properties"]["metadata"]["properties"]["annotations"] = _string_map(
        {
            "rule": f"!('{CHECKPOINT_ADDRESS_ANNOTATION}' in self)",
            "message": (
                f"{CHECKPOINT_ADDRESS_ANNOTATION} is not allowed: the checkpoint hook "
                "is sent to the job's own pods, at spec.checkpoint.httpPost.port"
            ),
        }
    )
    pod = schema["properties"]["spec"]
    pod["description"] = (
        "Kubernetes' PodSpec (core/v1, the schema of Kubernetes v1.36): every container "
        f"needs an image, at most {TEMPLATE_MAX_CONTAINERS} containers and init containers; "
        f"no nodeName and no {GPU_RESOURCE} limits (gpupool sets both)."
    )
    pod.setdefault("x-kubernetes-validations", []).append(
        {
            "rule": "!has(self.nodeName) || self.nodeName == ''",
            "message": (
                "must be empty; gpupool chooses the nodes (use spec.placement.preferredNodes "
                "for data locality)"
            ),
            "fieldPath": ".nodeName",
        }
    )
    for field in ("containers", "initContainers"):
        containers = pod["properties"][field]
        containers["maxItems"] = TEMPLATE_MAX_CONTAINERS
        container = containers["items"]
        container["required"] = sorted({*container.get("required", ()), "name", "image"})
        container["properties"]["image"]["minLength"] = 1
        container.setdefault("x-kubernetes-validations", []).append(
            {
                "rule": (
                    "!has(self.resources) || ((!has(self.resources.limits) || "
                    f"!('{GPU_RESOURCE}' in self.resources.limits)) && "
                    "(!has(self.resources.requests) || "
                    f"!('{GPU_RESOURCE}' in self.resources.requests)))"
                ),
                "message": f"remove {GPU_RESOURCE}; set spec.gpusPerWorker instead",
                "fieldPath": ".resources",
            }
        )
    pod["properties"]["containers"]["minItems"] = 1
    return schema


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m gpupool.api.podtemplate <api__v1_openapi.json>", file=sys.stderr)
        return 2
    path = Path(argv[1])
    module = next((part for part in path.parts if part.startswith("kubernetes@")), path.name)
    document = convert(json.loads(path.read_text(encoding="utf-8")), module)
    SCHEMA_FILE.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_FILE} ({document['source']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
