"""Tables for the municipal CAVE (AllergyIntolerance) and Flag mapping to CriticalInformation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.errors import UpstreamInvalidError
from connectors.model import CriticalType, Provenance
from connectors.municipal.critical import entered_in_error, flag_type, map_allergy, map_flag

FETCHED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PROV = Provenance(source="municipal", record_id="x", fetched_at=FETCHED, municipality="0301",
                  recorded_at=datetime(2026, 1, 1, tzinfo=UTC))
CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def allergy(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "AllergyIntolerance", "id": "a1",
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
            "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J01CE",
                                 "display": "Penicilliner"}]},
            "patient": {"reference": "Patient/p1"}, **extra}


def flag(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Flag", "id": "f1", "status": "active",
            "code": {"text": "Voldsrisiko: møt aldri alene"},
            "subject": {"reference": "Patient/p1"}, **extra}


def test_a_confirmed_cave_is_an_active_allergy_with_its_reaction_and_severity() -> None:
    item = map_allergy(allergy(
        criticality="low", recordedDate="2025-05-05T10:00:00+02:00",
        reaction=[{"manifestation": [{"text": "Urtikaria"}], "severity": "moderate"},
                  {"manifestation": [{"coding": [{"code": "39579001",
                                                   "display": "Anafylaksi"}]}],
                   "severity": "severe"}]), PROV)
    assert item.type is CriticalType.ALLERGY
    assert item.description == "Penicilliner"
    assert item.code.code == "J01CE"
    assert item.status == "active"
    assert item.severity == "severe"  # the worst reaction, not the criticality
    assert item.reaction == "Urtikaria, Anafylaksi"
    assert item.verification == "confirmed"
    assert item.recorded_at == datetime.fromisoformat("2025-05-05T10:00:00+02:00")
    assert item.provenance is PROV


@pytest.mark.parametrize(("extra", "status"), [
    ({"verificationStatus": {"coding": [{"code": "refuted"}]}}, "inactive"),
    ({"clinicalStatus": {"coding": [{"code": "inactive"}]}}, "inactive"),
    ({"clinicalStatus": {"coding": [{"code": "resolved"}]}}, "inactive"),
    ({"verificationStatus": {"coding": [{"code": "unconfirmed"}]}}, "active"),
    ({"clinicalStatus": None, "verificationStatus": None}, "active"),
])
def test_refuted_or_resolved_cave_is_not_active(extra: dict[str, Any], status: str) -> None:
    assert map_allergy(allergy(**extra), PROV).status == status


@pytest.mark.parametrize(("criticality", "severity"), [("high", "severe"), ("low", "mild"),
                                                       ("unable-to-assess", None)])
def test_severity_falls_back_to_criticality(criticality: str, severity: str | None) -> None:
    assert map_allergy(allergy(criticality=criticality), PROV).severity == severity


def test_entered_in_error_is_recognised_on_status_and_verification() -> None:
    assert entered_in_error(allergy(verificationStatus={"coding": [
        {"code": "entered-in-error"}]}))
    assert entered_in_error(flag(status="entered-in-error"))
    assert not entered_in_error(allergy())
    assert not entered_in_error(flag())


def test_a_cave_without_a_code_is_invalid() -> None:
    with pytest.raises(UpstreamInvalidError, match="AllergyIntolerance without a code"):
        map_allergy(allergy(code={"coding": []}), PROV)


@pytest.mark.parametrize(("extra", "status"), [
    ({}, "active"),
    ({"status": "inactive"}, "inactive"),
    ({"period": {"start": "2026-01-01", "end": "2026-11-30"}}, "inactive"),  # ended yesterday
    ({"period": {"start": "2026-01-01", "end": "2026-12-01"}}, "active"),    # ends today
    ({"period": {"start": "2026-01-01", "end": "2027-01-01T00:00:00Z"}}, "active"),
])
def test_a_flag_is_active_until_its_period_has_ended(extra: dict[str, Any], status: str) -> None:
    item = map_flag(flag(**extra), PROV)
    assert item.status == status
    assert item.description == "Voldsrisiko: møt aldri alene"


def test_a_flag_is_recorded_at_its_start_or_else_the_record_update() -> None:
    assert map_flag(flag(period={"start": "2026-02-02"}), PROV).recorded_at == datetime(
        2026, 2, 2, tzinfo=UTC)
    assert map_flag(flag(), PROV).recorded_at == PROV.recorded_at


@pytest.mark.parametrize(("flag_extra", "kind"), [
    ({"category": [{"coding": [{"code": "safety", "display": "Safety"}]}]}, CriticalType.OTHER),
    ({"code": {"text": "Pacemaker-implantat"}}, CriticalType.TREATMENT_OR_IMPLANT),
    ({"code": {"text": "MRSA-bærer: smitteregime"}}, CriticalType.INFECTION),
    ({"category": [{"text": "Anestesikomplikasjon"}]}, CriticalType.ANAESTHESIA_COMPLICATION),
])
def test_flag_type_from_its_words(flag_extra: dict[str, Any], kind: CriticalType) -> None:
    assert flag_type(flag(**flag_extra)) is kind
    assert map_flag(flag(**flag_extra), PROV).type is kind
