"""The municipal connector over `httpx.MockTransport`: request shape, fan-out, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base import AccessBasis, ConnectorSettings, FetchRequest, Requester
from connectors.errors import (
    ConnectorConfigError,
    UpstreamInvalidError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.model import (
    Category,
    Condition,
    DocumentReference,
    Medication,
    MunicipalService,
    Status,
    TreatmentLimitation,
)
from connectors.municipal import MunicipalConnector, create
from sandbox import municipal, world

NIN = "14033841389"
DNR = "57099032172"
STORES = {"0301": "http://oslo.test/fhir", "4601": "http://bergen.test/r4/", "5001":
          "http://trondheim.test/fhir"}
ALL = frozenset(Category) - {Category.LAB_RESULTS, Category.CRITICAL_INFORMATION}
PRIVACY_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"

Handler = Callable[[httpx.Request], httpx.Response]


def condition(rid: str, store: str, labels: list[dict[str, str]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"lastUpdated": "2026-01-01T00:00:00Z"}
    if labels:
        meta["security"] = labels
    return {"resourceType": "Condition", "id": rid, "meta": meta,
            "code": {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.7170", "code": "K77"}]},
            "clinicalStatus": {"coding": [{"code": "active"}]}, "note": store}


def document(rid: str) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "id": rid, "status": "current",
            "type": {"coding": [{"system": "t", "code": "A03", "display": "Epikrise"}]}}


def restriction(provision: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Consent", "id": "sperr-1", "status": "active",
            "scope": {"coding": [{"system": PRIVACY_SCOPE, "code": "patient-privacy"}]},
            "provision": {"type": "deny", **provision}}


def answering(resources: dict[str, list[dict[str, Any]]], seen: list[httpx.Request]) -> Handler:
    """A store that answers each search with the resources listed for its type (or none)."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        batch = json.loads(request.content)
        entries = []
        for entry in batch["entry"]:
            url = urlsplit(entry["request"]["url"])
            found = resources.get(url.path, [])
            if url.path == "Consent":
                scope = parse_qs(url.query)["scope"][0]
                found = [r for r in found if r["scope"]["coding"][0]["code"] == scope]
            entries.append({"resource": {"resourceType": "Bundle", "type": "searchset",
                                         "entry": [{"resource": r} for r in found]},
                            "response": {"status": "200 OK"}})
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response",
                                         "entry": entries})

    return handle


def connector(handler: Handler, stores: dict[str, str] | None = None) -> MunicipalConnector:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return create(ConnectorSettings("municipal", stores=stores or STORES), http)


def fetch_request(**kwargs: Any) -> FetchRequest:
    values: dict[str, Any] = {
        "patient_nin": NIN, "categories": ALL, "municipalities": frozenset({"0301"}),
        "request_id": "req-42", "timeout": 1.0,
        "requester": Requester(hpr_number="9144901", role_code="LE", purpose_of_use="ETREAT"),
    } | kwargs
    return FetchRequest(**values)


async def test_batch_post_carries_searches_and_headers_but_no_nin_in_url() -> None:
    seen: list[httpx.Request] = []
    result = await connector(answering({}, seen)).fetch(fetch_request())
    assert result.status is Status.EMPTY
    (sent,) = seen
    assert sent.method == "POST"
    assert str(sent.url) == "http://oslo.test/fhir"
    assert NIN not in str(sent.url)
    assert sent.headers["nhn-source-system"] == "kilde"
    assert sent.headers["nhn-event-id"] == "req-42"
    assert sent.headers["nhn-purpose-of-use"] == "ETREAT"
    assert json.loads(unquote(sent.headers["nhn-user-role"])) == {
        "system": "urn:oid:2.16.578.1.12.4.1.1.9060", "code": "LE"}
    assert "%22" in sent.headers["nhn-user-role"]
    assert not any(NIN in value for value in sent.headers.values())
    batch = json.loads(sent.content)
    assert batch["resourceType"] == "Bundle"
    assert batch["type"] == "batch"
    urls = [e["request"]["url"] for e in batch["entry"]]
    assert {e["request"]["method"] for e in batch["entry"]} == {"GET"}
    assert urls == [
        f"Consent?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{NIN}&scope=treatment",
        f"EpisodeOfCare?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{NIN}",
        f"Condition?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{NIN}",
        f"MedicationAdministration?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{NIN}",
        f"DocumentReference?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{NIN}",
        f"Consent?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{NIN}&scope=patient-privacy",
    ]


async def test_d_number_is_searched_with_the_d_number_system() -> None:
    seen: list[httpx.Request] = []
    await connector(answering({}, seen)).fetch(fetch_request(patient_nin=DNR))
    url = json.loads(seen[0].content)["entry"][0]["request"]["url"]
    assert f"urn:oid:2.16.578.1.12.4.1.4.2|{DNR}" in url


async def test_only_requested_categories_are_searched() -> None:
    seen: list[httpx.Request] = []
    request = fetch_request(categories=frozenset({Category.CONDITIONS, Category.LAB_RESULTS}))
    result = await connector(answering({"Condition": [condition("c1", "0301")]}, seen)).fetch(
        request)
    types = [urlsplit(e["request"]["url"]).path for e in json.loads(seen[0].content)["entry"]]
    assert types == ["Condition", "Consent"]  # the privacy search always goes along
    assert set(result.items) == {Category.CONDITIONS}
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]


async def test_only_allowed_and_configured_municipalities_are_queried() -> None:
    seen: list[httpx.Request] = []
    request = fetch_request(municipalities=frozenset({"0301", "4601", "1103"}))
    result = await connector(answering({"Condition": [condition("c1", "x")]}, seen)).fetch(
        request)
    assert sorted(r.url.host for r in seen) == ["bergen.test", "oslo.test"]
    assert str(next(r.url for r in seen if r.url.host == "bergen.test")) == "http://bergen.test/r4"
    assert sorted(str(c.provenance.municipality) for c in result.items[Category.CONDITIONS]) == [
        "0301", "4601"]


async def test_no_store_to_query_gives_empty_without_a_request() -> None:
    seen: list[httpx.Request] = []
    result = await connector(answering({}, seen)).fetch(
        fetch_request(municipalities=frozenset({"1103"})))
    assert result.status is Status.EMPTY
    assert seen == []


async def test_items_carry_provenance_and_security_labels() -> None:
    seen: list[httpx.Request] = []
    label = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    result = await connector(answering({"Condition": [condition("c1", "x", [label])]}, seen)
                             ).fetch(fetch_request())
    (item,) = result.items[Category.CONDITIONS]
    assert isinstance(item, Condition)
    assert item.provenance.source == "municipal"
    assert item.provenance.record_id == "c1"
    assert item.provenance.municipality == "0301"
    assert item.provenance.recorded_at is not None
    assert [s.code for s in item.security] == ["R"]
    assert result.status is Status.OK


async def test_one_store_503_gives_partial_naming_the_municipality() -> None:
    seen: list[httpx.Request] = []
    oslo = answering({"Condition": [condition("c1", "0301")]}, seen)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "bergen.test":
            return httpx.Response(503, json={"resourceType": "OperationOutcome"})
        return oslo(request)

    result = await connector(handle).fetch(
        fetch_request(municipalities=frozenset({"0301", "4601"})))
    assert result.status is Status.PARTIAL
    assert result.detail is not None
    assert "'4601'" in result.detail
    assert "0301" not in result.detail
    assert NIN not in result.detail
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]


async def test_all_stores_failing_reraises_the_connector_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    with pytest.raises(UpstreamUnavailableError) as info:
        await connector(handle).fetch(fetch_request(municipalities=frozenset({"0301", "4601"})))
    assert info.value.source == "municipal"
    assert NIN not in str(info.value)


async def test_hanging_store_raises_timeout_within_budget() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    conn = create(ConnectorSettings("municipal", stores=STORES), http)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeoutError):
        await conn.fetch(fetch_request(timeout=0.1))
    assert loop.time() - started < 1.0


async def test_httpx_timeout_becomes_upstream_timeout() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamTimeoutError):
        await connector(handle).fetch(fetch_request())


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b'{"resourceType": "Bundle", <<<not json'),
        httpx.Response(200, json={"resourceType": "OperationOutcome"}),
        httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response",
                                  "entry": []}),
        httpx.Response(200, json={"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"resource": {"resourceType": "Bundle", "entry": [{"resource": {
                "resourceType": "Condition", "id": "c1", "code": {"coding": 7}}}]}},
            {"resource": {"resourceType": "Bundle"}}]}),
    ],
    ids=["not-json", "wrong-resource", "wrong-entry-count", "wrong-field-type"],
)
async def test_garbage_becomes_upstream_invalid(response: httpx.Response) -> None:
    request = fetch_request(categories=frozenset({Category.CONDITIONS}))
    with pytest.raises(UpstreamInvalidError):
        await connector(lambda _: response).fetch(request)


async def test_local_restriction_withholds_covered_items() -> None:
    seen: list[httpx.Request] = []
    store = answering({
        "Condition": [condition("c1", "x")],
        "DocumentReference": [document("doc-1")],
        "Consent": [restriction({"class": [{"code": "DocumentReference"}]})],
    }, seen)
    result = await connector(store).fetch(fetch_request())
    # enforced here, record by record; the policy only sees an *opened* restriction
    assert result.privacy.restricted is False
    assert result.privacy.restriction_opened is False
    assert result.privacy.detail is not None
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]
    assert result.items[Category.DOCUMENTS] == ()
    assert result.status_for(Category.DOCUMENTS) is Status.RESTRICTED
    assert result.status_for(Category.CONDITIONS) is Status.OK


async def test_elevated_access_opens_a_local_restriction() -> None:
    seen: list[httpx.Request] = []
    store = answering({"DocumentReference": [document("doc-1")],
                       "Consent": [restriction({})]}, seen)
    result = await connector(store).fetch(
        fetch_request(access_basis=AccessBasis.FORHOYET_AKUTT))
    assert result.privacy.restricted is True
    assert result.privacy.restriction_opened is True
    (doc,) = result.items[Category.DOCUMENTS]
    assert isinstance(doc, DocumentReference)
    assert result.status_for(Category.DOCUMENTS) is Status.OK


@pytest.mark.parametrize(
    ("stores", "message"),
    [
        ({}, "Connector 'municipal' needs at least one store: set "
             "KILDE_CONNECTORS__MUNICIPAL__STORES."),
        ({"0301": "/municipal/0301"}, "store '0301' needs an absolute http(s) URL"),
        ({"0301": "ftp://host/x"}, "store '0301' needs an absolute http(s) URL"),
        ({"oslo": "http://host/x"}, "store 'oslo' is not a 4-digit municipality number"),
    ],
)
def test_create_rejects_bad_store_settings(stores: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create(ConnectorSettings("municipal", stores=stores), httpx.AsyncClient())


def test_connector_declares_name_and_categories() -> None:
    conn = connector(answering({}, []))
    assert conn.name == "municipal"
    assert conn.categories == ALL


async def test_round_trip_against_the_sandbox_finds_hlr_minus_in_oslo() -> None:
    app = Starlette(routes=[Mount("/municipal", app=municipal.create_app())])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    stores = {m.number: f"http://sandbox/municipal/{m.number}" for m in world.MUNICIPALITIES}
    conn = create(ConnectorSettings("municipal", stores=stores), http)
    request = fetch_request(patient_nin=world.by_tag("legevakt-hlr").nin,
                            municipalities=frozenset(stores))
    async with http:
        result = await conn.fetch(request)
    assert result.status is Status.OK
    (hlr,) = result.items[Category.TREATMENT_LIMITATIONS]
    assert isinstance(hlr, TreatmentLimitation)
    assert hlr.code.code == "304253006"
    assert hlr.status == "active"
    assert hlr.reason == "Pasientens ønske, drøftet med pårørende"
    assert hlr.provenance.source == "municipal"
    assert hlr.provenance.municipality == "0301"
    assert hlr.provenance.record_id == "hlr-1"
    (service,) = result.items[Category.MUNICIPAL_SERVICES]
    assert isinstance(service, MunicipalService)
    assert service.phone == "+47 21 80 21 80"
    medications = [m for m in result.items[Category.MEDICATIONS] if isinstance(m, Medication)]
    assert {m.treatment_id for m in medications} == {"tr-a1", "tr-a2", "tr-a3"}
    docs = {d.id: [s.code for s in d.security] for d in result.items[Category.DOCUMENTS]}
    assert docs == {"doc-a1": [], "doc-a2": ["R"]}
