"""Pure mapping of Pasientens prøvesvar FHIR to LabReport/LabResult: tables, no IO."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.model import Coding, PrivacyState, Status
from connectors.proevesvar.mapping import (
    INTERPRETATION_SYSTEM,
    NLK,
    format_number,
    is_abnormal,
    map_observation,
    map_search,
    privacy_of,
    reference_range_of,
    results_of,
    value_of,
)

FETCHED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PVK = "http://nhn.no/fhir/nilar/CodeSystem/PvkOutcome"
UCUM = "http://unitsofmeasure.org"


def obs(obs_id: str, code: str = "NPU19748", *members: str, **fields: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation", "id": obs_id, "status": "final",
        "code": {"coding": [{"system": NLK, "code": code, "display": code}]},
        **fields,
    }
    if members:
        resource["hasMember"] = [{"reference": f"Observation/{m}"} for m in members]
    return resource


def report(report_id: str, *results: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport", "id": report_id, "status": "final",
        "category": [{"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.8202", "code": "LAB"}]}],
        "code": {"coding": [{"system": NLK, "code": "NOR09000", "display": "Klinisk kjemi"}]},
        "result": [{"reference": f"Observation/{r}"} for r in results],
        **fields,
    }


def outcome(*codes: str) -> dict[str, Any]:
    return {"resource": {"resourceType": "OperationOutcome", "issue": [
        {"severity": "information", "code": "suppressed",
         "details": {"coding": [{"system": PVK, "code": c}]}} for c in codes
    ]}, "search": {"mode": "outcome"}}


def match(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "search": {"mode": "match"}}


def include(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "search": {"mode": "include"}}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"valueQuantity": {"value": 87, "unit": "mg/L", "system": UCUM, "code": "mg/L"}},
         ("87", "mg/L")),
        ({"valueQuantity": {"value": 10.9, "unit": "g/dL"}}, ("10.9", "g/dL")),
        ({"valueQuantity": {"value": 0.00001, "code": "mmol/L"}}, ("0.00001", "mmol/L")),
        ({"valueQuantity": {"value": 0.5, "comparator": "<", "unit": "mg/L"}}, ("<0.5", "mg/L")),
        ({"valueQuantity": {"value": 2.4}}, ("2.4", None)),
        ({"valueQuantity": {"unit": "mg/L"}}, (None, None)),
        ({"valueCodeableConcept": {"text": "Positiv"}}, ("Positiv", None)),
        ({"valueCodeableConcept": {"coding": [{"system": "x", "code": "POS",
                                                "display": "Påvist"}]}}, ("Påvist", None)),
        ({"valueString": "Se kommentar"}, ("Se kommentar", None)),
        ({"valueDateTime": "2026-11-20"}, ("2026-11-20", None)),
        ({"valueRange": {"low": {"value": 1, "unit": "g/L"}, "high": {"value": 2}}},
         ("1\u20132", "g/L")),
        ({}, (None, None)),
        ({"valueSampledData": {"data": "1 2 3"}}, (None, None)),
        ({"valueBoolean": True}, (None, None)),
        ({"dataAbsentReason": {"text": "Hemolyse"}}, (None, None)),
    ],
)
def test_value_of_renders_every_value_type_as_text_with_unit(
    fields: dict[str, Any], expected: tuple[str | None, str | None]
) -> None:
    assert value_of(fields) == expected


@pytest.mark.parametrize(
    ("ranges", "unit", "expected"),
    [
        ([{"low": {"value": 13.4, "unit": "g/dL"}, "high": {"value": 17.0, "unit": "g/dL"}}],
         None, "13.4\u201317.0 g/dL"),
        ([{"high": {"value": 5, "unit": "mg/L"}}], None, "≤ 5 mg/L"),
        ([{"low": {"value": 60}}], "umol/L", "≥ 60 umol/L"),
        ([{"low": {"value": 2.0}, "high": {"value": 3.0}}], None, "2.0\u20133.0"),
        ([{"text": "Negativ"}], None, "Negativ"),
        ([], None, None),
        (None, None, None),
        (["garbage"], None, None),
    ],
)
def test_reference_range_is_low_dash_high_unit(
    ranges: Any, unit: str | None, expected: str | None
) -> None:
    assert reference_range_of({"referenceRange": ranges}, unit) == expected


@pytest.mark.parametrize(
    ("coding", "abnormal"),
    [
        (Coding(INTERPRETATION_SYSTEM, "H"), True),
        (Coding(INTERPRETATION_SYSTEM, "L"), True),
        (Coding(INTERPRETATION_SYSTEM, "HH"), True),
        (Coding(INTERPRETATION_SYSTEM, "LL"), True),
        (Coding(INTERPRETATION_SYSTEM, "A"), True),
        (Coding("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "h"), True),
        (Coding(INTERPRETATION_SYSTEM, "N"), False),
        (Coding(INTERPRETATION_SYSTEM, "1"), True),
        (Coding("http://ehelse.no/fhir/CodeSystem/no-kodeverk-8244", "3"), True),
        (Coding("urn:oid:9.9.9", "1"), False),
        (None, False),
    ],
)
def test_abnormal_flag_follows_interpretation(coding: Coding | None, abnormal: bool) -> None:
    assert is_abnormal(coding) is abnormal


@pytest.mark.parametrize(
    ("value", "text"),
    [(87, "87"), (10.9, "10.9"), (17.0, "17.0"), (1e-05, "0.00001"), ("4.10", "4.10"),
     (True, None), ("abc", None), (float("nan"), None), (None, None)],
)
def test_format_number_keeps_decimals_as_written(value: Any, text: str | None) -> None:
    assert format_number(value) == text


ELECTROLYTES = {
    "o1": obs("o1", "NPU02319"),
    "o2": obs("o2", "NOR05300", "o2-1", "o2-2"),
    "o2-1": obs("o2-1", "NPU03230"),
    "o2-2": obs("o2-2", "NPU03429", "o2-2-1"),
    "o2-2-1": obs("o2-2-1", "NPU99999"),
    "o3": obs("o3", "NPU18016"),
}


@pytest.mark.parametrize(
    ("results", "expected", "missing"),
    [
        (("o1", "o3"), [("o1", 0), ("o3", 0)], 0),
        (("o1", "o2", "o3"),
         [("o1", 0), ("o2", 0), ("o2-1", 1), ("o2-2", 1), ("o2-2-1", 2), ("o3", 0)], 0),
        (("o2-2",), [("o2-2", 0), ("o2-2-1", 1)], 0),
        (("o1", "gone", "o3"), [("o1", 0), ("o3", 0)], 1),
        ((), [], 0),
    ],
)
def test_results_walk_panels_depth_first_with_levels(
    results: tuple[str, ...], expected: list[tuple[str, int]], missing: int
) -> None:
    index = {f"Observation/{k}": v for k, v in ELECTROLYTES.items()}
    mapped, missed = results_of(report("r", *results), index)
    assert [(r.id, r.level) for r in mapped] == expected
    assert missed == missing


def test_walking_the_results_leaves_nothing_for_the_cyclic_collector() -> None:
    # a closure that called itself was a reference cycle holding the decoded observations
    index = {f"Observation/{k}": v for k, v in ELECTROLYTES.items()}
    gc.collect()
    gc.disable()
    try:
        mapped, _ = results_of(report("r", *sorted(ELECTROLYTES)), index)
        assert mapped
        del mapped
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_results_stop_at_a_hasmember_cycle() -> None:
    index = {"Observation/a": obs("a", "X", "b"), "Observation/b": obs("b", "Y", "a")}
    mapped, missed = results_of(report("r", "a"), index)
    assert [(r.id, r.level) for r in mapped] == [("a", 0), ("b", 1)]
    assert missed == 0


def test_results_resolve_absolute_references_by_full_url_and_tail() -> None:
    crp = obs("crp", valueQuantity={"value": 87, "unit": "mg/L"})
    entries = [
        match(report("r1") | {"result": [{"reference": "https://pps.example/fhir/Observation/crp"}]}),
        {"fullUrl": "https://other.example/Observation/crp", "resource": crp},
    ]
    mapped = map_search(entries, FETCHED)
    assert [r.value for r in mapped.reports[0].results] == ["87"]
    assert mapped.incomplete == 0


def test_observation_maps_code_value_range_and_flag() -> None:
    result = map_observation(obs(
        "crp", "NPU19748",
        valueQuantity={"value": 87, "unit": "mg/L", "system": UCUM, "code": "mg/L"},
        referenceRange=[{"high": {"value": 5, "unit": "mg/L"}}],
        interpretation=[{"coding": [{"system": INTERPRETATION_SYSTEM, "code": "H"}]}],
        effectiveDateTime="2026-11-20T07:45:00+01:00",
        unknownField={"ignored": True},
    ), level=1)
    assert result.code == Coding(NLK, "NPU19748", "NPU19748")
    assert (result.value, result.unit, result.reference_range) == ("87", "mg/L", "≤ 5 mg/L")
    assert result.interpretation == Coding(INTERPRETATION_SYSTEM, "H")
    assert result.abnormal is True
    assert result.level == 1
    assert result.effective_at == datetime(2026, 11, 20, 6, 45, tzinfo=UTC)


def test_reports_are_newest_first_with_provenance_and_unknown_fields_ignored() -> None:
    entries = [
        match(report("old", "o1", effectiveDateTime="2026-10-10T07:30:00+02:00",
                     issued="2026-10-10T09:00:00+02:00", performer=[{"display": "Fürst"}])),
        match(report("new", "o3", effectiveDateTime="2026-11-18T07:30:00+01:00",
                     issued="2026-11-18T09:00:00+01:00", someExtension=[1, 2])),
        match(report("undated")),
        include(ELECTROLYTES["o1"]),
        include(ELECTROLYTES["o3"]),
        {"resource": {"resourceType": "Specimen", "id": "s1"}, "search": {"mode": "include"}},
    ]
    mapped = map_search(entries, FETCHED)
    assert [r.id for r in mapped.reports] == ["new", "old", "undated"]
    old = mapped.reports[1]
    assert old.provenance.source == "proevesvar"
    assert old.provenance.record_id == "old"
    assert old.provenance.fetched_at == FETCHED
    assert old.provenance.recorded_at == datetime(2026, 10, 10, 7, 0, tzinfo=UTC)
    assert old.category == Coding("urn:oid:2.16.578.1.12.4.1.1.8202", "LAB")
    assert old.code.code == "NOR09000"
    assert old.performer == "Fürst"
    assert [r.id for r in old.results] == ["o1"]
    assert mapped.status is None
    assert mapped.incomplete == 0


def test_report_without_id_or_with_missing_results_is_counted_incomplete() -> None:
    no_id = report("x")
    del no_id["id"]
    mapped = map_search([match(no_id), match(report("r", "absent"))], FETCHED)
    assert [r.id for r in mapped.reports] == ["r"]
    assert mapped.reports[0].results == ()
    assert mapped.incomplete == 2


def test_same_report_on_two_pages_is_kept_once() -> None:
    mapped = map_search([match(report("r")), match(report("r"))], FETCHED)
    assert [r.id for r in mapped.reports] == ["r"]


@pytest.mark.parametrize(
    ("codes", "has_reports", "status", "privacy"),
    [
        (set(), True, None, PrivacyState()),
        ({"Reservation"}, False, Status.RESERVED, PrivacyState(reserved=True)),
        ({"Reservation"}, True, Status.RESERVED, PrivacyState(reserved=True)),
        ({"Specific"}, False, Status.RESTRICTED, PrivacyState(restricted=True)),
        ({"General"}, False, Status.RESTRICTED, PrivacyState(restricted=True)),
        ({"Specific", "Opened"}, True, None,
         PrivacyState(restricted=True, restriction_opened=True)),
        ({"General", "Opened"}, False, None,
         PrivacyState(restricted=True, restriction_opened=True)),
        ({"Specific"}, True, None, PrivacyState(restricted=True, restriction_opened=True)),
        ({"SomethingNew"}, True, None, PrivacyState()),
    ],
)
def test_pvk_outcome_codes_decide_privacy_state(
    codes: set[str], has_reports: bool, status: Status | None, privacy: PrivacyState
) -> None:
    state, got = privacy_of(frozenset(codes), has_reports=has_reports)
    assert got == status
    assert (state.reserved, state.restricted, state.restriction_opened) == (
        privacy.reserved, privacy.restricted, privacy.restriction_opened)


def test_restricted_search_has_no_items_and_a_detail_without_personal_data() -> None:
    mapped = map_search([outcome("Specific")], FETCHED)
    assert mapped.status is Status.RESTRICTED
    assert mapped.reports == ()
    assert mapped.privacy.detail == "The patient has restricted lab results for this provider."


def test_reservation_drops_any_reports_the_upstream_sent_anyway() -> None:
    mapped = map_search([match(report("r")), outcome("Reservation")], FETCHED)
    assert mapped.status is Status.RESERVED
    assert mapped.reports == ()


def test_outcome_with_foreign_code_system_is_not_a_privacy_signal() -> None:
    entry = outcome("Specific")
    entry["resource"]["issue"][0]["details"]["coding"][0]["system"] = "http://example.org/cs"
    assert map_search([entry], FETCHED).status is None
