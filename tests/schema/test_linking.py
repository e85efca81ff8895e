"""Linking PLL, e-resept and municipal records of one treatment (schema.shape.linking)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.model import Coding, Dosage, Medication, Provenance
from schema.shape.linking import link_medications

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ATC = "http://www.whocc.no/atc"
METFORMIN, FUROSEMID, ZOPIKLON = "A10BA02", "C03CA01", "N05CF01"
NAMES = {METFORMIN: "Metformin 500 mg tablett", FUROSEMID: "Furosemid 40 mg tablett",
         ZOPIKLON: "Zopiklon 5 mg tablett"}


def med(source: str, record: str, atc: str = METFORMIN, *, dosage: str | None = "1 tablett x 2",
        started: date | None = date(2011, 5, 10), **fields: Any) -> Medication:
    provenance = Provenance(source=source, record_id=record, fetched_at=AT,
                            municipality="0301" if source == "municipal" else None)
    return Medication(
        id=f"{source}:{record}", code=Coding(ATC, atc), name=fields.pop("name", NAMES[atc]),
        status=fields.pop("status", "active"), provenance=provenance,
        provenances=(provenance,), dosage=Dosage(dosage) if dosage else None, started=started,
        **fields,
    )


PLL = med("pll", "pll-1", pll_id="pll-1", treatment_id="tr-1", in_pll=True)
RX = med("eresept", "rx-1", prescription_id="rx-1", treatment_id="tr-1")
RX_X3 = med("eresept", "rx-1", prescription_id="rx-1", treatment_id="tr-1",
            dosage="1 tablett x 3")
MUNI = med("municipal", "adm-1")  # no ids: matched on ATC (+ start date)


def sources(item: Medication) -> list[str]:
    return [p.source for p in item.provenances]


# (case, input items, expected groups as lists of record ids, expected conflicts per group)
CASES: list[tuple[str, list[Medication], list[list[str]], list[tuple[str, ...]]]] = [
    ("treatment id", [RX, PLL], [["pll-1", "rx-1"]], [()]),
    ("dosage conflict", [PLL, RX_X3], [["pll-1", "rx-1"]], [("dosage",)]),
    ("dosage differs only in spacing and case",
     [PLL, med("eresept", "rx-1", treatment_id="tr-1", dosage="1  Tablett x 2")],
     [["pll-1", "rx-1"]], [()]),
    ("prescription id without treatment id",
     [med("pll", "pll-1", pll_id="pll-1", prescription_id="rx-1", in_pll=True),
      med("eresept", "rx-1", prescription_id="rx-1")], [["pll-1", "rx-1"]], [()]),
    ("pll id without treatment id",
     [med("pll", "pll-1", pll_id="pll-1", in_pll=True),
      med("municipal", "adm-1", FUROSEMID), med("municipal", "adm-2", pll_id="pll-1")],
     [["adm-1"], ["pll-1", "adm-2"]], [(), ()]),
    ("municipal by ATC and start date", [MUNI, PLL, RX], [["pll-1", "rx-1", "adm-1"]], [()]),
    ("municipal by ATC alone when unique",
     [PLL, med("municipal", "adm-1", started=date(2026, 10, 1), dosage="1 tablett x 2")],
     [["pll-1", "adm-1"]], [()]),
    ("municipal dosage disagrees",
     [PLL, med("municipal", "adm-1", dosage="1 tablett morgen")],
     [["pll-1", "adm-1"]], [("dosage",)]),
    ("municipal with treatment id",
     [PLL, med("municipal", "adm-1", treatment_id="tr-1", started=None)],
     [["pll-1", "adm-1"]], [()]),
    ("municipal start date picks one of two treatments",
     [PLL, med("pll", "pll-2", pll_id="pll-2", treatment_id="tr-2", in_pll=True,
               started=date(2020, 1, 1)),
      med("municipal", "adm-1", started=date(2020, 1, 1))],
     [["pll-1"], ["pll-2", "adm-1"]], [(), ()]),
    ("municipal ATC ambiguous: no merge",
     [PLL, med("pll", "pll-2", pll_id="pll-2", treatment_id="tr-2", in_pll=True,
               started=date(2020, 1, 1)),
      med("municipal", "adm-1", started=date(2025, 1, 1))],
     [["pll-1"], ["pll-2"], ["adm-1"]], [(), (), ()]),
    ("municipal with a different treatment id: no merge",
     [PLL, med("municipal", "adm-1", treatment_id="tr-9")], [["pll-1"], ["adm-1"]], [(), ()]),
    ("different drugs same day: no merge",
     [PLL, med("municipal", "adm-1", FUROSEMID)], [["adm-1"], ["pll-1"]], [(), ()]),
    ("same drug, different prescriptions: no heuristic merge for national records",
     [med("eresept", "rx-1", prescription_id="rx-1"),
      med("eresept", "rx-2", prescription_id="rx-2")], [["rx-1"], ["rx-2"]], [(), ()]),
    ("same drug, different PLL treatments: no merge",
     [PLL, med("pll", "pll-2", pll_id="pll-2", treatment_id="tr-2", in_pll=True)],
     [["pll-1"], ["pll-2"]], [(), ()]),
    ("prescription only", [med("eresept", "rx-4", ZOPIKLON, prescription_id="rx-4")],
     [["rx-4"]], [()]),
    ("status and start conflict between national records",
     [PLL, med("eresept", "rx-1", treatment_id="tr-1", status="completed",
               started=date(2011, 6, 1))],
     [["pll-1", "rx-1"]], [("status", "started")]),
    ("ATC conflict on a shared treatment id",
     [PLL, med("eresept", "rx-1", FUROSEMID, treatment_id="tr-1")],
     [["pll-1", "rx-1"]], [("code",)]),
    ("municipal status and start never conflict",
     [PLL, med("municipal", "adm-1", treatment_id="tr-1", status="completed",
               started=date(2026, 11, 30))],
     [["pll-1", "adm-1"]], [()]),
]


@pytest.mark.parametrize(("items", "groups", "conflicts"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_link_medications_groups_records_of_one_treatment(
    items: list[Medication], groups: list[list[str]], conflicts: list[tuple[str, ...]]
) -> None:
    linked = link_medications(items)
    actual = [[p.record_id for p in item.provenances] for item in linked]
    assert sorted(actual) == sorted(groups)
    by_records = {tuple(p.record_id for p in item.provenances): item for item in linked}
    for group, expected in zip(groups, conflicts, strict=True):
        assert by_records[tuple(group)].conflicts == expected


def test_merged_item_keeps_every_provenance_in_source_order_and_both_ids() -> None:
    (item,) = link_medications([MUNI, RX_X3, PLL])
    assert sources(item) == ["pll", "eresept", "municipal"]
    assert item.provenance == PLL.provenance
    assert item.id == PLL.id
    assert (item.pll_id, item.prescription_id, item.treatment_id) == ("pll-1", "rx-1", "tr-1")
    assert item.in_pll is True
    assert item.conflicts == ("dosage",)


def test_pll_value_wins_for_display() -> None:
    (item,) = link_medications([RX_X3, PLL])
    assert item.dosage == Dosage("1 tablett x 2")
    (item,) = link_medications([med("eresept", "rx-1", treatment_id="tr-1", name="Metformin Teva"),
                                PLL])
    assert item.name == NAMES[METFORMIN]


def test_missing_values_are_filled_from_the_other_sources() -> None:
    bare = med("pll", "pll-1", pll_id="pll-1", treatment_id="tr-1", in_pll=True, dosage=None,
               started=None)
    reason = Coding("urn:oid:2.16.578.1.12.4.1.1.7170", "T90", "Diabetes type 2")
    rx = med("eresept", "rx-1", prescription_id="rx-1", treatment_id="tr-1", reason=reason)
    (item,) = link_medications([bare, rx])
    assert (item.dosage, item.started, item.reason) == (Dosage("1 tablett x 2"),
                                                        date(2011, 5, 10), reason)
    assert item.conflicts == ()


def test_security_labels_of_every_source_are_kept() -> None:
    label = Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R")
    rx = med("eresept", "rx-1", treatment_id="tr-1", security=(label,))
    (item,) = link_medications([PLL, rx])
    assert item.security == (label,)


def test_order_is_active_first_then_by_name() -> None:
    items = [
        med("eresept", "rx-4", ZOPIKLON, prescription_id="rx-4"),
        med("pll", "pll-9", FUROSEMID, pll_id="pll-9", status="completed", in_pll=True),
        PLL,
        med("eresept", "rx-8", FUROSEMID, prescription_id="rx-8", name="albyl-E"),
    ]
    assert [m.provenance.record_id for m in link_medications(items)] == [
        "rx-8", "pll-1", "rx-4", "pll-9"]


def test_unlinked_item_gets_its_provenance_listed() -> None:
    bare = Medication(id="pll:x", code=Coding(ATC, METFORMIN), name="Metformin",
                      status="active", provenance=PLL.provenance)
    (item,) = link_medications([bare])
    assert item.provenances == (PLL.provenance,)


def test_linking_is_idempotent() -> None:
    items = [MUNI, RX_X3, PLL, med("eresept", "rx-4", ZOPIKLON, prescription_id="rx-4")]
    once = link_medications(items)
    assert link_medications(once) == once


def test_linking_nothing_gives_nothing() -> None:
    assert link_medications([]) == []
