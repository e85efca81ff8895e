"""Conflicts between treatment limitations: shown, never resolved silently (shape stage).

Sits after the judge stage, before `alerts` and the `treatmentLimitations` field. Every
limitation gets its meaning from the terminology (`schema.shape.terminology`); two active
decisions disagree when one says full treatment including CPR and the other limits treatment
(HLR-minus or another limitation), whichever sources and codes they came with. Each decision
in a disagreement is marked with the provenances of the decisions it contradicts, and the
disagreeing decisions form a `Conflict` (newest decision first) that becomes the first alert.

>>> annotate([], load_terminology())
[]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from connectors.model import LimitationMeaning, TreatmentLimitation
from schema.shape.terminology import Terminology

_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
_LIMITS = frozenset({LimitationMeaning.HLR_MINUS, LimitationMeaning.OTHER_LIMITATION})


@dataclass(frozen=True)
class Conflict:
    """Active decisions that contradict each other, newest first."""

    decisions: tuple[TreatmentLimitation, ...]


def disagree(a: LimitationMeaning, b: LimitationMeaning) -> bool:
    """Full treatment against any limitation; two limitations (or unknowns) can stand together."""
    full = LimitationMeaning.FULL_TREATMENT
    return (a is full and b in _LIMITS) or (b is full and a in _LIMITS)


def decided(item: TreatmentLimitation) -> datetime:
    moment = item.decided_at or item.provenance.recorded_at or _EPOCH
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def annotate(items: Sequence[TreatmentLimitation], terms: Terminology
             ) -> list[TreatmentLimitation]:
    """Every item with its meaning, and the active ones with what they contradict."""
    with_meaning = [replace(i, meaning=terms.meaning_of(i.code, i.description))
                    for i in items]
    active = [i for i in with_meaning if i.status == "active"]
    out = []
    for item in with_meaning:
        against = sorted((other for other in active if other is not item
                          and item.status == "active" and disagree(item.meaning, other.meaning)),
                         key=decided, reverse=True)
        out.append(replace(item, conflicts_with=tuple(o.provenance for o in against))
                   if against else item)
    return out


def conflicts(items: Sequence[TreatmentLimitation]) -> list[Conflict]:
    """The groups of annotated decisions that contradict each other (connected by any
    disagreement), each newest first; the newest group first."""
    marked = [i for i in items if i.conflicts_with]
    groups: list[list[TreatmentLimitation]] = []
    for item in marked:
        touching = [g for g in groups if any(_linked(item, other) for other in g)]
        merged = [item, *(member for g in touching for member in g)]
        groups = [g for g in groups if g not in touching] + [merged]
    found = [Conflict(tuple(sorted(g, key=decided, reverse=True))) for g in groups]
    return sorted(found, key=lambda c: decided(c.decisions[0]), reverse=True)


def _linked(a: TreatmentLimitation, b: TreatmentLimitation) -> bool:
    return b.provenance in a.conflicts_with or a.provenance in b.conflicts_with
