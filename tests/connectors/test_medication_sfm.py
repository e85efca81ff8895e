"""The pure SFM `$getMedication` request builder and document reader (connectors.medication.sfm)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.base import AccessBasis
from connectors.errors import UpstreamInvalidError
from connectors.identifiers import DNR_SYSTEM, FNR_SYSTEM
from connectors.medication.sfm import (
    ATC_SYSTEM,
    ICPC2_SYSTEM,
    build_parameters,
    read_bundle,
    read_response,
)
from connectors.model import Coding, Dosage

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FNR = "12057900499"
DNR = "57099032172"
MED_URL = "urn:uuid:00000000-0000-4000-8000-000000000001"
STATEMENT_URL = "urn:uuid:00000000-0000-4000-8000-000000000002"


def parameter_map(parameters: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p for p in parameters["parameter"]}


@pytest.mark.parametrize(("basis", "consent", "elevated"), [
    (AccessBasis.AKUTT, "HPAKUTT", False),
    (AccessBasis.FORHOYET_AKUTT, "HPAKUTT", True),
    (AccessBasis.SAMTYKKE, "HPMOTTATTSAMTYKKE", False),
    (AccessBasis.FORHOYET_SAMTYKKE, "HPMOTTATTSAMTYKKE", True),
    (AccessBasis.UNNTAK, "HPUNNTAK", False),
])
def test_build_parameters_maps_the_access_basis(
    basis: AccessBasis, consent: str, elevated: bool
) -> None:
    params = parameter_map(build_parameters(FNR, basis))
    assert params["SamtykkeKjernejournal"] == {"name": "SamtykkeKjernejournal",
                                               "valueCode": consent}
    assert params["SamtykkeSperretLegemidler"]["valueBoolean"] is elevated
    assert params["SamtykkeLasteResepter"]["valueBoolean"] is elevated
    assert params["IncludeOriginal"]["valueBoolean"] is False


@pytest.mark.parametrize(("nin", "system"), [(FNR, FNR_SYSTEM), (DNR, DNR_SYSTEM)])
def test_build_parameters_puts_the_patient_identifier_in_a_patient_resource(
    nin: str, system: str
) -> None:
    patient = parameter_map(build_parameters(nin, AccessBasis.AKUTT))["patient"]["resource"]
    assert patient == {"resourceType": "Patient", "identifier": [{"system": system, "value": nin}]}


def statement(**overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "identifier": [{"type": {"text": "PLL"}, "value": "pll-1"},
                       {"type": {"text": "treatmentID"}, "value": "tr-1"}],
        "status": "active",
        "medicationReference": {"reference": MED_URL},
        "effectivePeriod": {"start": "2011-05-10"},
        "reasonCode": [{"coding": [{"system": ICPC2_SYSTEM, "code": "T90",
                                    "display": "Diabetes type 2"}]}],
        "dosage": [{"text": "1 tablett x 2"}],
    }
    resource.update(overrides)
    return {k: v for k, v in resource.items() if v is not None}


def medication(**overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Medication",
        "code": {"coding": [{"system": ATC_SYSTEM, "code": "A10BA02"}],
                 "text": "Metformin 500 mg tablett"},
    }
    resource.update(overrides)
    return resource


def bundle(
    stmt: dict[str, Any], *, section: str | None = "PLL info", med: dict[str, Any] | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    sections = [{"title": "Resepter"}]
    if section:
        sections.append({"title": section, "entry": [{"reference": STATEMENT_URL}]})
    return {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition",
                                                   "section": sections}},
            {"fullUrl": MED_URL, "resource": med or medication()},
            {"fullUrl": STATEMENT_URL, "resource": stmt},
            *(extra or []),
        ],
    }


def read_one(document: dict[str, Any], source: str = "pll") -> Any:
    pll, prescriptions, _, _ = read_bundle(document, source, AT)
    items = pll + prescriptions
    assert len(items) == 1
    return items[0]


@pytest.mark.parametrize(("overrides", "field", "expected"), [
    ({}, "code", Coding(ATC_SYSTEM, "A10BA02", "Metformin 500 mg tablett")),
    ({}, "name", "Metformin 500 mg tablett"),
    ({}, "status", "active"),
    ({"status": "on-hold"}, "status", "on-hold"),
    ({"status": None}, "status", "unknown"),
    ({}, "dosage", Dosage("1 tablett x 2")),
    ({"dosage": [{"text": "  1 tablett kveld ",
                  "route": {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.7477",
                                        "code": "53", "display": "Oral bruk"}]}}]},
     "dosage", Dosage("1 tablett kveld", Coding("urn:oid:2.16.578.1.12.4.1.1.7477", "53",
                                                "Oral bruk"))),
    ({"dosage": None}, "dosage", None),
    ({"dosage": [{"sequence": 1}]}, "dosage", None),
    ({}, "reason", Coding(ICPC2_SYSTEM, "T90", "Diabetes type 2")),
    ({"reasonCode": None}, "reason", None),
    ({}, "started", date(2011, 5, 10)),
    ({"effectivePeriod": None, "effectiveDateTime": "2020-02-03T10:00:00+01:00"}, "started",
     date(2020, 2, 3)),
    ({"effectivePeriod": {"start": "2011-05-10", "end": "2026-01-31"}}, "ended",
     date(2026, 1, 31)),
    ({}, "pll_id", "pll-1"),
    ({}, "treatment_id", "tr-1"),
    ({}, "prescription_id", None),
    ({}, "in_pll", True),
    ({}, "id", "pll:pll-1"),
    ({"dateAsserted": "2026-11-01T08:00:00Z"}, "recorded_at",
     datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),
    ({"meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                             "code": "R"}]}}, "security",
     (Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R"),)),
    ({"medicationReference": None, "medicationCodeableConcept": {
        "coding": [{"system": ATC_SYSTEM, "code": "C03CA01"}], "text": "Furosemid 40 mg"}},
     "code", Coding(ATC_SYSTEM, "C03CA01", "Furosemid 40 mg")),
])
def test_reader_maps_a_pll_statement(overrides: dict[str, Any], field: str, expected: Any) -> None:
    item = read_one(bundle(statement(**overrides)))
    actual = item.provenance.recorded_at if field == "recorded_at" else getattr(item, field)
    assert actual == expected


def test_reader_stamps_provenance_with_source_record_and_fetch_time() -> None:
    item = read_one(bundle(statement()))
    assert item.provenance.source == "pll"
    assert item.provenance.record_id == "pll-1"
    assert item.provenance.fetched_at == AT
    assert item.provenances == (item.provenance,)


def test_reader_maps_a_prescription_outside_the_pll_section() -> None:
    rx = statement(identifier=[{"type": {"text": "prescriptionID"}, "value": "rx-1"},
                               {"type": {"text": "treatmentID"}, "value": "tr-1"}],
                   dosage=[{"text": "1 tablett x 3"}])
    pll, prescriptions, lost_pll, lost_rx = read_bundle(bundle(rx, section=None), "eresept", AT)
    assert (lost_pll, lost_rx) == (0, 0)
    assert pll == ()
    (item,) = prescriptions
    assert (item.prescription_id, item.pll_id, item.in_pll) == ("rx-1", None, False)
    assert item.provenance.record_id == "rx-1"
    assert item.id == "eresept:rx-1"
    assert item.dosage == Dosage("1 tablett x 3")


def test_reader_counts_statements_it_cannot_place() -> None:
    """Never dropped without a word: a PLL entry its section does not list is unreadable for
    the PLL; a statement neither in the PLL nor prescribed is unreadable for both."""
    assert read_bundle(bundle(statement(), section=None), "pll", AT) == ((), (), 1, 0)
    bare = statement(identifier=[{"type": {"text": "treatmentID"}, "value": "tr-1"}])
    assert read_bundle(bundle(bare, section=None), "pll", AT) == ((), (), 1, 1)


def test_reader_skips_statements_entered_in_error() -> None:
    assert read_bundle(bundle(statement(status="entered-in-error")), "pll", AT) == ((), (), 0, 0)


def test_reader_ignores_unknown_fields_and_resources() -> None:
    noisy = statement(extension=[{"url": "http://example.org/x", "valueString": "y"}],
                      futureField={"nested": [1, 2]})
    extra = [{"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Binary", "data": "AA=="}}]
    item = read_one(bundle(noisy, med=medication(form={"text": "Tablett"}), extra=extra))
    assert item.code.code == "A10BA02"
    assert item.dosage == Dosage("1 tablett x 2")


def test_reader_resolves_relative_references_and_nested_sections() -> None:
    document = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            {"resource": {"resourceType": "Composition", "section": [
                {"title": "Legemidler", "section": [
                    {"code": {"text": "PLL info"},
                     "entry": [{"reference": "MedicationStatement/s1"}]}]}]}},
            {"resource": medication(id="m1")},
            {"resource": statement(id="s1", medicationReference={"reference": "Medication/m1"})},
        ],
    }
    item = read_one(document)
    assert (item.in_pll, item.name) == (True, "Metformin 500 mg tablett")


@pytest.mark.parametrize("composition", [
    {"resourceType": "Composition"},
    {"resourceType": "Composition", "section": []},
    {"resourceType": "Composition", "section": [
        {"title": "PLL info", "emptyReason": {"coding": [{"code": "nilknown"}]}}]},
], ids=["no-sections", "empty-sections", "empty-pll-section"])
def test_reader_treats_missing_sections_as_no_pll(composition: dict[str, Any]) -> None:
    document = {"resourceType": "Bundle", "type": "document",
                "entry": [{"fullUrl": "urn:uuid:c", "resource": composition}]}
    assert read_bundle(document, "pll", AT) == ((), (), 0, 0)


@pytest.mark.parametrize("document", [
    {"resourceType": "Parameters"},
    {"resourceType": "Bundle", "entry": "nope"},
    {"resourceType": "Bundle", "entry": [{"fullUrl": "urn:uuid:x"}]},
    {"resourceType": "Bundle", "entry": []},
    bundle(statement(medicationReference={"reference": "urn:uuid:missing"})),
    bundle(statement(medicationReference=None)),
    {**bundle(statement()), "type": "searchset"},
    {key: value for key, value in bundle(statement()).items() if key != "type"},
], ids=["not-a-bundle", "bad-entries", "entry-without-resource", "no-composition",
        "dangling-medication", "no-medication", "a-searchset", "no-type"])
def test_reader_rejects_a_wrong_shape_as_invalid(document: dict[str, Any]) -> None:
    with pytest.raises(UpstreamInvalidError) as caught:
        read_bundle(document, "pll", AT)
    assert caught.value.source == "pll"
    assert "urn:uuid" not in str(caught.value)


def response(*parameters: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(parameters)}


def test_read_response_reads_the_lookup_times() -> None:
    document = read_response(response(
        {"name": "medication", "resource": bundle(statement())},
        {"name": "KJHentetTidspunkt", "valueDateTime": "2026-12-01T11:59:00+01:00"},
        {"name": "RFHentetTidspunkt", "valueDateTime": "2026-12-01T11:59:30+01:00"},
        {"name": "SomethingNew", "valueString": "ignored"},
    ), "pll", AT)
    assert len(document.pll) == 1
    assert document.kj_fetched_at == datetime(2026, 12, 1, 10, 59, tzinfo=UTC)
    assert document.rf_fetched_at == datetime(2026, 12, 1, 10, 59, 30, tzinfo=UTC)


def test_read_response_without_rf_time_reports_no_lookup() -> None:
    document = read_response(response({"name": "medication", "resource": bundle(statement())}),
                             "eresept", AT)
    assert document.rf_fetched_at is None
    assert document.kj_fetched_at is None


@pytest.mark.parametrize("body", [
    {"resourceType": "OperationOutcome"},
    {"resourceType": "Parameters"},
    response({"name": "KJHentetTidspunkt", "valueDateTime": "2026-12-01T11:59:00Z"}),
    [],
], ids=["outcome", "no-parameters", "no-medication", "not-an-object"])
def test_read_response_rejects_answers_without_a_medication_bundle(body: Any) -> None:
    with pytest.raises(UpstreamInvalidError):
        read_response(body, "eresept", AT)


def test_identifiers_by_type_answers_what_identifier_by_type_answers_for_each_type() -> None:
    from connectors.fhir import identifier_by_type
    from connectors.medication.sfm import identifiers_by_type

    statement = {"identifier": [
        "not an identifier", {"type": {"text": "PLL"}, "value": ""},    # skipped: no value
        {"type": {"text": "PLL"}, "value": "pll-1"}, {"type": {"text": "PLL"}, "value": "pll-2"},
        {"type": "prescriptionID", "value": "x"}, {"type": {"text": ["a"]}, "value": "y"},
        {"type": {"text": "prescriptionID"}, "value": 42}, {"value": "untyped"}]}
    found = identifiers_by_type(statement)
    assert found == {"PLL": "pll-1", "prescriptionID": "42"}
    for type_text in ("PLL", "prescriptionID", "treatmentID"):
        assert found.get(type_text) == identifier_by_type(statement, type_text)
    assert identifiers_by_type({"identifier": None}) == {}
