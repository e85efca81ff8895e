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

from collections.abc import Iterable, Sequence
from datetime import date
from typing import TypeVar

from connectors.model import Coding, Dosage, Medication, MedicationRecord, Provenance

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


_RANK = {source: i for i, source in enumerate(SOURCE_ORDER)}


def _rank(provenance: Provenance) -> int:
    return _RANK.get(provenance.source, len(SOURCE_ORDER))


def _record_rank(record: MedicationRecord) -> int:
    return _RANK.get(record.provenance.source, len(SOURCE_ORDER))


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
                known = first.get(value)
                if known is None or index < known:
                    first[value] = index
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
    """One item for the group: built in one construction (every field of `Medication`, in
    `_FIELDS`' order, the test checks it), not with `dataclasses.replace`."""
    base = group[0]
    if len(group) == 1:
        own = record_of(base)  # one record (the usual unlinked item) needs no dedupe or sort
        records = own if len(own) == 1 else tuple(sorted(_unique(own), key=_record_rank))
        return type(base)(  # as `replace` would: the item's own class
            id=base.id, code=base.code, name=base.name, status=base.status,
            dosage=base.dosage, reason=base.reason, started=base.started, ended=base.ended,
            prescription_id=base.prescription_id, pll_id=base.pll_id,
            treatment_id=base.treatment_id, in_pll=base.in_pll, conflicts=base.conflicts,
            provenance=base.provenance, provenances=base.provenances or (base.provenance,),
            security=base.security, records=records)
    # one walk over the group: every record, provenance and security label, and per field the
    # first value that is not None (group order)
    own_records: list[MedicationRecord] = []
    all_provenances: list[Provenance] = []
    security: list[Coding] = []
    dosage: Dosage | None = None
    reason: Coding | None = None
    started: date | None = None
    prescription_id: str | None = None
    pll_id: str | None = None
    treatment_id: str | None = None
    coded: Medication | None = None
    in_pll = False
    for m in group:
        own_records.extend(record_of(m))
        if m.provenances:
            all_provenances.extend(m.provenances)
        else:
            all_provenances.append(m.provenance)
        if m.security:
            security.extend(m.security)
        if dosage is None:
            dosage = m.dosage
        if reason is None:
            reason = m.reason
        if started is None:
            started = m.started
        if prescription_id is None:
            prescription_id = m.prescription_id
        if pll_id is None:
            pll_id = m.pll_id
        if treatment_id is None:
            treatment_id = m.treatment_id
        if coded is None and m.code.code:
            coded = m
        if m.in_pll:
            in_pll = True
    if coded is None:
        coded = base
    records = tuple(sorted(_unique(own_records), key=_record_rank))
    provenances = sorted(_unique(all_provenances), key=_rank)
    return type(base)(
        id=base.id,
        code=coded.code,
        name=base.name or coded.name,
        status=base.status,
        dosage=dosage,
        reason=reason,
        started=started,
        ended=base.ended,
        prescription_id=prescription_id,
        pll_id=pll_id,
        treatment_id=treatment_id,
        in_pll=in_pll,
        conflicts=_conflicts(group),
        provenance=provenances[0],
        provenances=tuple(provenances),
        security=tuple(_unique(security)) if security else (),
        records=records,
    )


# The fields `_merge` builds, in `Medication`'s order (a new field must be merged there too).
_FIELDS = ("id", "code", "name", "status", "dosage", "reason", "started", "ended",
           "prescription_id", "pll_id", "treatment_id", "in_pll", "conflicts", "provenance",
           "provenances", "security", "records")


# The fields compared, in the order `conflicts` names them: code (ATC) and dosage (its words,
# case aside) over every record; status, started and ended over the treatment records only
# (administration records' status and dates describe doses given, not the treatment).
COMPARED = ("code", "dosage", "status", "started", "ended")
_ORDER = {name: i for i, name in enumerate(COMPARED)}


def _conflicts(group: list[Medication]) -> tuple[str, ...]:
    found = {c for m in group for c in m.conflicts}
    codes: set[str] = set()
    dosages: set[str] = set()
    statuses: set[str] = set()
    started: set[object] = set()
    ended: set[object] = set()
    for m in group:
        if m.code.code:
            codes.add(m.code.code)
        if m.dosage:
            dosages.add(" ".join(m.dosage.text.split()).casefold())
        if m.provenance.source not in ADMINISTRATION_SOURCES:
            if m.status is not None:
                statuses.add(m.status)
            if m.started is not None:
                started.add(m.started)
            if m.ended is not None:
                ended.add(m.ended)
    for name, values in (("code", codes), ("dosage", dosages), ("status", statuses),
                         ("started", started), ("ended", ended)):
        if len(values) > 1:
            found.add(name)
    if len(found) < 2:
        return tuple(found)
    return tuple(sorted(found, key=lambda c: (_ORDER.get(c, len(COMPARED)), c)))


def _unique(values: Iterable[T]) -> list[T]:
    seen: list[T] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
