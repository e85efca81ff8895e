"""The shape stage's conflict, terminology and merge rules, as tables (pure, no HTTP)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.model import (
    AlertKind,
    Coding,
    CriticalInformation,
    CriticalType,
    LimitationMeaning,
    Provenance,
    TreatmentLimitation,
)
from schema.shape.alerts import build_alerts
from schema.shape.conflicts import annotate, conflicts, disagree
from schema.shape.critical import merge_critical
from schema.shape.terminology import load_terminology

SNOMED = "http://snomed.info/sct"
KJ = "http://nhn.no/kj/fhir/CodeSystem/Behandlingsavklaring"
TERMS = load_terminology()
HLR, FULL, OTHER, UNKNOWN = (LimitationMeaning.HLR_MINUS, LimitationMeaning.FULL_TREATMENT,
                             LimitationMeaning.OTHER_LIMITATION, LimitationMeaning.UNKNOWN)


def tl(rid: str, system: str, code: str, display: str = "", *, source: str = "municipal",
       day: str = "2025-01-10", status: str = "active", description: str = ""
       ) -> TreatmentLimitation:
    at = datetime.fromisoformat(f"{day}T10:00:00+01:00")
    return TreatmentLimitation(id=rid, code=Coding(system, code, display or None),
                               description=description or display, status=status,
                               provenance=Provenance(source, rid, at, recorded_at=at),
                               decided_at=at)


@pytest.mark.parametrize(("system", "code", "text", "meaning"), [
    (SNOMED, "304253006", "", HLR),
    (SNOMED, "450476008", "", HLR),
    (SNOMED, "304252001", "", FULL),
    (KJ, "HLR-MINUS", "", HLR),
    (KJ, "FULL-BEHANDLING", "", FULL),
    ("urn:local", "X1", "Full behandling inkludert HLR", FULL),
    ("urn:local", "X2", "Ikke full behandling: ikke respirator", OTHER),
    ("urn:local", "X3", "HLR-minus etter samtale", HLR),
    ("urn:local", "X4", "Ubegrenset behandling", FULL),
    ("urn:local", "X5", "Noe helt annet", UNKNOWN),
    (SNOMED, "304253006", "full behandling", HLR),  # a known code decides before the words
])
def test_meaning_comes_from_the_code_else_the_words(system: str, code: str, text: str,
                                                    meaning: LimitationMeaning) -> None:
    assert TERMS.meaning_of(Coding(system, code), text) is meaning


@pytest.mark.parametrize(("a", "b", "expected"), [
    (HLR, FULL, True), (OTHER, FULL, True), (FULL, HLR, True),
    (HLR, OTHER, False), (HLR, HLR, False), (FULL, FULL, False),
    (UNKNOWN, FULL, False), (UNKNOWN, HLR, False),
])
def test_which_meanings_disagree(a: LimitationMeaning, b: LimitationMeaning,
                                 expected: bool) -> None:
    assert disagree(a, b) is expected


def test_disagreeing_decisions_are_marked_and_grouped_newest_first() -> None:
    hlr = tl("hlr", SNOMED, "304253006", "HLR-minus", day="2025-01-10")
    full = tl("full", KJ, "FULL-BEHANDLING", "Full behandling inkludert HLR",
              source="kjernejournal", day="2026-10-01")
    other = tl("resp", "urn:local", "R", "Ikke respirator", day="2024-06-01")
    marked = {t.id: t for t in annotate([hlr, full, other], TERMS)}
    assert marked["hlr"].conflicts_with == (full.provenance,)
    assert marked["resp"].conflicts_with == (full.provenance,)
    assert marked["full"].conflicts_with == (hlr.provenance, other.provenance)  # newest first
    [conflict] = conflicts(list(marked.values()))
    assert [d.id for d in conflict.decisions] == ["full", "hlr", "resp"]


def test_an_inactive_decision_contradicts_nothing() -> None:
    hlr = tl("hlr", SNOMED, "304253006", "HLR-minus")
    old = tl("full", SNOMED, "304252001", "For resuscitation", status="inactive")
    assert [t.conflicts_with for t in annotate([hlr, old], TERMS)] == [(), ()]


def test_the_conflict_alert_comes_first_then_the_decisions_newest_first() -> None:
    hlr = tl("hlr", SNOMED, "304253006", "HLR-minus", day="2025-01-10")
    full = tl("full", KJ, "FULL-BEHANDLING", "Full behandling inkludert HLR",
              source="kjernejournal", day="2026-10-01")
    cave = CriticalInformation(id="c", type=CriticalType.ALLERGY, code=Coding("x", "y"),
                               description="Penicillin", severity="severe",
                               provenance=Provenance("kjernejournal", "c", hlr.provenance.fetched_at))
    alerts = build_alerts(annotate([hlr, full], TERMS), [cave])
    assert [(a.kind, a.item_id) for a in alerts] == [
        (AlertKind.CONFLICT, "full"), (AlertKind.TREATMENT_LIMITATION, "full"),
        (AlertKind.TREATMENT_LIMITATION, "hlr"), (AlertKind.ALLERGY, "c")]
    assert alerts[0].item_ids == ("full", "hlr")
    assert "kjernejournal 2026-10-01" in (alerts[0].detail or "")


def test_without_a_conflict_hlr_minus_comes_first_by_meaning_not_by_one_code() -> None:
    other = tl("resp", "urn:local", "R", "Ikke respirator", day="2026-06-01")
    hlr = tl("hlr", KJ, "HLR-MINUS", "HLR-minus", source="kjernejournal", day="2020-01-01")
    alerts = build_alerts(annotate([other, hlr], TERMS), [])
    assert [a.item_id for a in alerts] == ["hlr", "resp"]


def allergy(rid: str, source: str, code: str, text: str, severity: str,
            reaction: str) -> CriticalInformation:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return CriticalInformation(id=rid, type=CriticalType.ALLERGY,
                               code=Coding("http://www.whocc.no/atc", code, text),
                               description=text, severity=severity, reaction=reaction,
                               provenance=Provenance(source, rid, at), recorded_at=at)


def test_the_same_cave_from_two_sources_is_one_item_with_both_provenances() -> None:
    kj = allergy("k", "kjernejournal", "J01CE", "Penicilliner", "severe", "Urtikaria")
    mun = allergy("m", "municipal", "J01CE", "Penicilliner", "moderate", "Utslett")
    latex = allergy("l", "municipal", "", "Lateks", "severe", "Anafylaksi")
    merged = merge_critical([mun, latex, kj])
    assert [(m.id, [p.source for p in m.provenances]) for m in merged] == [
        ("k", ["kjernejournal", "municipal"]), ("l", ["municipal"])]
    assert (merged[0].severity, merged[0].conflicts) == ("severe", ("severity", "reaction"))
    assert merged[0].reaction == "Urtikaria, Utslett"


def test_records_of_one_source_are_never_merged_and_other_types_never_merge() -> None:
    a = allergy("a", "municipal", "J01CE", "Penicilliner", "severe", "x")
    b = allergy("b", "municipal", "J01CE", "Penicilliner", "severe", "x")
    condition = CriticalInformation(id="c", type=CriticalType.CRITICAL_CONDITION,
                                    code=a.code, description=a.description,
                                    provenance=Provenance("kjernejournal", "c",
                                                          a.provenance.fetched_at))
    assert sorted(m.id for m in merge_critical([a, b, condition])) == ["a", "b", "c"]


def test_an_operators_terminology_file_adds_codes_and_words(tmp_path: Path) -> None:
    extra = tmp_path / "terms.toml"
    extra.write_text('[[codes]]\nsystem = "urn:oid:1.2.3"\ncode = "9"\nmeaning = "HLR_MINUS"\n'
                     '[[texts]]\ncontains = "dnr"\nmeaning = "HLR_MINUS"\n', encoding="utf-8")
    terms = load_terminology(str(extra))
    assert terms.meaning_of(Coding("urn:oid:1.2.3", "9")) is HLR
    assert terms.meaning_of(Coding("urn:local", "x"), "DNR ordered") is HLR
    assert terms.meaning_of(Coding(SNOMED, "304252001")) is FULL  # the built-ins stay


@pytest.mark.parametrize(("text", "message"), [
    ('[[codes]]\nsystem = "s"\ncode = "c"\nmeaning = "MAYBE"\n', "invalid meaning in codes[0]"),
    ('[[codes]]\ncode = "c"\nmeaning = "HLR_MINUS"\n', "invalid codes[0]"),
    ('[[texts]]\ncontains = " "\nmeaning = "HLR_MINUS"\n', "invalid texts[0]"),
    ('colours = 1\n', "unknown key 'colours'"),
    ("[[codes]\n", "is not valid TOML"),
])
def test_a_bad_terminology_file_fails_with_a_message_naming_the_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        load_terminology(str(bad))


class _Items:
    """A pipeline stand-in that counts how often each category's items are read."""

    def __init__(self, items: dict[object, list[object]]) -> None:
        self.items = items
        self.terminology = TERMS
        self.reads: list[object] = []

    def items_now(self, category: object) -> list[object]:
        self.reads.append(category)
        return list(self.items.get(category, []))


def test_alerts_and_their_own_fields_shape_the_items_once_and_answer_as_before() -> None:
    from connectors.model import Category
    from schema.patient import Patient
    from schema.shape import ordering

    hlr = tl("hlr", SNOMED, "304253006", "HLR-minus", day="2025-01-10")
    full = tl("full", KJ, "FULL-BEHANDLING", "Full behandling", source="kjernejournal",
              day="2026-10-01")
    kj = allergy("k", "kjernejournal", "J01CE", "Penicilliner", "severe", "Urtikaria")
    mun = allergy("m", "municipal", "J01CE", "Penicilliner", "moderate", "Utslett")
    items: dict[object, list[object]] = {Category.TREATMENT_LIMITATIONS: [hlr, full],
                                         Category.CRITICAL_INFORMATION: [mun, kj]}
    pipeline = _Items(items)
    patient = Patient(nin="x", pipeline=pipeline)  # type: ignore[arg-type]
    got = (patient.alerts(), patient.treatment_limitations(), patient.critical_information(),
           patient.alerts())
    limitations = annotate([hlr, full], TERMS)
    critical = merge_critical([mun, kj])
    assert got == (build_alerts(limitations, critical), ordering.order_limitations(limitations),
                   ordering.order_critical(critical), build_alerts(limitations, critical))
    assert sorted(pipeline.reads, key=str) == [Category.CRITICAL_INFORMATION,
                                               Category.TREATMENT_LIMITATIONS]
