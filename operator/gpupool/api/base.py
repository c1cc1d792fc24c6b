"""The base every resource model shares: Kubernetes-style camelCase field names.

Each cross-field rule is declared once as a `CelRule`: the CRD carries it as an
`x-kubernetes-validations` entry (enforced by the API server), and the model checks
the same rule in Python with the same message (enforced by the webhook, the CLI and
the tests), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

API_GROUP = "gpupool.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

_ACRONYMS = (("Gpus", "GPUs"), ("Gpu", "GPU"), ("Mib", "MiB"), ("Ecc", "ECC"), ("Xid", "XID"))


def to_k8s_name(name: str) -> str:
    """snake_case -> the camelCase Kubernetes uses, keeping acronyms (`allocatedGPUs`)."""
    first, *rest = name.split("_")
    camel = first + "".join(part[:1].upper() + part[1:] for part in rest)
    for plain, acronym in _ACRONYMS:
        camel = camel.replace(plain, acronym)
    return camel


@dataclass(frozen=True)
class CelRule:
    """A rule enforced by the API server (CEL) and by the model (Python), one message."""

    rule: str
    message: str
    check: Callable[[Any], bool]
    field_path: str | None = None
    reason: str | None = None

    def to_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.reason:
            entry["reason"] = self.reason
        return entry


class K8sModel(BaseModel):
    """Strict, alias-aware base: unknown fields are errors, names are camelCase."""

    model_config = ConfigDict(
        alias_generator=to_k8s_name,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> Self:
        for rule in self.cel_rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [rule.to_schema() for rule in cls.cel_rules]
        return schema

    def to_k8s(self) -> dict[str, Any]:
        """The object as the API server stores it (aliases, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class K8sStatus(K8sModel):
    """Status written by gpupool itself; tolerant of fields from newer versions."""

    model_config = ConfigDict(extra="ignore")
