"""The shape stage's merges look groups up by index; these check them against the pairwise
rules they replace (every item compared with every member of every group), on seeded random
records built to collide: few codes, ids, words, dates and sources."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest

from connectors.model import Coding, CriticalInformation, CriticalType, Medication, Provenance
from schema.shape import critical, linking

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _pairwise_link(items: list[Medication]) -> list[list[Medication]]:
    """linking's grouping as it was first written: a walk over every group's members."""
    groups: list[list[Medication]] = []
    for item in sorted(items, key=lambda m: linking._rank(m.provenance)):
        group = None
        if item.treatment_id:
            group = next((g for g in groups
                          if any(m.treatment_id == item.treatment_id for m in g)), None)
        if group is None:
            group = next((g for g in groups if any(
                (item.pll_id and m.pll_id == item.pll_id)
                or (item.prescription_id and m.prescription_id == item.prescription_id)
                for m in g)), None)
        if group is None and linking._is_administration(item) and item.code.code:
            same_drug = [g for g in groups if linking._compatible(item, g)
                         and any(m.code.code == item.code.code for m in g)]
            same_day = [g for g in same_drug
                        if item.started and any(m.started == item.started for m in g)]
            if same_day:
                group = same_day[0] if len(same_day) == 1 else None
            else:
                group = same_drug[0] if len(same_drug) == 1 else None
        if group is None:
            groups.append([item])
        else:
            group.append(item)
    return groups


def _pairwise_critical(items: list[CriticalInformation]) -> list[list[CriticalInformation]]:
    groups: list[list[CriticalInformation]] = []
    for item in sorted(items, key=critical._rank):
        group = next((g for g in groups if any(critical._same(item, m) for m in g)
                      and item.provenance.source not in {m.provenance.source for m in g}), None)
        if group is None:
            groups.append([item])
        else:
            group.append(item)
    return groups


def _maybe(rng: random.Random, values: list[str]) -> str | None:
    return rng.choice([None, "", *values])


def _medication(rng: random.Random, n: int) -> Medication:
    source = rng.choice(["pll", "eresept", "municipal", "municipal"])
    provenance = Provenance(source=source, record_id=str(n), fetched_at=AT)
    return Medication(
        id=f"{source}:{n}", code=Coding(system="atc", code=rng.choice(["", "A", "B", "C"])),
        name=rng.choice(["x", "y"]), status="active", provenance=provenance,
        provenances=(provenance,), started=rng.choice([None, date(2026, 1, 1), date(2026, 2, 1)]),
        treatment_id=_maybe(rng, ["t1", "t2"]), pll_id=_maybe(rng, ["p1", "p2", "p3"]),
        prescription_id=_maybe(rng, ["r1", "r2", "r3"]),
    )


def _critical(rng: random.Random, n: int) -> CriticalInformation:
    source = rng.choice(["kjernejournal", "municipal", "other", "extra"])  # two unranked
    return CriticalInformation(
        id=f"{source}:{n}", type=rng.choice(list(CriticalType)[:2]),
        code=Coding(system=rng.choice(["s1", "s2"]), code=rng.choice(["", "c1", "c2"])),
        description=rng.choice(["", "Penicillin", " penicillin ", "Latex"]),
        provenance=Provenance(source=source, record_id=str(n), fetched_at=AT),
    )


@pytest.mark.parametrize("seed", range(40))
def test_linking_groups_as_the_pairwise_rule(seed: int) -> None:
    rng = random.Random(seed)
    items = [_medication(rng, n) for n in range(rng.randint(0, 40))]
    expected = [linking._merge(g) for g in _pairwise_link(items)]
    assert linking.link_medications(items) == sorted(
        expected, key=lambda m: (m.status != "active", m.name.casefold(), m.id))


@pytest.mark.parametrize("seed", range(40))
def test_critical_merges_as_the_pairwise_rule(seed: int) -> None:
    rng = random.Random(seed)
    items = [_critical(rng, n) for n in range(rng.randint(0, 40))]
    assert critical.merge_critical(items) == [critical._merge(g)
                                              for g in _pairwise_critical(items)]
