"""Merging critical information (shape stage): the same CAVE from two sources is one item.

Sits after the judge stage, before `alerts` and the `criticalInformation` field. A CAVE (or any
critical information) recorded both in Kjernejournal and in the municipal EPJ becomes one item
with both provenances (Kjernejournal first: the national record), when they are of the same
type and name the same thing: the same code in the same system, or the same words. Where the
sources disagree (severity, reaction, status), `conflicts` names the field; the worst severity
is shown. Records from one source are never merged with each other. Pure.

>>> merge_critical([])
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

from connectors.model import CriticalInformation

T = TypeVar("T")

SOURCE_ORDER = ("kjernejournal", "municipal")
_SEVERITY = {"mild": 1, "low": 1, "moderate": 2, "severe": 3, "high": 3}
COMPARED = ("severity", "reaction", "status")


def _rank(item: CriticalInformation) -> int:
    source = item.provenance.source
    return SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER)


def _words(text: str | None) -> str:
    return " ".join((text or "").casefold().split())


def _same(a: CriticalInformation, b: CriticalInformation) -> bool:
    if a.type is not b.type:
        return False
    if a.code.code and (a.code.system, a.code.code) == (b.code.system, b.code.code):
        return True
    return bool(_words(a.description)) and _words(a.description) == _words(b.description)


def merge_critical(items: Sequence[CriticalInformation]) -> list[CriticalInformation]:
    """One item per piece of critical information, however many sources hold it."""
    groups: list[list[CriticalInformation]] = []
    for item in sorted(items, key=_rank):
        group = next((g for g in groups if any(_same(item, m) for m in g)
                      and item.provenance.source not in {m.provenance.source for m in g}), None)
        if group is None:
            groups.append([item])
        else:
            group.append(item)
    return [_merge(g) for g in groups]


def _merge(group: list[CriticalInformation]) -> CriticalInformation:
    base = group[0]
    provenances = _unique(p for m in group for p in (m.provenances or (m.provenance,)))
    if len(group) == 1:
        return base if base.provenances else replace(base, provenances=tuple(provenances))
    conflicts = [name for name in COMPARED
                 if len({_words(getattr(m, name)) for m in group} - {""}) > 1]
    worst = max((m.severity for m in group if m.severity),
                key=lambda s: _SEVERITY.get(s, 0), default=base.severity)
    reactions = _unique(m.reaction for m in group if m.reaction)
    return replace(
        base,
        provenances=tuple(provenances),
        severity=worst,
        reaction=", ".join(reactions) if reactions else None,
        status="active" if any(m.status == "active" for m in group) else base.status,
        recorded_at=max((m.recorded_at for m in group if m.recorded_at), default=None),
        conflicts=tuple(sorted(set(base.conflicts) | set(conflicts), key=_order)),
        security=tuple(_unique(s for m in group for s in m.security)),
    )


def _order(name: str) -> int:
    return COMPARED.index(name) if name in COMPARED else len(COMPARED)


def _unique(values: Iterable[T | None]) -> list[T]:
    seen: list[T] = []
    for value in values:
        if value is not None and value not in seen:
            seen.append(value)
    return seen
