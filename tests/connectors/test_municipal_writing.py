"""The municipal connector's writes: the draft as R4 (checked by an independent validator,
`fhir.resources`), one POST with If-None-Exist, the store's answers read back, its refusals as
issue codes, and the write ability found behind the read wrappers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fhir.resources.R4B.consent import Consent as R4Consent
from fhir.resources.R4B.documentreference import DocumentReference as R4DocumentReference
from fhir.resources.R4B.medicationadministration import (
    MedicationAdministration as R4MedicationAdministration,
)

from connectors import (
    ClinicalNoteDraft,
    Coding,
    MedicationAdministrationDraft,
    Requester,
    TreatmentLimitationDraft,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    Writer,
    WriteRequest,
    writer_of,
)
from connectors.base import ConnectorSettings
from connectors.boundary import CheckedConnector
from connectors.cache import Cache, CachedConnector
from connectors.cachestore import open_store
from connectors.crypto import CacheKeys
from connectors.model import Category, DocumentReference, Medication, TreatmentLimitation
from connectors.municipal import create
from connectors.municipal.capabilities import parse_capabilities
from connectors.municipal.identity import StorePatient
from connectors.municipal.writing import outcome_issues, read_written, resource_for
from connectors.resilience import ResilienceSettings, ResilientConnector
from sandbox import fhirwrite
from tests.connectors.municipal_stores import FNR, NIN, patient, stores

WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SYSTEM = "https://kilde.no/fhir/sid/record-id/legevakt-epj"
LIMITATION = TreatmentLimitationDraft(Coding("http://snomed.info/sct", "304253006",
                                             "Ikke gjenoppliv"), "Dr. Sykehjem", WHEN,
                                      "Pasientens ønske", description="HLR-minus",
                                      valid_until=date(2027, 6, 1))
NOTE = ClinicalNoteDraft(Coding("urn:oid:2.16.578.1.12.4.1.1.9602", "J01", "Notat"),
                         "Legevaktnotat", "Pasienten ble sett på legevakt.\nHjem i kveld.",
                         "Dr. Vakt", WHEN)
ADMINISTRATION = MedicationAdministrationDraft(
    Coding("http://www.whocc.no/atc", "B01AF01", "Xarelto"), "Xarelto 20 mg tablett",
    "1 tablett", WHEN, "Sykepleier Hjemdal",
    route=Coding("urn:oid:2.16.578.1.12.4.1.1.7477", "53"), reason="Fast medisin")
DRAFTS = [pytest.param(LIMITATION, R4Consent, id="limitation"),
          pytest.param(NOTE, R4DocumentReference, id="note"),
          pytest.param(ADMINISTRATION, R4MedicationAdministration, id="administration")]
ME = patient("p1", (FNR, NIN), birthDate="1938-03-14")


def request(draft: Any, **changes: Any) -> WriteRequest:
    values: dict[str, Any] = {
        "patient_nin": NIN, "municipality": "0301", "draft": draft,
        "identifier": (SYSTEM, "rec-1"), "request_id": "req-7", "timeout": 3.0,
        "requester": Requester(hpr_number="9144901", role_code="LE", orgnr="910000004",
                               purpose_of_use="ETREAT")} | changes
    return WriteRequest(**values)


@pytest.mark.parametrize(("draft", "model"), DRAFTS)
def test_the_posted_resource_is_valid_r4_by_an_independent_validator(draft: Any,
                                                                      model: Any) -> None:
    resource = resource_for(request(draft), StorePatient("p1", "http://x"))
    model.model_validate(resource)  # raises on invalid R4 (fhir.resources)
    assert fhirwrite.problems(resource) == []  # the sandbox store agrees
    assert resource["identifier"] == [{"system": SYSTEM, "value": "rec-1"}]
    assert NIN not in json.dumps(resource)  # the subject is the store's Patient, by id


@pytest.mark.parametrize(("draft", "model"), DRAFTS)
def test_what_the_store_stores_reads_back_as_the_item_a_query_shows(draft: Any,
                                                                    model: Any) -> None:
    connector, recorder = stores({"0301": [ME]})
    result = asyncio.run(connector.write(request(draft)))
    assert result.created
    item = result.item
    assert item.provenance.source == "municipal"
    assert item.provenance.municipality == "0301"
    assert item.provenance.recorded_at is not None
    posts = [r for r in recorder.seen if r.method == "POST" and "_search" not in r.url.path]
    assert len(posts) == 1  # one create, never retried
    post = posts[0]
    assert unquote(post.headers["if-none-exist"]) == f"identifier={SYSTEM}|rec-1"
    assert post.headers["content-type"] == "application/fhir+json"
    assert NIN not in str(post.url)
    model.model_validate(json.loads(post.content))
    if isinstance(item, TreatmentLimitation):
        assert (item.code.code, item.decided_by, item.reason, item.valid_until) == (
            "304253006", "Dr. Sykehjem", "Pasientens ønske", date(2027, 6, 1))
    elif isinstance(item, DocumentReference):
        assert (item.title, item.author, item.date) == ("Legevaktnotat", "Dr. Vakt", WHEN)
    else:
        assert isinstance(item, Medication)
        assert (item.code.code, item.dosage and item.dosage.text) == ("B01AF01", "1 tablett")


def test_the_same_identifier_twice_makes_one_record() -> None:
    connector, _recorder = stores({"0301": [ME]})
    first = asyncio.run(connector.write(request(LIMITATION)))
    again = asyncio.run(connector.write(request(LIMITATION)))
    assert first.created
    assert not again.created
    assert again.item.provenance.record_id == first.item.provenance.record_id


def test_a_store_without_conditional_create_is_not_written_to() -> None:
    connector, recorder = stores({"0301": [ME]}, profile="lenient")
    with pytest.raises(UpstreamRejectedError) as caught:
        asyncio.run(connector.write(request(LIMITATION)))
    assert caught.value.issues == ("not-supported",)
    assert not [r for r in recorder.seen if r.method == "POST" and r.url.path.endswith("Consent")]


def test_a_store_without_the_patient_rejects_with_not_found() -> None:
    connector, _ = stores({"0301": [patient("p9", (FNR, "09014412759"))]})
    with pytest.raises(UpstreamRejectedError) as caught:
        asyncio.run(connector.write(request(LIMITATION)))
    assert caught.value.issues == ("not-found",)
    assert NIN not in str(caught.value)


def test_a_municipality_without_a_store_is_unavailable() -> None:
    connector, _ = stores({"0301": [ME]})
    with pytest.raises(UpstreamUnavailableError):
        asyncio.run(connector.write(request(LIMITATION, municipality="4601")))


def _store(answer: httpx.Response, seen: list[httpx.Request]) -> Any:
    metadata = {"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
        {"type": "Consent", "interaction": [{"code": "create"}], "conditionalCreate": True},
        {"type": "Patient", "searchParam": [{"name": "identifier"}]}]}]}
    found = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": ME}]}

    def handle(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        if r.url.path.endswith("/metadata"):
            return httpx.Response(200, json=metadata)
        if r.url.path.endswith("/Patient/_search"):
            return httpx.Response(200, json=found)
        return answer
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return create(ConnectorSettings("municipal", stores={"0301": "http://s.test/0301"}), http)


@pytest.mark.parametrize(("status", "body", "issues"), [
    (422, {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "business-rule", "diagnostics": f"Patient {NIN} said no"},
        {"severity": "error", "code": "business-rule"},
        {"severity": "error", "code": "required", "expression": ["Consent.patient"]}]},
     ("business-rule", "required")),
    (400, {"resourceType": "OperationOutcome", "issue": [{"code": "structure"}]}, ("structure",)),
    (412, {"resourceType": "OperationOutcome", "issue": [{"code": "duplicate"}]}, ("duplicate",)),
    (409, {"not": "an outcome"}, ("unknown",)),
    (400, {"resourceType": "OperationOutcome", "issue": [{"code": "<script>x</script>"}]},
     ("unknown",)),
])
def test_an_operation_outcome_is_rejected_with_its_issue_codes_and_no_text(
        status: int, body: Any, issues: tuple[str, ...]) -> None:
    seen: list[httpx.Request] = []
    connector = _store(httpx.Response(status, json=body), seen)
    with pytest.raises(UpstreamRejectedError) as caught:
        asyncio.run(connector.write(request(LIMITATION)))
    assert caught.value.issues == issues
    assert caught.value.status_code == status
    assert NIN not in str(caught.value)
    assert "said no" not in str(caught.value)


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_store_is_asked_once(status: int) -> None:
    seen: list[httpx.Request] = []
    connector = _store(httpx.Response(status), seen)
    with pytest.raises(UpstreamUnavailableError):
        asyncio.run(connector.write(request(LIMITATION)))
    assert len([r for r in seen if r.url.path.endswith("/Consent")]) == 1


def test_metadata_that_cannot_be_read_writes_nothing() -> None:
    def handle(r: httpx.Request) -> httpx.Response:
        return httpx.Response(500) if r.url.path.endswith("/metadata") else httpx.Response(201)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    connector = create(ConnectorSettings("municipal", stores={"0301": "http://s.test/0301"}),
                       http)
    with pytest.raises(UpstreamUnavailableError, match="nothing was written"):
        asyncio.run(connector.write(request(LIMITATION)))


def _stored(**changes: Any) -> dict[str, Any]:
    resource = resource_for(request(LIMITATION), StorePatient("p1", "http://s.test/0301"))
    return resource | {"id": "c1", "meta": {"lastUpdated": "2026-11-30T09:00:01Z"}} | changes


@pytest.mark.parametrize("answer", [
    _stored(resourceType="DocumentReference"),
    _stored(patient={"reference": "Patient/p2"}),
    _stored(identifier=[{"system": SYSTEM, "value": "rec-2"}]),
    _stored(identifier=None),
    {"resourceType": "OperationOutcome", "issue": []},
    [],
])
def test_an_answer_that_is_not_the_record_asked_for_is_invalid(answer: Any) -> None:
    with pytest.raises(UpstreamInvalidError):
        read_written(answer, request(LIMITATION), StorePatient("p1", "http://s.test/0301"),
                     created=True)


def test_outcome_issues_keep_codes_only() -> None:
    many = {"resourceType": "OperationOutcome",
            "issue": [{"code": f"code{'x' * i}"} for i in range(12)]}
    assert len(outcome_issues(many)) == 8
    assert outcome_issues({"resourceType": "Bundle"}) == ()


def test_capabilities_name_the_types_created_conditionally() -> None:
    declared = parse_capabilities({"resourceType": "CapabilityStatement", "rest": [{
        "mode": "server", "resource": [
            {"type": "Consent", "interaction": [{"code": "create"}], "conditionalCreate": True},
            {"type": "Flag", "interaction": [{"code": "create"}]},
            {"type": "Condition", "conditionalCreate": True}]}]})
    assert declared.conditional_create == {"Consent"}


def test_the_writer_is_found_behind_every_read_wrapper() -> None:
    connector, _ = stores({"0301": [ME]})
    cache = Cache(open_store("memory://"), CacheKeys.from_secret("k" * 32))
    wrapped = CachedConnector(ResilientConnector(CheckedConnector(connector),
                                                 ResilienceSettings()), cache, ttl=1,
                              max_stale=1)
    assert writer_of(wrapped) is connector
    assert isinstance(connector, Writer)
    assert connector.writes == {Category.TREATMENT_LIMITATIONS, Category.DOCUMENTS,
                                Category.MEDICATIONS}

    class ReadOnly:
        name = "ro"
        categories = frozenset({Category.DOCUMENTS})

        async def fetch(self, request: Any) -> Any: ...

        async def aclose(self) -> None: ...

    assert writer_of(CheckedConnector(ReadOnly())) is None  # type: ignore[arg-type]


def test_a_write_request_repr_names_no_patient_and_no_text() -> None:
    text = repr(request(NOTE))
    assert NIN not in text
    assert "legevakt" not in text.lower()


def _timing_out(where: str) -> Any:
    metadata = {"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
        {"type": "Consent", "interaction": [{"code": "create"}], "conditionalCreate": True}]}]}
    found = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": ME}]}

    def handle(r: httpx.Request) -> httpx.Response:
        if r.url.path.endswith("/metadata"):
            return httpx.Response(200, json=metadata)
        if r.url.path.endswith(where):
            raise httpx.ReadTimeout("no answer", request=r)
        if r.url.path.endswith("/Patient/_search"):
            return httpx.Response(200, json=found)
        return httpx.Response(201, json={})
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return create(ConnectorSettings("municipal", stores={"0301": "http://s.test/0301"}), http)


def test_a_failure_before_the_record_is_sent_says_nothing_was_written() -> None:
    with pytest.raises(UpstreamTimeoutError) as caught:
        asyncio.run(_timing_out("/Patient/_search").write(request(LIMITATION)))
    assert caught.value.sent is False


def test_no_answer_to_the_record_itself_leaves_the_outcome_unknown() -> None:
    with pytest.raises(UpstreamTimeoutError) as caught:
        asyncio.run(_timing_out("/Consent").write(request(LIMITATION)))
    assert caught.value.sent is not False
