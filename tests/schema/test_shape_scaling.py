"""The shape stage's merges as they were written before being made to scale (issue 16): each
group built with `dataclasses.replace`, the conflicts compared through a table of lambdas.
The current merges must give the same items, on seeded random records built to collide and
to carry every field (ids, dosages, reasons, security labels, records and conflicts of items
linked before), at the size the gateway meets (1,000 records per source)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pytest

from connectors.model import (
    AlertKind,
    Coding,
    CriticalInformation,
    CriticalType,
    Dosage,
    Medication,
    MedicationRecord,
    Provenance,
)
from schema.shape import critical, linking
from schema.shape.alerts import _critical_priority

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
T = TypeVar("T")


# --- the reference: linking's merge as it was -------------------------------------------------

def _old_unique(values: Iterable[T]) -> list[T]:
    seen: list[T] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _old_dosage_text(item: Medication) -> str | None:
    return " ".join(item.dosage.text.split()).casefold() if item.dosage else None


_OLD_COMPARED: tuple[tuple[str, Callable[[Medication], object], bool], ...] = (
    ("code", lambda m: m.code.code or None, True),
    ("dosage", _old_dosage_text, True),
    ("status", lambda m: m.status, False),
    ("started", lambda m: m.started, False),
    ("ended", lambda m: m.ended, False),
)


def _old_conflicts(group: list[Medication]) -> tuple[str, ...]:
    found = {c for m in group for c in m.conflicts}
    treatments = [m for m in group if not linking._is_administration(m)]
    for name, value_of, with_administrations in _OLD_COMPARED:
        members = group if with_administrations else treatments
        if len({value_of(m) for m in members} - {None}) > 1:
            found.add(name)
    order = [name for name, _, _ in _OLD_COMPARED]
    return tuple(sorted(found, key=lambda c: (order.index(c) if c in order else len(order), c)))


def _old_record_of(item: Medication) -> tuple[MedicationRecord, ...]:
    if item.records:
        return item.records
    return (MedicationRecord(
        provenance=item.provenance, name=item.name, code=item.code, status=item.status,
        dosage=item.dosage, started=item.started, ended=item.ended,
        prescription_id=item.prescription_id, pll_id=item.pll_id),)


def _old_link_merge(group: list[Medication]) -> Medication:
    rank = linking._rank
    base = group[0]
    if len(group) == 1:
        own = _old_record_of(base)
        records = own if len(own) == 1 else tuple(sorted(_old_unique(own),
                                                         key=lambda r: rank(r.provenance)))
        return dataclasses.replace(base, provenances=base.provenances or (base.provenance,),
                                   records=records)
    records = tuple(sorted(_old_unique(r for m in group for r in _old_record_of(m)),
                           key=lambda r: rank(r.provenance)))
    provenances = sorted(_old_unique(p for m in group for p in (m.provenances or (m.provenance,))),
                         key=rank)

    def first(name: str) -> Any:
        return next((getattr(m, name) for m in group if getattr(m, name) is not None), None)

    coded = next((m for m in group if m.code.code), base)
    return dataclasses.replace(
        base, code=coded.code, name=base.name or coded.name, provenance=provenances[0],
        provenances=tuple(provenances), dosage=first("dosage"), reason=first("reason"),
        started=first("started"), prescription_id=first("prescription_id"),
        pll_id=first("pll_id"), treatment_id=first("treatment_id"),
        in_pll=any(m.in_pll for m in group), conflicts=_old_conflicts(group),
        security=tuple(_old_unique(s for m in group for s in m.security)), records=records)


def _old_link(items: list[Medication]) -> list[Medication]:
    groups = linking._Groups()  # the grouping is checked against the pairwise rule elsewhere
    for item in sorted(items, key=lambda m: linking._rank(m.provenance)):
        groups.add(item, groups.matching(item))
    merged = [_old_link_merge(group) for group in groups.groups]
    return sorted(merged, key=lambda m: (m.status != "active", m.name.casefold(), m.id))


# --- the reference: critical's merge as it was ------------------------------------------------

def _old_critical_merge(group: list[CriticalInformation]) -> CriticalInformation:
    base = group[0]
    provenances = [p for p in _old_unique(p for m in group for p in (m.provenances or (m.provenance,)))
                   if p is not None]
    if len(group) == 1:
        return base if base.provenances else dataclasses.replace(
            base, provenances=tuple(provenances))
    return critical._merge(group)  # the merge of several is unchanged


# --- seeded records ---------------------------------------------------------------------------

def _pick(rng: random.Random, values: list[Any]) -> Any:
    return rng.choice(values)


def _medication(rng: random.Random, n: int) -> Medication:
    source = _pick(rng, ["pll", "eresept", "municipal", "other"])
    provenance = Provenance(source=source, record_id=str(n % 50), fetched_at=AT)
    return Medication(
        id=f"{source}:{n}", code=Coding("atc", _pick(rng, ["", "A", "B", "C", "D"])),
        name=_pick(rng, ["", "x", "Y"]), status=_pick(rng, ["active", "stopped"]),
        dosage=_pick(rng, [None, Dosage("1 x 2"), Dosage(" 1  X 2"), Dosage("1 x 3"), Dosage("")]),
        reason=_pick(rng, [None, Coding("icpc", "K86")]),
        started=_pick(rng, [None, date(2026, 1, 1), date(2026, 2, 1)]),
        ended=_pick(rng, [None, date(2026, 6, 1), date(2026, 7, 1)]),
        prescription_id=_pick(rng, [None, "", *(f"r{i}" for i in range(8))]),
        pll_id=_pick(rng, [None, "", *(f"p{i}" for i in range(8))]),
        treatment_id=_pick(rng, [None, "", *(f"t{i}" for i in range(8))]),
        in_pll=_pick(rng, [False, True]), conflicts=_pick(rng, [(), ("dosage",), ("zeta", "code")]),
        provenance=provenance, provenances=_pick(rng, [(), (provenance,)]),
        security=_pick(rng, [(), (Coding("conf", "R"),), (Coding("conf", "R"), Coding("x", "N"))]),
    )


def _medications(seed: int, count: int) -> list[Medication]:
    rng = random.Random(seed)
    items = [_medication(rng, n) for n in range(count)]
    relinked = linking.link_medications(items[: count // 4])  # items with records, linked once
    return items + rng.sample(relinked, len(relinked) // 2)


def test_the_merges_construct_every_field() -> None:
    assert linking._FIELDS == tuple(f.name for f in dataclasses.fields(Medication))
    assert critical._FIELDS == tuple(f.name for f in dataclasses.fields(CriticalInformation))


@pytest.mark.parametrize("seed", range(6))
def test_linking_merges_as_before(seed: int) -> None:
    items = _medications(seed, 600)
    assert linking.link_medications(items) == _old_link(items)


def test_linking_merges_as_before_at_1000_records_per_source() -> None:
    items = _medications(99, 3000)
    new = linking.link_medications(items)
    assert new == _old_link(items)
    assert any(len(m.records) > 1 for m in new)
    assert any(m.conflicts for m in new)


def test_the_bench_shape_links_as_before() -> None:
    """The bench's shape: 1,000 PLL and e-resept records of one drug, linked by treatment."""
    items = []
    for n in range(1000):
        for source in ("pll", "eresept"):
            provenance = Provenance(source=source, record_id=f"{source}{n}", fetched_at=AT)
            items.append(Medication(
                id=f"{source}:{n}", code=Coding("atc", "A02BC01"), name=f"Legemiddel {n}",
                status="active", dosage=Dosage("1 tablett daglig"), started=date(2022, 9, 26),
                treatment_id=f"t{n}", provenance=provenance, provenances=(provenance,),
                pll_id=f"p{n}" if source == "pll" else None,
                prescription_id=f"r{n}" if source == "eresept" else None))
    assert linking.link_medications(items) == _old_link(items)


def _critical(rng: random.Random, n: int) -> CriticalInformation:
    source = _pick(rng, ["kjernejournal", "municipal", "other"])
    provenance = Provenance(source=source, record_id=str(n), fetched_at=AT)
    return CriticalInformation(
        id=f"{source}:{n}", type=_pick(rng, list(CriticalType)[:2]),
        code=Coding("sct", _pick(rng, ["", "c1"])),  # one code shared by most
        description=f"allergen {rng.randrange(400)}", status=_pick(rng, ["active", "inactive"]),
        severity=_pick(rng, [None, "mild", "high"]), reaction=_pick(rng, [None, "utslett"]),
        verification=_pick(rng, [None, "confirmed"]), recorded_at=_pick(rng, [None, AT]),
        conflicts=_pick(rng, [(), ("status",)]),
        provenance=provenance, provenances=_pick(rng, [(), (provenance,)]),
        security=_pick(rng, [(), (Coding("conf", "R"),)]))


def test_critical_merges_as_before_on_a_large_input() -> None:
    rng = random.Random(7)
    items = [_critical(rng, n) for n in range(1200)]
    merged = critical.merge_critical(items)
    expected_groups: dict[str, list[CriticalInformation]] = {}
    assert merged == [critical._merge(g) for g in _groups_of(items, expected_groups)]
    assert [critical._merge(g) for g in expected_groups.values()] == [
        _old_critical_merge(g) for g in expected_groups.values()]
    assert any(len(m.provenances) > 1 for m in merged)


def _groups_of(items: list[CriticalInformation],
               out: dict[str, list[CriticalInformation]]) -> list[list[CriticalInformation]]:
    """The pairwise rule (as in tests/schema/test_shape_indexed.py); `out` gets each group by
    its first item's id."""
    groups: list[list[CriticalInformation]] = []
    for item in sorted(items, key=critical._rank):
        group = next((g for g in groups
                      if item.provenance.source not in {m.provenance.source for m in g}
                      and any(critical._same(item, m) for m in g)), None)
        if group is None:
            groups.append([item])
            out[item.id] = groups[-1]
        else:
            group.append(item)
    return groups


@pytest.mark.parametrize("kind", list(CriticalType))
@pytest.mark.parametrize("severity", [None, "mild", "severe", "high"])
def test_the_alert_priority_of_critical_information_as_before(kind: CriticalType,
                                                              severity: str | None) -> None:
    old = {CriticalType.ALLERGY: ((2 if severity in ("severe", "high") else 5), AlertKind.ALLERGY),
           CriticalType.CRITICAL_CONDITION: (3, AlertKind.CRITICAL_CONDITION),
           CriticalType.ANAESTHESIA_COMPLICATION: (4, AlertKind.ANAESTHESIA_COMPLICATION)}
    item = CriticalInformation(id="i", type=kind, code=Coding("s", "c"), description="d",
                               severity=severity,
                               provenance=Provenance(source="kjernejournal", record_id="i",
                                                     fetched_at=AT))
    assert _critical_priority(item) == old.get(kind, (6, AlertKind.OTHER_CRITICAL))
