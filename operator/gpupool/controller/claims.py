"""A namespace claimed by two TeamQuotas: the older keeps it, the newer is refused.

The webhook refuses the second claim, but with the webhook down (or two TeamQuotas
created at once) both can exist, and jobs of that namespace used to go silently to
whichever TeamQuota sorted first by name. Now the operator decides, the same way on every
instance and after every restart: TeamQuotas are taken oldest first (creationTimestamp,
then name); one that claims a namespace an older one holds is refused as a whole — not
in effect, its jobs blocked as if it did not exist — until the clash is removed. Both
carry the condition `NamespaceConflict` saying which namespaces and who holds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gpupool.controller.records import TeamRecord
from gpupool.controller.snapshot import Indexed

_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Claims:
    """TeamQuota name -> what its `NamespaceConflict` condition says (None: no conflict)."""

    refused: dict[str, str] = field(default_factory=dict)
    holding: dict[str, str] = field(default_factory=dict)

    def conflict(self, team: str) -> str | None:
        return self.refused.get(team) or self.holding.get(team)


def resolve_claims(teams: Mapping[str, TeamRecord]) -> Claims:
    claims = Claims()
    owner: dict[str, str] = {}
    contested: dict[str, dict[str, list[str]]] = {}
    order = sorted(
        (record for record in teams.values() if record.spec is not None),
        key=lambda record: (record.created or _NEVER, record.name),
    )
    for record in order:
        assert record.spec is not None
        clashes: dict[str, list[str]] = {}
        for namespace in record.spec.namespaces:
            holder = owner.get(namespace)
            if holder is not None and holder != record.name:
                clashes.setdefault(holder, []).append(namespace)
        if clashes:
            claims.refused[record.name] = "; ".join(
                f"spec.namespaces: {sorted(namespaces)} already belong to TeamQuota "
                f"{holder!r} (older); this TeamQuota is not in effect until they are "
                "removed from one of the two"
                for holder, namespaces in sorted(clashes.items())
            )
            for holder, namespaces in clashes.items():
                contested.setdefault(holder, {})[record.name] = namespaces
            continue
        for namespace in record.spec.namespaces:
            owner[namespace] = record.name
    for holder, rivals in contested.items():
        claims.holding[holder] = "; ".join(
            f"spec.namespaces: {sorted(namespaces)} are also claimed by TeamQuota {rival!r} "
            "(newer, refused); this TeamQuota keeps them"
            for rival, namespaces in sorted(rivals.items())
        )
    return claims


def without_refused(indexed: Indexed, claims: Claims) -> Indexed:
    """The indexes as the scheduler sees them: refused TeamQuotas have no spec in effect."""
    if not claims.refused:
        return indexed
    teams = {
        name: dataclasses.replace(record, spec=None, spec_error=claims.refused[name])
        if name in claims.refused
        else record
        for name, record in indexed.teams.items()
    }
    return dataclasses.replace(indexed, teams=teams)
