"""The municipal connector: request shape, fan-out over stores, failures, restrictions.

Stores are the sandbox's FHIR engine (tests/connectors/municipal_stores.py) over loopback-free
ASGI transports; failures come from transports that break what the store answered. Patient
identity is tested in test_municipal_identity.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base import AccessBasis, ConnectorSettings
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
from tests.connectors.municipal_stores import (
    ALL,
    FNR,
    NIN,
    condition,
    consent,
    fetch_request,
    patient,
    stores,
)

MINE = patient("p1", (FNR, NIN))
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def document(rid: str) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "id": rid, "status": "current",
            "subject": {"reference": "Patient/p1"},
            "type": {"coding": [{"system": "t", "code": "A03", "display": "Epikrise"}]}}


def restriction(provision: dict[str, Any]) -> dict[str, Any]:
    sperr = consent("sperr-1", "Patient/p1", scope="patient-privacy")
    sperr["provision"] = {"type": "deny", **provision}
    return sperr


def broken(conn: MunicipalConnector, handler: Callable[[httpx.Request], httpx.Response | None]
           ) -> MunicipalConnector:
    """`conn` with `handler` answering first (None: the store answers)."""
    inner = conn._http._transport

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            answer = handler(request)
            if answer is not None:
                return answer
            return await inner.handle_async_request(request)

    conn._http = httpx.AsyncClient(transport=Transport())
    conn._capabilities._http = conn._http
    return conn


async def test_searches_carry_headers_and_keep_the_nin_out_of_urls_and_headers() -> None:
    conn, recorder = stores({"0301": [MINE]}, "batch")
    result = await conn.fetch(fetch_request())
    assert result.status is Status.EMPTY
    resolve, batch = recorder.searches()
    assert resolve.method == "POST"
    assert resolve.url.path == "/municipal/0301/Patient/_search"
    assert parse_qs(resolve.content.decode())["identifier"] == [
        f"{FNR}|{NIN},http://hl7.no/fhir/NamingSystem/FNR|{NIN}"]
    for sent in (resolve, batch):
        assert NIN not in str(sent.url)
        assert not any(NIN in value for value in sent.headers.values())
        assert sent.headers["prefer"] == "handling=strict"
        assert sent.headers["nhn-source-system"] == "kilde"
        assert sent.headers["nhn-event-id"] == "req-42"
        assert sent.headers["nhn-purpose-of-use"] == "ETREAT"
        assert json.loads(unquote(sent.headers["nhn-user-role"])) == {
            "system": "urn:oid:2.16.578.1.12.4.1.1.9060", "code": "LE"}
    body = json.loads(batch.content)
    assert body["type"] == "batch"
    urls = [e["request"]["url"] for e in body["entry"]]
    assert {e["request"]["method"] for e in body["entry"]} == {"GET"}
    assert urls == [
        "Consent?patient=Patient/p1&scope=treatment&_count=100",
        "EpisodeOfCare?patient=Patient/p1&_count=100",
        "Condition?patient=Patient/p1&_count=100",
        "MedicationAdministration?patient=Patient/p1&_count=100",
        "DocumentReference?patient=Patient/p1&_count=100",
        "AllergyIntolerance?patient=Patient/p1&_count=100",
        "Flag?patient=Patient/p1&_count=100",
        "Consent?patient=Patient/p1&scope=patient-privacy&_count=100",
    ]


async def test_a_store_with_batch_and_chaining_gets_one_batch_patient_first() -> None:
    conn, recorder = stores({"0301": [MINE]}, "full")
    await conn.fetch(fetch_request(categories=frozenset({Category.CONDITIONS})))
    (batch,) = recorder.searches()
    urls = [e["request"]["url"] for e in json.loads(batch.content)["entry"]]
    assert urls[0].startswith("Patient?identifier=")
    assert urls[1].startswith("Condition?patient.identifier=")
    assert NIN not in str(batch.url)


async def test_d_number_is_resolved_with_the_d_number_systems() -> None:
    dnr = "57099032172"
    conn, recorder = stores({"0301": []}, "batch")
    await conn.fetch(fetch_request(patient_nin=dnr))
    form = parse_qs(recorder.searches()[0].content.decode())
    assert form["identifier"] == [f"urn:oid:2.16.578.1.12.4.1.4.2|{dnr},"
                                  f"http://hl7.no/fhir/NamingSystem/DNR|{dnr}"]


async def test_only_requested_categories_are_searched() -> None:
    conn, recorder = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "batch")
    result = await conn.fetch(fetch_request(
        categories=frozenset({Category.CONDITIONS, Category.LAB_RESULTS})))
    batch = recorder.searches()[-1]
    types = [e["request"]["url"].split("?")[0] for e in json.loads(batch.content)["entry"]]
    assert types == ["Condition", "Consent"]  # the privacy search always goes along
    assert set(result.items) == {Category.CONDITIONS}
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]


async def test_only_allowed_and_configured_municipalities_are_queried() -> None:
    held = {"0301": [MINE, condition("c1", "Patient/p1")],
            "4601": [patient("b1", (FNR, NIN)), condition("b-c1", "Patient/b1")],
            "5001": [patient("t1", (FNR, NIN)), condition("t-c1", "Patient/t1")]}
    conn, recorder = stores(held)
    result = await conn.fetch(fetch_request(municipalities=frozenset({"0301", "4601", "1103"})))
    asked = {r.url.path.split("/")[2] for r in recorder.seen}
    assert asked == {"0301", "4601"}
    assert sorted(str(c.provenance.municipality) for c in result.items[Category.CONDITIONS]) == [
        "0301", "4601"]


async def test_no_store_to_query_gives_empty_without_a_request() -> None:
    conn, recorder = stores({"0301": [MINE]})
    result = await conn.fetch(fetch_request(municipalities=frozenset({"1103"})))
    assert result.status is Status.EMPTY
    assert recorder.seen == []


async def test_items_carry_provenance_and_security_labels() -> None:
    labelled = condition("c1", "Patient/p1")
    labelled["meta"]["security"] = [{"system": CONF, "code": "R"}]
    conn, _ = stores({"0301": [MINE, labelled]})
    result = await conn.fetch(fetch_request())
    (item,) = result.items[Category.CONDITIONS]
    assert isinstance(item, Condition)
    assert item.provenance.source == "municipal"
    assert item.provenance.record_id == "c1"
    assert item.provenance.municipality == "0301"
    assert item.provenance.recorded_at is not None
    assert [s.code for s in item.security] == ["R"]
    assert result.status is Status.OK


async def test_one_store_503_gives_partial_naming_the_municipality() -> None:
    conn, _ = stores({"0301": [MINE, condition("c1", "Patient/p1")],
                      "4601": [patient("b1", (FNR, NIN))]})
    conn = broken(conn, lambda r: httpx.Response(503, json={"resourceType": "OperationOutcome"})
                  if "/4601" in r.url.path and not r.url.path.endswith("/metadata") else None)
    result = await conn.fetch(fetch_request(municipalities=frozenset({"0301", "4601"})))
    assert result.status is Status.PARTIAL
    assert result.detail is not None
    assert "'4601'" in result.detail
    assert "0301" not in result.detail
    assert NIN not in result.detail
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]


async def test_all_stores_failing_reraises_the_connector_error() -> None:
    conn, _ = stores({"0301": [MINE], "4601": [MINE]})
    conn = broken(conn, lambda r: httpx.Response(503))
    with pytest.raises(UpstreamUnavailableError) as info:
        await conn.fetch(fetch_request(municipalities=frozenset({"0301", "4601"})))
    assert info.value.source == "municipal"
    assert NIN not in str(info.value)


async def test_hanging_store_raises_timeout_within_budget() -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    conn = create(ConnectorSettings("municipal", stores={"0301": "http://oslo.test/fhir"}), http)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeoutError):
        await conn.fetch(fetch_request(timeout=0.1))
    assert loop.time() - started < 1.0


async def test_httpx_timeout_becomes_upstream_timeout() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    conn = create(ConnectorSettings("municipal", stores={"0301": "http://oslo.test/fhir"}), http)
    with pytest.raises(UpstreamTimeoutError):
        await conn.fetch(fetch_request())


GARBAGE = {
    "not-json": httpx.Response(200, content=b'{"resourceType": "Bundle", <<<not json'),
    "wrong-resource": httpx.Response(200, json={"resourceType": "OperationOutcome"}),
    "wrong-entry-count": httpx.Response(200, json={"resourceType": "Bundle",
                                                   "type": "batch-response", "entry": []}),
    "wrong-field-type": httpx.Response(200, json={
        "resourceType": "Bundle", "type": "batch-response", "entry": [
            {"resource": {"resourceType": "Bundle", "entry": [{"resource": {
                "resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                "code": {"coding": 7}}}]}},
            {"resource": {"resourceType": "Bundle"}}]}),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
async def test_garbage_becomes_upstream_invalid(kind: str) -> None:
    conn, _ = stores({"0301": [MINE]}, "batch")
    conn = broken(conn, lambda r: GARBAGE[kind] if r.url.path == "/municipal/0301" else None)
    with pytest.raises(UpstreamInvalidError):
        await conn.fetch(fetch_request(categories=frozenset({Category.CONDITIONS})))


async def test_a_rejected_search_fails_its_category_not_empty() -> None:
    conn, _ = stores({"0301": [MINE, document("doc-1")]}, "plain")
    conn = broken(conn, lambda r: httpx.Response(400, json={"resourceType": "OperationOutcome"})
                  if r.url.path.endswith("/Condition") else None)
    result = await conn.fetch(fetch_request())
    assert result.status_for(Category.CONDITIONS) is Status.UNAVAILABLE
    reason = result.reason_for(Category.CONDITIONS)
    assert reason is not None
    assert reason.code == "UPSTREAM_REJECTED"
    assert "Condition search" in reason.detail
    assert "HTTP 400" in reason.detail
    # the other categories keep their answers
    assert [d.id for d in result.items[Category.DOCUMENTS]] == ["doc-1"]
    assert result.status_for(Category.DOCUMENTS) is Status.OK
    assert result.status_for(Category.MEDICATIONS) is Status.EMPTY


async def test_local_restriction_withholds_covered_items() -> None:
    conn, _ = stores({"0301": [MINE, condition("c1", "Patient/p1"), document("doc-1"),
                               restriction({"class": [{"code": "DocumentReference"}]})]})
    result = await conn.fetch(fetch_request())
    # enforced here, record by record; the policy only sees an *opened* restriction
    assert result.privacy.restricted is False
    assert result.privacy.restriction_opened is False
    assert result.privacy.detail is not None
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]
    assert result.items[Category.DOCUMENTS] == ()
    assert result.status_for(Category.DOCUMENTS) is Status.RESTRICTED
    assert result.status_for(Category.CONDITIONS) is Status.OK


async def test_elevated_access_opens_a_local_restriction() -> None:
    conn, _ = stores({"0301": [MINE, document("doc-1"), restriction({})]})
    result = await conn.fetch(fetch_request(access_basis=AccessBasis.FORHOYET_AKUTT))
    assert result.privacy.restricted is True
    assert result.privacy.restriction_opened is True
    (doc,) = result.items[Category.DOCUMENTS]
    assert isinstance(doc, DocumentReference)
    assert result.status_for(Category.DOCUMENTS) is Status.OK


@pytest.mark.parametrize(
    ("settings_stores", "message"),
    [
        ({}, "Connector 'municipal' needs at least one store: set "
             "KILDE_CONNECTORS__MUNICIPAL__STORES."),
        ({"0301": "/municipal/0301"}, "store '0301' needs an absolute http(s) URL"),
        ({"0301": "ftp://host/x"}, "store '0301' needs an absolute http(s) URL"),
        ({"oslo": "http://host/x"}, "store 'oslo' is not a 4-digit municipality number"),
    ],
)
def test_create_rejects_bad_store_settings(settings_stores: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        create(ConnectorSettings("municipal", stores=settings_stores), httpx.AsyncClient())


async def test_municipal_cave_and_flags_become_critical_information_with_provenance() -> None:
    cave = {"resourceType": "AllergyIntolerance", "id": "cave-1",
            "meta": {"lastUpdated": "2026-03-01T10:00:00Z"},
            "verificationStatus": {"coding": [{"code": "confirmed"}]}, "criticality": "high",
            "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "N02AA01",
                                 "display": "Morfin"}]}, "patient": {"reference": "Patient/p1"}}
    withdrawn = cave | {"id": "cave-2", "verificationStatus": {"coding": [
        {"code": "entered-in-error"}]}}
    refuted = cave | {"id": "cave-3", "verificationStatus": {"coding": [{"code": "refuted"}]}}
    flag = {"resourceType": "Flag", "id": "flag-1", "status": "active",
            "code": {"text": "Smitteregime: MRSA"}, "subject": {"reference": "Patient/p1"}}
    conn, _ = stores({"0301": [MINE, cave, withdrawn, refuted, flag]})
    result = await conn.fetch(fetch_request(categories=frozenset({Category.CRITICAL_INFORMATION})))
    items = {i.id: i for i in result.items[Category.CRITICAL_INFORMATION]}
    assert sorted(items) == ["cave-1", "cave-3", "flag-1"]  # entered in error: not shown
    assert items["cave-1"].type.value == "ALLERGY"
    assert items["cave-1"].severity == "severe"
    assert items["cave-1"].provenance.source == "municipal"
    assert items["cave-1"].provenance.municipality == "0301"
    assert items["cave-1"].provenance.record_id == "cave-1"
    assert items["cave-3"].status == "inactive"
    assert items["flag-1"].type.value == "INFECTION"
    assert result.status_for(Category.CRITICAL_INFORMATION) is Status.OK


async def test_a_store_that_sends_fewer_records_than_its_total_is_partial() -> None:
    conn, _ = stores({"0301": [MINE, condition("c1", "Patient/p1")]}, "plain")

    def short(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/Condition"):
            return None
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset",
                                         "total": 3, "entry": [{"resource": condition(
                                             "c1", "Patient/p1")}]})

    result = await broken(conn, short).fetch(fetch_request(
        categories=frozenset({Category.CONDITIONS})))
    assert [c.id for c in result.items[Category.CONDITIONS]] == ["c1"]
    assert result.status_for(Category.CONDITIONS) is Status.PARTIAL


def test_connector_declares_name_and_categories() -> None:
    conn, _ = stores({"0301": []})
    assert conn.name == "municipal"
    assert conn.categories == ALL


@pytest.mark.parametrize("profile", ["full", "batch", "plain", "paged"])
async def test_round_trip_against_the_sandbox_finds_hlr_minus_in_oslo(profile: str) -> None:
    app = Starlette(routes=[Mount("/municipal", app=municipal.create_app(
        municipal.PROFILES[profile]))])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    urls = {m.number: f"http://sandbox/municipal/{m.number}" for m in world.MUNICIPALITIES}
    conn = create(ConnectorSettings("municipal", stores=urls), http)
    request = fetch_request(patient_nin=world.by_tag("legevakt-hlr").nin,
                            municipalities=frozenset(urls))
    async with http:
        result = await conn.fetch(request)
    assert result.status is Status.OK
    assert result.detail is not None  # Bergen and Trondheim do not know him
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
    assert {m.dosage.text for m in medications if m.dosage} == {
        "1 tablett morgen", "1 tablett daglig", "1 tablett kveld"}
    docs = {d.id: [s.code for s in d.security] for d in result.items[Category.DOCUMENTS]}
    assert docs == {"doc-a1": [], "doc-a2": ["R"]}


async def test_every_store_request_carries_the_stores_helseid_token_and_a_dpop_proof() -> None:
    from connectors.credentials import Credentials, HelseIdClient, TokenProvider, generate_key

    key = generate_key()
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/connect/token":
            grant = parse_qs(request.content.decode())["grant_type"][0]
            return httpx.Response(200, json={"access_token": f"tok-{grant[-11:]}",
                                             "token_type": "DPoP", "expires_in": 300})
        seen.append(request)
        if request.url.path.endswith("/metadata"):
            return httpx.Response(404, json={"resourceType": "OperationOutcome"})
        entries = [{"resource": MINE}] if request.url.path.endswith("/Patient/_search") else []
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset",
                                         "entry": entries})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    helseid = HelseIdClient(http, issuer="https://helseid.test", client_id="kilde",
                            client_key=key, dpop_key=key,
                            token_endpoint="https://helseid.test/connect/token")
    conn = create(ConnectorSettings("municipal", stores={"0301": "http://oslo.test/fhir"},
                                    audience="kommune:0301", scope="fhir/read",
                                    grant="client_credentials"), http)
    request = fetch_request(categories=frozenset({Category.CONDITIONS}),
                            credentials=Credentials(TokenProvider(helseid)))
    result = await conn.fetch(request)
    assert result.status is Status.EMPTY
    assert len(seen) == 4  # metadata, the Patient search, Condition and privacy by reference
    for sent in seen:
        assert sent.headers["authorization"].startswith("DPoP tok-")
        assert sent.headers["dpop"].count(".") == 2
