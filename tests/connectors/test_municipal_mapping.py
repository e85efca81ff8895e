"""Tables for the municipal connector's pure FHIR -> model mapping."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from connectors.errors import UpstreamInvalidError, UpstreamRejectedError, UpstreamUnavailableError
from connectors.model import (
    Coding,
    Condition,
    DocumentReference,
    Dosage,
    Medication,
    MunicipalService,
    Provenance,
    TreatmentLimitation,
)
from connectors.municipal.mapping import (
    DECISION_DATE,
    LIMITATION_DESCRIPTION,
    LIMITATION_REASON,
    MAPPERS,
    SERVICE_DESCRIPTION,
    Restriction,
    provenance_of,
    restriction_of,
)
from connectors.municipal.searches import batch_sets

FETCHED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PROV = Provenance(source="municipal", record_id="x", fetched_at=FETCHED, municipality="0301")
IPLOS = "urn:oid:2.16.578.1.12.4.1.1.9151"
SNOMED = "http://snomed.info/sct"
ICPC2 = "urn:oid:2.16.578.1.12.4.1.1.7170"
ATC = "http://www.whocc.no/atc"
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
R_LABEL = {"system": CONF, "code": "R", "display": "restricted"}
HLR = {"coding": [{"system": SNOMED, "code": "304253006", "display": "HLR-minus"}]}
CEST = timezone(timedelta(hours=2))


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    return {"coding": [coding | ({"display": display} if display else {})]}


FULL_SERVICE = {
    "resourceType": "EpisodeOfCare", "id": "svc-1", "status": "active",
    "type": [concept(IPLOS, "15", "Helsetjenester i hjemmet")],
    "period": {"start": "2024-02-01"},
    "managingOrganization": {"reference": "#unit", "display": "Hjemmetjenesten"},
    "contained": [{"resourceType": "Organization", "id": "unit", "name": "Unit name",
                   "telecom": [{"system": "email", "value": "a@b"},
                               {"system": "phone", "value": "+47 21 80 33 00"}]}],
    "extension": [{"url": DECISION_DATE, "valueDate": "2024-01-25"},
                  {"url": SERVICE_DESCRIPTION, "valueString": "Morgen og kveld"}],
    "someUnknownField": {"nested": [1, 2, 3]},
}
FULL_CONSENT = {
    "resourceType": "Consent", "id": "hlr-1", "status": "active",
    "scope": concept("http://terminology.hl7.org/CodeSystem/consentscope", "treatment"),
    "category": [HLR], "dateTime": "2026-09-02T10:15:00+02:00",
    "performer": [{"display": "Sykehjemslege"}],
    "provision": {"type": "deny", "code": [HLR], "period": {"end": "2027-09-02"}},
    "extension": [{"url": LIMITATION_DESCRIPTION, "valueString": "Ikke HLR."},
                  {"url": LIMITATION_REASON, "valueString": "Pasientens ønske"}],
    "meta": {"security": [R_LABEL]},
}
FULL_ADMINISTRATION = {
    "resourceType": "MedicationAdministration", "id": "adm-1", "status": "in-progress",
    "medicationCodeableConcept": concept(ATC, "C03CA01", "Furosemid 40 mg tablett"),
    "effectivePeriod": {"start": "2019-02-10", "end": "2026-01-01"},
    "dosage": {"text": "1 tablett morgen"},
    "reasonCode": [concept(ICPC2, "K77", "Hjertesvikt")],
    "identifier": [{"type": {"text": "treatmentID"}, "value": "tr-a1"}],
}
FULL_DOCUMENT = {
    "resourceType": "DocumentReference", "id": "doc-1", "status": "current",
    "meta": {"security": [R_LABEL]},
    "type": concept("urn:oid:2.16.578.1.12.4.1.1.9602", "A06", "Journalnotat"),
    "description": "Samtale", "date": "2026-09-02T10:30:00+02:00",
    "author": [{"display": "Lindeberg sykehjem"}],
    "content": [{"attachment": {"title": "Vedlegg"}}],
}


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        pytest.param(FULL_SERVICE, MunicipalService(
            id="svc-1", code=Coding(IPLOS, "15", "Helsetjenester i hjemmet"), status="active",
            provenance=PROV, municipality="0301", started=date(2024, 2, 1), ended=None,
            decided_at=date(2024, 1, 25), unit="Hjemmetjenesten", phone="+47 21 80 33 00",
            description="Morgen og kveld"), id="service-full-unknown-fields-ignored"),
        pytest.param({"resourceType": "EpisodeOfCare", "id": "svc-2", "status": "finished",
                      "type": [concept(IPLOS, "22")], "period": {"start": "not a date",
                                                                 "end": "2026-10-21"}},
                     MunicipalService(id="svc-2", code=Coding(IPLOS, "22"), status="completed",
                                      provenance=PROV, municipality="0301",
                                      ended=date(2026, 10, 21)),
                     id="service-minimal-bad-start-date"),
        pytest.param(FULL_CONSENT, TreatmentLimitation(
            id="hlr-1", code=Coding(SNOMED, "304253006", "HLR-minus"), description="Ikke HLR.",
            status="active", provenance=PROV,
            decided_at=datetime(2026, 9, 2, 10, 15, tzinfo=CEST), decided_by="Sykehjemslege",
            valid_until=date(2027, 9, 2), reason="Pasientens ønske",
            security=(Coding(CONF, "R", "restricted"),)), id="consent-full"),
        pytest.param({"resourceType": "Consent", "id": "hlr-2", "status": "rejected",
                      "category": [HLR], "dateTime": "2026-13-45"},
                     TreatmentLimitation(id="hlr-2", code=Coding(SNOMED, "304253006", "HLR-minus"),
                                         description="HLR-minus", status="inactive",
                                         provenance=PROV),
                     id="consent-category-only-bad-date"),
        pytest.param({"resourceType": "Condition", "id": "c1",
                      "clinicalStatus": concept("x", "resolved"),
                      "code": concept(ICPC2, "K77", "Hjertesvikt"),
                      "onsetDateTime": "2019-02-01", "recordedDate": "2019-02-03",
                      "unknown": True},
                     Condition(id="c1", code=Coding(ICPC2, "K77", "Hjertesvikt"),
                               clinical_status="resolved", provenance=PROV,
                               onset=date(2019, 2, 1),
                               recorded_at=datetime(2019, 2, 3, tzinfo=UTC)),
                     id="condition-full"),
        pytest.param({"resourceType": "Condition", "id": "c2", "code": {"text": "Uten kode"},
                      "onsetDateTime": 20190201},
                     Condition(id="c2", code=Coding("", "", "Uten kode"),
                               clinical_status="unknown", provenance=PROV),
                     id="condition-text-only-no-status-bad-onset"),
        pytest.param(FULL_ADMINISTRATION, Medication(
            id="adm-1", code=Coding(ATC, "C03CA01", "Furosemid 40 mg tablett"),
            name="Furosemid 40 mg tablett", status="active", provenance=PROV,
            provenances=(PROV,), dosage=Dosage("1 tablett morgen"),
            reason=Coding(ICPC2, "K77", "Hjertesvikt"), started=date(2019, 2, 10),
            ended=date(2026, 1, 1), treatment_id="tr-a1"), id="administration-full"),
        pytest.param({"resourceType": "MedicationAdministration", "id": "adm-2",
                      "status": "completed", "medicationCodeableConcept": concept(ATC, "N06AB04"),
                      "effectiveDateTime": "2024-01-12T08:00:00Z"},
                     Medication(id="adm-2", code=Coding(ATC, "N06AB04"), name="N06AB04",
                                status="completed", provenance=PROV, provenances=(PROV,),
                                started=date(2024, 1, 12)),
                     id="administration-minimal"),
        pytest.param(FULL_DOCUMENT, DocumentReference(
            id="doc-1", type=Coding("urn:oid:2.16.578.1.12.4.1.1.9602", "A06", "Journalnotat"),
            title="Samtale", status="current", provenance=PROV,
            date=datetime(2026, 9, 2, 10, 30, tzinfo=CEST), author="Lindeberg sykehjem",
            security=(Coding(CONF, "R", "restricted"),)), id="document-confidential"),
        pytest.param({"resourceType": "DocumentReference", "id": "doc-2",
                      "type": concept("t", "A03", "Epikrise"), "date": "yesterday",
                      "content": [{"attachment": {"title": "Vedlegg"}}]},
                     DocumentReference(id="doc-2", type=Coding("t", "A03", "Epikrise"),
                                       title="Vedlegg", status="unknown", provenance=PROV),
                     id="document-title-from-attachment-bad-date"),
    ],
)
def test_resource_maps_to_model_item(resource: dict[str, Any], expected: object) -> None:
    assert MAPPERS[resource["resourceType"]](resource, PROV) == expected


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Condition", "code": concept(ICPC2, "K77")},
        {"resourceType": "Condition", "id": "", "code": concept(ICPC2, "K77")},
        {"resourceType": "Condition", "id": "c1"},
        {"resourceType": "EpisodeOfCare", "id": "s1", "type": []},
        {"resourceType": "MedicationAdministration", "id": "m1"},
        {"resourceType": "DocumentReference", "id": "d1", "type": "A03"},
    ],
)
def test_resource_without_id_or_code_is_invalid(resource: dict[str, Any]) -> None:
    with pytest.raises(UpstreamInvalidError) as info:
        MAPPERS[resource["resourceType"]](resource, PROV)
    assert info.value.source == "municipal"


def test_provenance_names_store_record_and_last_updated() -> None:
    resource = {"id": "hlr-1", "meta": {"lastUpdated": "2026-09-02T10:15:00+02:00"}}
    assert provenance_of(resource, municipality="4601", fetched_at=FETCHED) == Provenance(
        source="municipal", record_id="hlr-1", fetched_at=FETCHED,
        recorded_at=datetime(2026, 9, 2, 10, 15, tzinfo=CEST), municipality="4601")


def privacy(provision: dict[str, Any], status: str = "active", scope: str = "patient-privacy"
            ) -> dict[str, Any]:
    return {"resourceType": "Consent", "id": "p", "status": status,
            "scope": concept("http://terminology.hl7.org/CodeSystem/consentscope", scope),
            "provision": provision}


DOC = {"resourceType": "DocumentReference", "id": "doc-1"}
LABELLED = {"resourceType": "Condition", "id": "c9", "meta": {"security": [R_LABEL]}}
COND = {"resourceType": "Condition", "id": "c1"}


@pytest.mark.parametrize(
    ("consents", "expected"),
    [
        ([], None),
        ([privacy({"type": "permit"})], None),
        ([privacy({"type": "deny"}, status="inactive")], None),
        ([privacy({"type": "deny"}, scope="treatment")], None),
        ([privacy({"type": "deny"})], Restriction()),
        ([privacy({"type": "deny", "class": [{"code": "DocumentReference"}]})],
         Restriction(types=frozenset({"DocumentReference"}))),
        ([privacy({"type": "deny", "data": [{"meaning": "instance",
                                             "reference": {"reference": "Condition/c1"}}]}),
          privacy({"type": "deny", "securityLabel": [R_LABEL]})],
         Restriction(records=frozenset({"Condition/c1"}), labels=frozenset({"R"}))),
    ],
)
def test_restriction_of_reads_active_privacy_deny_consents(
    consents: list[dict[str, Any]], expected: Restriction | None
) -> None:
    assert restriction_of(consents) == expected


@pytest.mark.parametrize(
    ("restriction", "resource", "covered"),
    [
        (Restriction(), COND, True),
        (Restriction(types=frozenset({"DocumentReference"})), DOC, True),
        (Restriction(types=frozenset({"DocumentReference"})), COND, False),
        (Restriction(records=frozenset({"Condition/c1"})), COND, True),
        (Restriction(records=frozenset({"Condition/c1"})), LABELLED, False),
        (Restriction(labels=frozenset({"R"})), LABELLED, True),
        (Restriction(labels=frozenset({"R"})), DOC, False),
    ],
)
def test_restriction_covers_types_records_and_labels(
    restriction: Restriction, resource: dict[str, Any], covered: bool
) -> None:
    assert restriction.covers(resource) is covered


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset",
            "entry": [{"resource": r} for r in resources]}


def test_searchsets_unpacks_batch_response_in_order() -> None:
    body = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": searchset(COND), "response": {"status": "200 OK"}},
        {"resource": searchset(), "response": {"status": "200"}},
    ]}
    assert [[e["resource"] for e in f.entries] for f in batch_sets(body, 2)] == [[COND], []]


@pytest.mark.parametrize(
    "body",
    [
        "not a bundle",
        {"resourceType": "OperationOutcome"},
        {"resourceType": "Bundle", "type": "searchset", "entry": []},
        {"resourceType": "Bundle", "type": "batch-response", "entry": {}},
        {"resourceType": "Bundle", "type": "batch-response", "entry": []},
    ],
)
def test_batch_sets_refuses_a_bundle_that_is_no_batch_response(body: Any) -> None:
    with pytest.raises(UpstreamInvalidError):
        batch_sets(body, 1)


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("x", UpstreamInvalidError),
        ({"resource": {"resourceType": "Patient"}}, UpstreamInvalidError),
        ({"resource": {"resourceType": "Bundle", "entry": [{"x": 1}]}}, UpstreamInvalidError),
        ({"resource": {"resourceType": "Bundle", "type": "searchset", "entry": [{"x": 1}]}},
         UpstreamInvalidError),
        ({"resource": {"resourceType": "Bundle", "type": "collection", "entry": []}},
         UpstreamInvalidError),
        ({"resource": {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "not-supported"}]}}, UpstreamInvalidError),
        ({"resource": searchset({"resourceType": "OperationOutcome", "issue": [
            {"severity": "fatal", "code": "exception"}]})}, UpstreamInvalidError),
        ({"response": {"status": "400 Bad Request"}}, UpstreamRejectedError),
        ({"response": {"status": 400}}, UpstreamRejectedError),
        ({"response": {"status": "503 Service Unavailable"}}, UpstreamUnavailableError),
    ],
)
def test_a_failed_batch_entry_is_that_searchs_error_and_the_others_still_count(
        entry: Any, error: type) -> None:
    body = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": searchset(COND), "response": {"status": "200 OK"}}, entry]}
    good, failed = batch_sets(body, 2)
    assert isinstance(failed, error)
    assert not isinstance(good, Exception)
    assert [e["resource"] for e in good.entries] == [COND]


def test_a_warning_outcome_in_a_searchset_is_no_failure() -> None:
    warning = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "processing", "diagnostics": "parameter ignored"}]}
    body = {"resourceType": "Bundle", "type": "batch-response", "entry": [
        {"resource": searchset(COND, warning), "response": {"status": "200"}}]}
    (found,) = batch_sets(body, 1)
    assert not isinstance(found, Exception)
    assert len(found.entries) == 2
