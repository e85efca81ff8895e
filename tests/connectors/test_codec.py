"""The cache codec round-trips every model type exactly, and refuses what it did not write."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from connectors import model
from connectors.base import Reason, SourceResult
from connectors.codec import ITEM_TYPES, CodecError, decode, encode
from connectors.model import Category, Coding, PrivacyState, Provenance, Status

T = datetime(2026, 11, 1, 7, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
CODE = Coding("urn:oid:2.16.578.1.12.4.1.1.7170", "K86", "Hypertensjon")
LABEL = (Coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R", None),)
PROV = Provenance("municipal", "hlr-1", T, recorded_at=T - timedelta(days=3),
                  municipality="0301")
PROV2 = Provenance("pll", "pll-1", datetime(2026, 11, 2, tzinfo=UTC))

ITEMS: list[tuple[Category, object]] = [
    (Category.TREATMENT_LIMITATIONS, model.TreatmentLimitation(
        id="hlr-1", code=CODE, description="Ikke-gjenoppliving", status="active",
        provenance=PROV, decided_at=T,
        decided_by="Sykehjemslege", valid_until=date(2027, 1, 1), reason="Pasientens ønske",
        security=LABEL)),
    (Category.CRITICAL_INFORMATION, model.CriticalInformation(
        id="cave-1", type=model.CriticalType.ALLERGY, code=CODE,
        description="CAVE Penicilliner", provenance=PROV2,
        severity="severe", reaction="Urtikaria", recorded_at=T)),
    (Category.MEDICATIONS, model.Medication(
        id="med-1", code=CODE, name="Ramipril 5 mg", status="active", provenance=PROV2,
        provenances=(PROV2, PROV),
        dosage=model.Dosage("1 tablett morgen", route=CODE), reason=CODE,
        started=date(2010, 1, 15), in_pll=True, conflicts=("dosage",), security=LABEL)),
    (Category.MEDICATIONS, model.Medication(id="med-2", code=CODE, name="Paracet",
                                               status="active", provenance=PROV2)),
    (Category.LAB_RESULTS, model.LabReport(
        id="lab-1", category=CODE, code=CODE, status="final", provenance=PROV2, issued_at=T,
        performer="Fürst",
        results=(model.LabResult("hb", CODE, "13.1", unit="g/dL", abnormal=True, level=1,
                                 interpretation=CODE, effective_at=T),
                 model.LabResult("crea", CODE, None)))),
    (Category.MUNICIPAL_SERVICES, model.MunicipalService(
        id="svc-1", code=CODE, status="active", provenance=PROV, municipality="0301",
        started=date(2025, 1, 1), unit="Hjemmesykepleien", phone="+47 00000000")),
    (Category.CONDITIONS, model.Condition(id="cond-1", code=CODE, clinical_status="active",
                                                provenance=PROV, onset=date(2010, 1, 1))),
    (Category.DOCUMENTS, model.DocumentReference(
        id="doc-1", type=CODE, title="Epikrise", status="current", provenance=PROV, date=T,
        author="Lege")),
    (Category.DEMOGRAPHICS, model.Demographics(
        id="person-1", provenance=Provenance("persontjenesten", "person-1", T),
        name="Ola Nordmann",
        given_name="Ola", family_name="Nordmann", birth_date=date(1941, 5, 12), gender="male",
        home_municipality="0301", home_municipality_name="Oslo", registry_status="Deceased",
        deceased=True, deceased_date=date(2026, 11, 20))),
]


def test_the_table_covers_every_item_type() -> None:
    assert {type(item).__name__ for _, item in ITEMS} == set(ITEM_TYPES)


@pytest.mark.parametrize(("category", "item"), ITEMS, ids=[type(i).__name__ for _, i in ITEMS])
def test_every_item_type_round_trips_exactly(category: Category, item: object) -> None:
    result = SourceResult.of("municipal", {category: (item,)}, fetched_at=T)
    back = decode(encode(result))
    assert back.items[category] == (item,)
    assert back == result


def test_privacy_category_status_detail_and_empty_categories_round_trip() -> None:
    result = SourceResult(
        "proevesvar", Status.PARTIAL, {Category.LAB_RESULTS: (), Category.DOCUMENTS: ()},
        fetched_at=T, privacy=PrivacyState(restricted=True, restriction_opened=True,
                                           detail="Opened for an emergency."),
        category_status={Category.LAB_RESULTS: Status.RESTRICTED, Category.DOCUMENTS:
                         Status.INVALID}, detail="Only page 1.",
        category_reason={Category.DOCUMENTS: Reason("UNREADABLE_RECORDS", "2 not read.")})
    assert decode(encode(result)) == result


def test_from_cache_is_not_stored_it_is_set_by_whoever_serves_the_entry() -> None:
    result = SourceResult.of("pll", {}, fetched_at=T)
    assert decode(encode(SourceResult(**{**_fields(result), "from_cache": True}))).from_cache is False


def _fields(result: SourceResult) -> dict[str, object]:
    return {name: getattr(result, name) for name in result.__dataclass_fields__}


@pytest.mark.parametrize("data", [
    b"", b"not json", b"[]", b'{"v": 1}', b'{"v": 2}',
    b'{"v":2,"source":"x","status":"OK","items":{"documents":[{"t":"Evil","d":{}}]},'
    b'"fetched_at":"2026-01-01T00:00:00+00:00","privacy":{},"category_status":{},"detail":null}',
    b'{"v":2,"source":"x","status":"NOPE","items":{},'
    b'"fetched_at":"2026-01-01T00:00:00+00:00","privacy":{},"category_status":{},"detail":null}',
    b'{"v":2,"source":"x","status":"OK","items":{"conditions":[{"t":"Condition","d":'
    b'{"id":1}}]},"fetched_at":"2026-01-01T00:00:00+00:00","privacy":{},'
    b'"category_status":{},"detail":null}',
], ids=["empty", "text", "list", "version", "missing", "type", "status", "shape"])
def test_anything_the_codec_did_not_write_is_a_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data)


def test_a_plugin_category_and_its_item_type_round_trip_when_the_connector_names_them() -> None:
    spec = model.CategorySpec("safety_alarms", item_type=model.Condition)
    item = model.Condition(id="alarm-1", code=CODE, clinical_status="active", provenance=PROV)
    result = SourceResult.of("velferd", {spec: (item,)}, fetched_at=T,
                             category_status={spec: Status.OK})
    assert decode(encode(result), [spec]) == result
    with pytest.raises(CodecError):  # without the spec it is not guessed
        decode(encode(result))
