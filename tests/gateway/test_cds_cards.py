"""Cards from a patient-view answer (pure): indicator per kind, one info card per source that
did not answer fully, labels naming the source, summaries within 140 characters."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.cds.cards import build_cards

TOWNS = {"0301": "Oslo", "4601": "Bergen"}


def _answer(alerts: list[dict[str, Any]] = (),  # type: ignore[assignment]
            sources: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"data": {"patient": {"alerts": list(alerts), "treatmentLimitations": [],
                                 "sources": list(sources)}}}


def _alert(kind: str, title: str, source: str = "municipal", municipality: str | None = "0301",
           **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "title": title, "detail": None, "itemId": "x",
            "provenance": {"source": source, "municipality": municipality, "recordId": "r1"},
            **extra}


def test_a_conflict_between_sources_is_critical_and_names_every_source() -> None:
    conflict = _alert("CONFLICT", "Motstridende behandlingsavklaringer", detail="A mot B",
                      provenances=[{"source": "municipal", "municipality": "0301"},
                                   {"source": "kjernejournal", "municipality": None}])
    (card,) = build_cards(_answer([conflict]), TOWNS)
    assert card["indicator"] == "critical"
    assert card["source"]["label"] == "Kommunal journal, Oslo kommune og Kjernejournal"
    assert card["detail"] == "A mot B"


@pytest.mark.parametrize(("kind", "indicator"), [
    ("TREATMENT_LIMITATION", "critical"), ("ALLERGY", "warning"),
    ("CRITICAL_CONDITION", "warning"), ("ANAESTHESIA_COMPLICATION", "warning"),
    ("OTHER_CRITICAL", "warning"),
])
def test_each_alert_kind_has_its_indicator(kind: str, indicator: str) -> None:
    (card,) = build_cards(_answer([_alert(kind, "Noe viktig")]), TOWNS)
    assert card["indicator"] == indicator


def test_a_long_title_is_cut_to_140_characters() -> None:
    (card,) = build_cards(_answer([_alert("ALLERGY", "CAVE " + "x" * 300)]), TOWNS)
    assert len(card["summary"]) == 140
    assert card["summary"].endswith("…")


def test_one_info_card_per_source_and_store_with_what_may_be_missing() -> None:
    rows = [
        {"source": "kjernejournal", "category": "CRITICAL_INFORMATION", "status": "TIMEOUT"},
        {"source": "kjernejournal", "category": "TREATMENT_LIMITATIONS", "status": "TIMEOUT"},
        {"source": "municipal", "municipality": "4601", "category": "TREATMENT_LIMITATIONS",
         "status": "DENIED"},
        {"source": "municipal", "municipality": "0301", "category": "TREATMENT_LIMITATIONS",
         "status": "OK"},
        {"source": "pll", "category": "CRITICAL_INFORMATION", "status": "EMPTY"},
    ]
    cards = build_cards(_answer(sources=rows), TOWNS)
    assert [(c["indicator"], c["source"]["label"]) for c in cards] == [
        ("info", "Kjernejournal"), ("info", "Kommunal journal, Bergen kommune")]
    assert "svarte ikke i tide" in cards[0]["summary"]
    assert "kritisk informasjon" in cards[0]["summary"]
    assert "behandlingsavklaringer" in cards[0]["summary"]
    assert "ble ikke spurt" in cards[1]["summary"]


@pytest.mark.parametrize("status", ["STALE", "PARTIAL", "RESTRICTED", "RESERVED", "BLOCKED",
                                    "UNAVAILABLE", "INVALID"])
def test_every_incomplete_status_is_said(status: str) -> None:
    rows = [{"source": "kjernejournal", "category": "CRITICAL_INFORMATION", "status": status}]
    (card,) = build_cards(_answer(sources=rows), TOWNS)
    assert card["indicator"] == "info"
    assert len(card["summary"]) <= 140


def test_no_card_at_all_says_nothing_is_there() -> None:
    rows = [{"source": "kjernejournal", "category": "CRITICAL_INFORMATION", "status": "EMPTY"}]
    assert build_cards(_answer(sources=rows), TOWNS) == []


def test_a_refused_patient_is_one_info_card_with_the_reason() -> None:
    answer = {"data": {"patient": None}, "errors": [{"message": "You may not see this patient.",
              "extensions": {"code": "FORBIDDEN", "reason": "CARE_RELATIONSHIP_MISSING"}}]}
    (card,) = build_cards(answer, TOWNS)
    assert (card["indicator"], card["source"]["label"]) == ("info", "Kilde")
    assert "CARE_RELATIONSHIP_MISSING" in card["detail"]
