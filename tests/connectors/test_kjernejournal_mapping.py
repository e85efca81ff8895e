"""Kjernejournal's Kj* resources and /status mapped to the unified model (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.base import AccessBasis
from connectors.kjernejournal import mapping
from connectors.model import Coding, CriticalType, PrivacyState

FETCHED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KJ = "http://nhn.no/kj/fhir/"
SNOMED = "http://snomed.info/sct"
ICD10 = "urn:oid:2.16.578.1.12.4.1.1.7110"
ATC = "http://www.whocc.no/atc"


def allergy_resource(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": "cave-1",
        "meta": {"versionId": "3", "profile": [KJ + "StructureDefinition/KjAllergyIntolerance"]},
        "contained": [{"resourceType": "PractitionerRole", "id": "recorderRef"}],
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "criticality": "high",
        "code": {"coding": [{"system": ATC, "code": "J01CE", "display": "Penicilliner"}]},
        "recordedDate": "2019-04-11T09:00:00+02:00",
        "reaction": [{"manifestation": [{"text": "Anafylaksi"}], "severity": "severe"}],
    }
    resource.update(changes)
    return resource


def condition_resource(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": "crit-1",
        "meta": {"versionId": "1"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "category": [{"coding": [{"code": "5", "display": "Kritisk medisinsk tilstand"}]}],
        "code": {"coding": [
            {"system": "urn:example:absoluttliste", "code": "x", "display": "Ekstra"},
            {"system": ICD10, "code": "I48", "display": "Atrieflimmer"},
        ]},
        "recordedDate": "2016-08-20T10:00:00+02:00",
    }
    resource.update(changes)
    return resource


def flag_resource(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Flag",
        "id": "flag-1",
        "meta": {"versionId": "2", "lastUpdated": "2025-01-01T10:00:00+01:00"},
        "status": "active",
        "category": [{"coding": [{"code": "9", "display": "Annen prosedyreendring"}]}],
        "code": {"text": "Vanskelig intubasjon"},
    }
    resource.update(changes)
    return resource


def consent_resource(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": "hlr-9",
        "meta": {"versionId": "1"},
        "extension": [{"url": mapping.LIMITATION_REASON, "valueString": "Pasientens ønske"}],
        "status": "active",
        "category": [{"coding": [{"code": "11",
                                  "display": "HLR-minus og behandlingsavklaringer"}]}],
        "dateTime": "2026-09-02T10:15:00+02:00",
        "performer": [{"reference": "#recorderRef", "display": "Sykehjemslege"}],
        "provision": {
            "type": "deny",
            "period": {"end": "2027-09-02"},
            "code": [
                {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.7655", "code": "1"}]},
                {"coding": [{"system": SNOMED, "code": "304253006",
                             "display": "Ikke-gjenoppliving"}],
                 "text": "HLR-minus: ikke start HLR ved hjertestans."},
            ],
        },
    }
    resource.update(changes)
    return resource


@pytest.mark.parametrize(("basis", "header"), [
    (AccessBasis.UNNTAK, "UNNTAK"),
    (AccessBasis.SAMTYKKE, "SAMTYKKE"),
    (AccessBasis.AKUTT, "AKUTT"),
    (AccessBasis.FORHOYET_SAMTYKKE, "FORHOYET_SAMTYKKE"),
    (AccessBasis.FORHOYET_AKUTT, "FORHOYET_AKUTT"),
])
def test_access_basis_maps_to_kjernejournal_header_value(basis: AccessBasis, header: str) -> None:
    assert mapping.access_basis_value(basis) == header


@pytest.mark.parametrize(("status", "expected"), [
    ({"privacySettings": {"reserved": True}}, PrivacyState(reserved=True)),
    ({"privacySettings": {"restricted": True}}, PrivacyState(restricted=True)),
    ({"privacySettings": {"blockedHealthPersonnelExists": True}, "requesterBlocked": False},
     PrivacyState(any_blocked=True)),
    ({"privacySettings": {"blockedHealthPersonnelExists": True}, "requesterBlocked": True},
     PrivacyState(any_blocked=True, blocked_requester=True)),
    ({"privacySettings": {"reserved": "yes"}}, PrivacyState()),  # only a JSON true counts
    ({"privacySettings": None}, PrivacyState()),
    ({}, PrivacyState()),
])
def test_privacy_state_reads_status_privacy_settings(
    status: dict[str, Any], expected: PrivacyState
) -> None:
    assert mapping.privacy_state(status) == expected


@pytest.mark.parametrize(("outcome", "codes"), [
    ({"resourceType": "OperationOutcome",
      "issue": [{"details": {"coding": [{"code": "blocked"}]}}]}, {"blocked"}),
    ({"resourceType": "OperationOutcome",
      "issue": [{"details": {"coding": [{"code": "Reservation"}, {"code": "x"}]}},
                {"details": {"text": "no coding"}}]}, {"Reservation", "x"}),
    ({"resourceType": "Bundle"}, set()),
    ({"resourceType": "OperationOutcome", "issue": ["garbage"]}, set()),
    ("not an object", set()),
])
def test_outcome_codes_reads_issue_detail_codes(outcome: Any, codes: set[str]) -> None:
    assert mapping.outcome_codes(outcome) == codes


def test_allergy_maps_to_critical_information() -> None:
    item = mapping.allergy(allergy_resource(), FETCHED)
    assert item is not None
    assert item.id == "cave-1"
    assert item.type is CriticalType.ALLERGY
    assert item.code == Coding(ATC, "J01CE", "Penicilliner")
    assert item.description == "Penicilliner"
    assert (item.status, item.severity, item.reaction, item.verification) == (
        "active", "severe", "Anafylaksi", "confirmed")
    assert item.recorded_at == datetime.fromisoformat("2019-04-11T09:00:00+02:00")
    assert item.provenance.source == "kjernejournal"
    assert item.provenance.record_id == "cave-1/3"
    assert item.provenance.fetched_at == FETCHED


def test_record_id_is_the_bare_id_without_a_version() -> None:
    item = mapping.allergy(allergy_resource(meta={}), FETCHED)
    assert item is not None
    assert item.provenance.record_id == "cave-1"


@pytest.mark.parametrize(("clinical", "verification", "status"), [
    ("active", "confirmed", "active"),
    ("active", "unconfirmed", "active"),
    ("inactive", "confirmed", "inactive"),
    ("resolved", "confirmed", "inactive"),
    (None, "refuted", "inactive"),
    (None, "entered-in-error", None),
])
def test_allergy_status_follows_kj_status_rules(
    clinical: str | None, verification: str, status: str | None
) -> None:
    resource = allergy_resource(verificationStatus={"coding": [{"code": verification}]})
    resource.pop("clinicalStatus")
    if clinical:
        resource["clinicalStatus"] = {"coding": [{"code": clinical}]}
    item = mapping.allergy(resource, FETCHED)
    assert (item.status if item else None) == status


@pytest.mark.parametrize(("reactions", "criticality", "severity"), [
    ([{"severity": "mild"}, {"severity": "severe"}], "low", "severe"),
    ([{"severity": "moderate"}], "high", "moderate"),
    ([{"manifestation": [{"text": "Utslett"}]}], "high", "severe"),
    ([], "low", "mild"),
    ([], "unable-to-assess", None),
    ([{"severity": "catastrophic"}], None, None),
])
def test_allergy_severity_prefers_reaction_severity_over_criticality(
    reactions: list[dict[str, Any]], criticality: str | None, severity: str | None
) -> None:
    item = mapping.allergy(allergy_resource(reaction=reactions, criticality=criticality), FETCHED)
    assert item is not None
    assert item.severity == severity


def test_allergy_joins_every_reaction_manifestation() -> None:
    reactions = [{"manifestation": [{"text": "Urtikaria"},
                                    {"coding": [{"code": "39579001", "display": "Anafylaksi"}]}]},
                 {"manifestation": [{"text": "Kvalme"}]}]
    item = mapping.allergy(allergy_resource(reaction=reactions), FETCHED)
    assert item is not None
    assert item.reaction == "Urtikaria, Anafylaksi, Kvalme"


def _with_gibberish(value: Any) -> Any:
    """The same JSON with an unknown field added to every object, as Kjernejournal does."""
    if isinstance(value, dict):
        return {**{k: _with_gibberish(v) for k, v in value.items()}, "x-kj-gibberish-7f3a": [1]}
    if isinstance(value, list):
        return [_with_gibberish(v) for v in value]
    return value


@pytest.mark.parametrize(("mapper", "resource"), [
    (mapping.allergy, allergy_resource()),
    (mapping.critical_condition, condition_resource()),
    (mapping.flag, flag_resource()),
    (mapping.treatment_limitation, consent_resource()),
])
def test_unknown_fields_are_ignored(mapper: Any, resource: dict[str, Any]) -> None:
    plain = mapper(resource, FETCHED)
    assert plain is not None
    assert mapper(_with_gibberish(resource), FETCHED) == plain


def test_critical_condition_prefers_the_icd10_coding() -> None:
    item = mapping.critical_condition(condition_resource(), FETCHED)
    assert item is not None
    assert item.type is CriticalType.CRITICAL_CONDITION
    assert item.code == Coding(ICD10, "I48", "Atrieflimmer")
    assert item.description == "Atrieflimmer"
    assert item.provenance.record_id == "crit-1/1"


@pytest.mark.parametrize(("clinical", "verification", "status"), [
    ("active", "confirmed", "active"),
    ("inactive", "confirmed", "inactive"),
    ("active", "refuted", "inactive"),
    ("active", "entered-in-error", None),
])
def test_critical_condition_status_follows_kj_status_rules(
    clinical: str, verification: str, status: str | None
) -> None:
    resource = condition_resource(clinicalStatus={"coding": [{"code": clinical}]},
                                  verificationStatus={"coding": [{"code": verification}]})
    item = mapping.critical_condition(resource, FETCHED)
    assert (item.status if item else None) == status


@pytest.mark.parametrize(("changes", "status"), [
    ({}, "active"),
    ({"status": "inactive"}, "inactive"),
    ({"status": "entered-in-error"}, None),
    ({"period": {"start": "2020-01-01"}}, "active"),
    ({"period": {"end": "2026-11-24"}}, "active"),
    ({"period": {"end": "2026-11-23"}}, "inactive"),  # ends today: already inactive
    ({"period": {"end": "2025-01-01"}}, "inactive"),
])
def test_flag_status_expires_with_its_period(changes: dict[str, Any], status: str | None) -> None:
    item = mapping.flag(flag_resource(**changes), FETCHED)
    assert (item.status if item else None) == status


def test_flag_with_only_text_keeps_the_text_as_description() -> None:
    item = mapping.flag(flag_resource(), FETCHED)
    assert item is not None
    assert (item.code.code, item.description) == ("", "Vanskelig intubasjon")
    assert item.provenance.record_id == "flag-1/2"
    assert item.recorded_at == datetime.fromisoformat("2025-01-01T10:00:00+01:00")


@pytest.mark.parametrize(("category", "kind"), [
    ([{"coding": [{"code": "9", "display": "Annen prosedyreendring"}]}], CriticalType.OTHER),
    ([{"coding": [{"code": "7", "display": "Implantater"}]}], CriticalType.TREATMENT_OR_IMPLANT),
    ([{"coding": [{"code": "8", "display": "Pågående behandlinger"}]}],
     CriticalType.TREATMENT_OR_IMPLANT),
    ({"coding": [{"code": "9"}]}, CriticalType.OTHER),
    (None, CriticalType.OTHER),
])
def test_flag_type_comes_from_its_category(category: Any, kind: CriticalType) -> None:
    assert mapping.flag_type(category) is kind


def test_hlr_minus_consent_maps_to_treatment_limitation() -> None:
    item = mapping.treatment_limitation(consent_resource(), FETCHED)
    assert item is not None
    assert item.id == "hlr-9"
    assert item.code == Coding(SNOMED, "304253006", "Ikke-gjenoppliving")
    assert item.description == "HLR-minus: ikke start HLR ved hjertestans."
    assert item.status == "active"
    assert item.decided_at == datetime.fromisoformat("2026-09-02T10:15:00+02:00")
    assert item.decided_by == "Sykehjemslege"
    assert item.reason == "Pasientens ønske"
    assert item.valid_until == date(2027, 9, 2)
    assert item.provenance.record_id == "hlr-9/1"
    assert item.provenance.recorded_at == item.decided_at


@pytest.mark.parametrize(("consent_status", "status"), [
    ("active", "active"),
    ("inactive", "inactive"),
    ("rejected", "inactive"),
    ("entered-in-error", None),
    ("draft", None),
    ("proposed", None),
])
def test_treatment_limitation_status_follows_consent_status(
    consent_status: str, status: str | None
) -> None:
    item = mapping.treatment_limitation(consent_resource(status=consent_status), FETCHED)
    assert (item.status if item else None) == status


def test_a_limitation_in_kjernejournals_own_codes_keeps_them_not_the_duration_code() -> None:
    """Without a SNOMED concept the decision's own code is kept; the duration (kodeverk
    7655) that may come first is no decision."""
    kj_code = {"coding": [{"system": "http://nhn.no/kj/fhir/CodeSystem/Behandlingsavklaring",
                           "code": "FULL-BEHANDLING", "display": "Full behandling inkludert HLR"}],
               "text": "Full behandling inkludert hjerte-lunge-redning."}
    provision = {"type": "deny", "code": [
        {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.7655", "code": "1"}]}, kj_code]}
    item = mapping.treatment_limitation(consent_resource(provision=provision), FETCHED)
    assert item is not None
    assert (item.code.code, item.description) == (
        "FULL-BEHANDLING", "Full behandling inkludert hjerte-lunge-redning.")
    only_duration = {"type": "deny", "code": [provision["code"][0]]}
    with pytest.raises(mapping.UnreadableRecordError):
        mapping.treatment_limitation(consent_resource(provision=only_duration), FETCHED)


def test_consent_of_another_category_is_not_a_treatment_limitation() -> None:
    other = consent_resource(category=[{"coding": [{"code": "12"}]}])
    assert mapping.treatment_limitation(other, FETCHED) is None


@pytest.mark.parametrize(("mapper", "resource"), [
    (mapping.allergy, allergy_resource(id=None)),
    (mapping.allergy, allergy_resource(code={"coding": []})),
    (mapping.critical_condition, condition_resource(code=None)),
    (mapping.flag, flag_resource(id="")),
    (mapping.treatment_limitation, consent_resource(provision={"code": []})),
])
def test_a_record_without_id_or_code_is_unreadable(mapper: Any, resource: dict[str, Any]) -> None:
    with pytest.raises(mapping.UnreadableRecordError):
        mapper(resource, FETCHED)


@pytest.mark.parametrize("concept", [
    None, "active", {}, {"text": "Aktiv"}, {"coding": []}, {"coding": [{"system": "s"}]},
    {"coding": [{"code": ""}, {"code": "active"}]}, {"coding": [{"code": 7}]},
    {"coding": ["x", {"code": "refuted", "display": "Avkreftet"}], "text": "t"},
    {"coding": [{"code": "confirmed", "system": "http://terminology.hl7.org/x"}]},
])
def test_a_status_code_is_read_as_coding_of_reads_it(concept: Any) -> None:
    coding = mapping.coding_of(concept)
    assert mapping._code(concept) == ((coding.code or None) if coding else None)


def test_a_status_coding_that_is_not_a_list_fails_as_coding_of_fails() -> None:
    with pytest.raises(TypeError):
        mapping.coding_of({"coding": 5})
    with pytest.raises(TypeError):
        mapping._code({"coding": 5})
