"""Kubernetes-style conditions and the small pure mutators that maintain them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from gpupool.api.base import K8sStatus

ConditionStatus = Literal["True", "False", "Unknown"]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Condition(K8sStatus):
    """One observation of the object's state (the metav1.Condition shape)."""

    type: str = Field(description="CamelCase condition type, e.g. Admitted, Running.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase machine-readable reason.")
    message: str = Field(default="", description="Human-readable detail: what and why.")
    last_transition_time: datetime | None = Field(
        default=None, description="When status last changed."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this was set from."
    )


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    found = find_condition(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int | None = None,
) -> bool:
    """Set a condition in place; return whether anything changed.

    lastTransitionTime moves only when the status flips, as in apimachinery's
    meta.SetStatusCondition, so "since when" stays meaningful.
    """
    current = find_condition(conditions, type_)
    if current is None:
        conditions.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            )
        )
        return True
    changed = False
    if current.status != status:
        current.status = status
        current.last_transition_time = now
        changed = True
    for attr, value in (
        ("reason", reason),
        ("message", message),
        ("observed_generation", generation),
    ):
        if getattr(current, attr) != value:
            setattr(current, attr, value)
            changed = True
    return changed


def remove_condition(conditions: list[Condition], type_: str) -> bool:
    before = len(conditions)
    conditions[:] = [c for c in conditions if c.type != type_]
    return len(conditions) != before
