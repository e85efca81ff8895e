"""Linking: one treatment recorded by PLL, e-resept and municipal administration becomes one item.

Sits in the shape stage, after the judge stage and before the schema serves
`Patient.medications`: the resolver passes the permitted MEDICATIONS items of every source
through `link_medications`. Pure: items in, items out.

Records match, in this order, on a shared `treatment_id`; else a shared `pll_id` or
`prescription_id`; else, for municipal administration records only (which carry no national
ids), on the same ATC code and start date, or on the ATC code alone when exactly one treatment
has it. Heuristic matches never cross differing ids, and different drugs never merge. A merged
item keeps every provenance (pll, then eresept, then municipal), the PLL values for display,
names the fields the sources disagree on in `conflicts` (shown, not resolved), and keeps each
source's own values in `records`, so the other source's dose can be read next to the
linked one.

>>> link_medications([])
[]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from connectors.model import Coding, Medication, MedicationRecord, Provenance

SOURCE_ORDER = ("pll", "eresept", "municipal")
# Records of administrations: their status and dates describe doses given, not the treatment.
ADMINISTRATION_SOURCES = frozenset({"municipal"})
ID_FIELDS = ("treatment_id", "pll_id", "prescription_id")
T = TypeVar("T", Provenance, Coding, MedicationRecord)


def link_medications(items: Sequence[Medication]) -> list[Medication]:
    """Merge the records of each treatment into one item; active first, then by name."""
    groups = _Groups()
    for item in sorted(items, key=lambda m: _rank(m.provenance)):
        groups.add(item, groups.matching(item))
    merged = [_merge(group) for group in groups.groups]
    return sorted(merged, key=lambda m: (m.status != "active", m.name.casefold(), m.id))


def _rank(provenance: Provenance) -> int:
    source = provenance.source
    return SOURCE_ORDER.index(source) if source in SOURCE_ORDER else len(SOURCE_ORDER)


def _is_administration(item: Medication) -> bool:
    return item.provenance.source in ADMINISTRATION_SOURCES


class _Groups:
    """The groups made so far, indexed by the values they are matched on: the first group
    holding an id, the groups holding an ATC code. Matching an item is then a look-up, not a
    walk over every group's members (quadratic: at 1,000 records per source it was most of a
    request's CPU, bench/RESULTS.md)."""

    def __init__(self) -> None:
        self.groups: list[list[Medication]] = []
        self._first: dict[str, dict[str, int]] = {name: {} for name in ID_FIELDS}
        self._by_code: dict[str, set[int]] = {}

    def add(self, item: Medication, index: int | None) -> None:
        if index is None:
            index = len(self.groups)
            self.groups.append([item])
        else:
            self.groups[index].append(item)
        for name in ID_FIELDS:
            value = getattr(item, name)
            if value:
                first = self._first[name]
                first[value] = min(first.get(value, index), index)
        if item.code.code:
            self._by_code.setdefault(item.code.code, set()).add(index)

    def matching(self, item: Medication) -> int | None:
        """The index of the group `item` belongs to (the rule in the module docstring)."""
        if item.treatment_id and item.treatment_id in self._first["treatment_id"]:
            return self._first["treatment_id"][item.treatment_id]
        by_id = [first[value] for name, first in self._first.items() if name != "treatment_id"
                 for value in (getattr(item, name),) if value and value in first]
        if by_id:
            return min(by_id)
        if not _is_administration(item) or not item.code.code:
            return None
        same_drug = [i for i in sorted(self._by_code.get(item.code.code, ()))
                     if _compatible(item, self.groups[i])]
        same_day = [i for i in same_drug
                    if item.started and any(m.started == item.started for m in self.groups[i])]
        if same_day:
            return same_day[0] if len(same_day) == 1 else None
        return same_drug[0] if len(same_drug) == 1 else None


def _compatible(item: Medication, group: list[Medication]) -> bool:
    """False when the item and the group carry different values of the same id."""
    for name in ID_FIELDS:
        value = getattr(item, name)
        known = {getattr(m, name) for m in group} - {None}
        if value and known and value not in known:
            return False
    return True


def record_of(item: Medication) -> tuple[MedicationRecord, ...]:
    """The item's own per-source records (a linked item keeps them), or it as one record."""
    if item.records:
        return item.records
    return (MedicationRecord(
        provenance=item.provenance, name=item.name, code=item.code, status=item.status,
        dosage=item.dosage, started=item.started, ended=item.ended,
        prescription_id=item.prescription_id, pll_id=item.pll_id),)


def _merge(group: list[Medication]) -> Medication:
    base = group[0]
    if len(group) == 1:
        own = record_of(base)  # one record (the usual unlinked item) needs no dedupe or sort
        records = own if len(own) == 1 else tuple(sorted(_unique(own),
                                                         key=lambda r: _rank(r.provenance)))
        return replace(base, provenances=base.provenances or (base.provenance,), records=records)
    records = tuple(sorted(_unique(r for m in group for r in record_of(m)),
                           key=lambda r: _rank(r.provenance)))
    provenances = sorted(_unique(p for m in group for p in (m.provenances or (m.provenance,))),
                         key=_rank)

    def first(name: str) -> Any:
        return next((getattr(m, name) for m in group if getattr(m, name) is not None), None)

    coded = next((m for m in group if m.code.code), base)
    return replace(
        base,
        code=coded.code,
        name=base.name or coded.name,
        provenance=provenances[0],
        provenances=tuple(provenances),
        dosage=first("dosage"),
        reason=first("reason"),
        started=first("started"),
        prescription_id=first("prescription_id"),
        pll_id=first("pll_id"),
        treatment_id=first("treatment_id"),
        in_pll=any(m.in_pll for m in group),
        conflicts=_conflicts(group),
        security=tuple(_unique(s for m in group for s in m.security)),
        records=records,
    )


def _dosage_text(item: Medication) -> str | None:
    return " ".join(item.dosage.text.split()).casefold() if item.dosage else None


# Which fields are compared, how, and whether administration records take part.
COMPARED: tuple[tuple[str, Callable[[Medication], object], bool], ...] = (
    ("code", lambda m: m.code.code or None, True),
    ("dosage", _dosage_text, True),
    ("status", lambda m: m.status, False),
    ("started", lambda m: m.started, False),
    ("ended", lambda m: m.ended, False),
)


def _conflicts(group: list[Medication]) -> tuple[str, ...]:
    found = {c for m in group for c in m.conflicts}
    treatments = [m for m in group if not _is_administration(m)]
    for name, value_of, with_administrations in COMPARED:
        members = group if with_administrations else treatments
        if len({value_of(m) for m in members} - {None}) > 1:
            found.add(name)
    order = [name for name, _, _ in COMPARED]
    return tuple(sorted(found, key=lambda c: (order.index(c) if c in order else len(order), c)))


def _unique(values: Iterable[T]) -> list[T]:
    seen: list[T] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
