"""The `pll` and `eresept` connectors: the wire request, results, errors, and a sandbox round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors import eresept, pll
from connectors.base import AccessBasis, Connector, ConnectorSettings, FetchRequest
from connectors.errors import (
    ConnectorConfigError,
    ConnectorError,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from connectors.model import Category, Dosage, Status
from sandbox import medication as fake
from sandbox.world import by_tag
from schema.shape.linking import link_medications

MULTI = by_tag("multi-service")
BASE = "http://sfm.test/api"
FACTORIES: dict[str, Callable[[ConnectorSettings, httpx.AsyncClient], Connector]] = {
    "pll": pll.create, "eresept": eresept.create,
}


def request(basis: AccessBasis = AccessBasis.AKUTT, nin: str = MULTI.nin) -> FetchRequest:
    return FetchRequest(patient_nin=nin, categories=frozenset({Category.MEDICATIONS}),
                        access_basis=basis, timeout=1.0, request_id="req-1")


def connector(name: str, handler: Callable[[httpx.Request], Any], base: str = BASE) -> Connector:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return FACTORIES[name](ConnectorSettings(name=name, base_url=base), http)


class FakeSfm:
    """A MockTransport handler answering like the sandbox fake; records each request it saw."""

    def __init__(self, *, rf_lookup: bool = True) -> None:
        self.rf_lookup = rf_lookup
        self.seen: list[httpx.Request] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.seen.append(req)
        query = fake.read_query(orjson.loads(req.content))
        body = fake.render_response(query, datetime.now(UTC), rf_lookup=self.rf_lookup)
        return httpx.Response(200, json=body)


def sandbox_answer(rf_lookup: bool = True) -> FakeSfm:
    return FakeSfm(rf_lookup=rf_lookup)


@pytest.mark.parametrize("name", ["pll", "eresept"])
async def test_connector_posts_parameters_with_the_patient_in_the_body_only(name: str) -> None:
    handler = sandbox_answer()
    await connector(name, handler).fetch(request())
    (sent,) = handler.seen
    assert sent.method == "POST"
    assert str(sent.url) == f"{BASE}/Patient/$getMedication"
    assert MULTI.nin not in str(sent.url)
    assert all(MULTI.nin not in value for value in sent.headers.values())
    assert sent.headers["content-type"] == "application/fhir+json"
    assert sent.headers["x-request-id"] == "req-1"
    body = orjson.loads(sent.content)
    assert body["resourceType"] == "Parameters"
    names = [p["name"] for p in body["parameter"]]
    assert names == ["patient", "SamtykkeKjernejournal", "SamtykkeSperretLegemidler",
                     "SamtykkeLasteResepter", "IncludeOriginal"]
    assert body["parameter"][0]["resource"]["identifier"] == [
        {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": MULTI.nin}]


@pytest.mark.parametrize(("basis", "consent"), [
    (AccessBasis.AKUTT, "HPAKUTT"),
    (AccessBasis.FORHOYET_AKUTT, "HPAKUTT"),
    (AccessBasis.SAMTYKKE, "HPMOTTATTSAMTYKKE"),
    (AccessBasis.FORHOYET_SAMTYKKE, "HPMOTTATTSAMTYKKE"),
    (AccessBasis.UNNTAK, "HPUNNTAK"),
])
@pytest.mark.parametrize("name", ["pll", "eresept"])
async def test_connector_sends_the_access_basis_as_samtykke_kjernejournal(
    name: str, basis: AccessBasis, consent: str
) -> None:
    handler = sandbox_answer()
    await connector(name, handler).fetch(request(basis))
    body = orjson.loads(handler.seen[0].content)
    sent = {p["name"]: p for p in body["parameter"]}
    assert sent["SamtykkeKjernejournal"]["valueCode"] == consent


async def test_pll_serves_only_the_pll_section() -> None:
    result = await connector("pll", sandbox_answer()).fetch(request())
    assert result.source == "pll"
    assert result.status is Status.OK
    items = result.items[Category.MEDICATIONS]
    assert sorted(m.pll_id for m in items) == ["pll-d1", "pll-d2", "pll-d3"]
    assert all(m.in_pll and m.prescription_id is None for m in items)
    assert {m.provenance.source for m in items} == {"pll"}
    assert sorted(m.provenance.record_id for m in items) == ["pll-d1", "pll-d2", "pll-d3"]


async def test_eresept_serves_the_prescriptions() -> None:
    result = await connector("eresept", sandbox_answer()).fetch(request())
    assert result.status is Status.OK
    assert result.detail is None
    items = result.items[Category.MEDICATIONS]
    assert sorted(m.prescription_id for m in items) == ["rx-d1", "rx-d2", "rx-d3", "rx-d4"]
    assert not any(m.in_pll for m in items)
    assert {m.provenance.source for m in items} == {"eresept"}


async def test_eresept_is_partial_when_reseptformidleren_was_not_consulted() -> None:
    result = await connector("eresept", sandbox_answer(rf_lookup=False)).fetch(request())
    assert result.status is Status.PARTIAL
    assert result.status_for(Category.MEDICATIONS) is Status.PARTIAL
    assert "Reseptformidleren was not consulted" in (result.detail or "")
    assert result.items[Category.MEDICATIONS] == ()


async def test_pll_is_unaffected_by_a_missing_rf_lookup() -> None:
    result = await connector("pll", sandbox_answer(rf_lookup=False)).fetch(request())
    assert result.status is Status.OK
    assert len(result.items[Category.MEDICATIONS]) == 3


@pytest.mark.parametrize("name", ["pll", "eresept"])
async def test_patient_without_medications_is_empty_not_an_error(name: str) -> None:
    result = await connector(name, sandbox_answer()).fetch(request(nin="12057900499"))
    assert result.status is Status.EMPTY
    assert result.items[Category.MEDICATIONS] == ()


@pytest.mark.parametrize("name", ["pll", "eresept"])
async def test_connector_does_not_call_out_for_other_categories(name: str) -> None:
    handler = sandbox_answer()
    other = FetchRequest(patient_nin=MULTI.nin, categories=frozenset({Category.LAB_RESULTS}))
    result = await connector(name, handler).fetch(other)
    assert result.status is Status.EMPTY
    assert handler.seen == []


def _timeout(req: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=req)


def _refused(req: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=req)


OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid",
                                                          "diagnostics": "bad"}]}


@pytest.mark.parametrize(("handler", "error"), [
    (_timeout, UpstreamTimeoutError),
    (_refused, UpstreamUnavailableError),
    (lambda req: httpx.Response(503, json=OUTCOME), UpstreamUnavailableError),
    (lambda req: httpx.Response(400, json=OUTCOME), UpstreamRejectedError),
    (lambda req: httpx.Response(403, json=OUTCOME), UpstreamRejectedError),
    (lambda req: httpx.Response(200, content=b"<<<not json"), UpstreamInvalidError),
    (lambda req: httpx.Response(200, json=OUTCOME), UpstreamInvalidError),
    (lambda req: httpx.Response(200, json={"resourceType": "Parameters", "parameter": []}),
     UpstreamInvalidError),
], ids=["timeout", "refused", "503", "400", "403", "not-json", "not-parameters", "no-bundle"])
@pytest.mark.parametrize("name", ["pll", "eresept"])
async def test_upstream_failures_become_connector_errors_without_personal_data(
    name: str, handler: Callable[[httpx.Request], httpx.Response], error: type[ConnectorError]
) -> None:
    with pytest.raises(error) as caught:
        await connector(name, handler).fetch(request())
    assert caught.value.source == name
    message = str(caught.value)
    assert MULTI.nin not in message
    assert "$getMedication" not in message
    assert "sfm.test" not in message


@pytest.mark.parametrize("name", ["pll", "eresept"])
def test_connector_needs_a_base_url(name: str) -> None:
    with pytest.raises(ConnectorConfigError, match=f"KILDE_CONNECTORS__{name.upper()}__BASE_URL"):
        FACTORIES[name](ConnectorSettings(name=name),
                        httpx.AsyncClient(transport=httpx.MockTransport(FakeSfm())))


@pytest.mark.parametrize("name", ["pll", "eresept"])
def test_connector_fulfils_the_protocol(name: str) -> None:
    made = connector(name, sandbox_answer())
    assert isinstance(made, Connector)
    assert made.name == name
    assert made.categories == frozenset({Category.MEDICATIONS})


# -- round trip: the real connectors against the fake over ASGI -------------------------------


async def test_round_trip_links_metformin_from_both_sources_with_a_dosage_conflict() -> None:
    sandbox = Starlette(routes=[Mount("/pll", app=fake.create_app("pll")),
                                Mount("/eresept", app=fake.create_app("eresept"))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox)) as http:
        sources = [
            pll.create(ConnectorSettings("pll", base_url="http://sandbox/pll"), http),
            eresept.create(ConnectorSettings("eresept", base_url="http://sandbox/eresept"), http),
        ]
        results = await asyncio.gather(*(c.fetch(request()) for c in sources))
    assert [r.status for r in results] == [Status.OK, Status.OK]
    linked = link_medications([m for r in results for m in r.items[Category.MEDICATIONS]])
    assert len(linked) == 4  # Xarelto, Seretide, Metformin (PLL + e-resept), Zopiklon (e-resept)
    (metformin,) = [m for m in linked if m.code.code == "A10BA02"]
    assert [p.source for p in metformin.provenances] == ["pll", "eresept"]
    assert [p.record_id for p in metformin.provenances] == ["pll-d3", "rx-d3"]
    assert metformin.conflicts == ("dosage",)
    assert metformin.dosage == Dosage("1 tablett x 2")  # PLL wins for display
    assert (metformin.pll_id, metformin.prescription_id) == ("pll-d3", "rx-d3")
    assert metformin.in_pll is True
    (zopiklon,) = [m for m in linked if m.code.code == "N05CF01"]
    assert (zopiklon.in_pll, zopiklon.provenance.source) == (False, "eresept")
    assert all(m.conflicts == () for m in linked if m is not metformin)


class Tampered(FakeSfm):
    """The sandbox's answer with `change` applied to its medication Bundle."""

    def __init__(self, change: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.change = change

    def __call__(self, req: httpx.Request) -> httpx.Response:
        body = orjson.loads(super().__call__(req).content)
        bundle = next(p["resource"] for p in body["parameter"] if p["name"] == "medication")
        self.change(bundle)
        return httpx.Response(200, json=body)


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _another_patient(bundle: dict[str, Any]) -> None:
    _resources(bundle, "Patient")[0]["identifier"] = [
        {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": "14033841389"}]


def _statement_of_another(bundle: dict[str, Any]) -> None:
    _resources(bundle, "MedicationStatement")[0]["subject"] = {
        "identifier": {"value": "14033841389"}}


@pytest.mark.parametrize("name", ["pll", "eresept"])
@pytest.mark.parametrize("change", [_another_patient, _statement_of_another],
                         ids=["patient", "statement-subject"])
async def test_a_document_about_another_patient_is_invalid(
        name: str, change: Callable[[dict[str, Any]], None]) -> None:
    with pytest.raises(UpstreamInvalidError, match="another patient"):
        await connector(name, Tampered(change)).fetch(request())


def _unlisted(bundle: dict[str, Any]) -> None:
    """The PLL section no longer lists its entries (they keep their PLL ids)."""
    for composition in _resources(bundle, "Composition"):
        for section in composition.get("section", []):
            section.pop("entry", None)


async def test_pll_entries_the_pll_section_does_not_list_are_invalid_never_empty() -> None:
    result = await connector("pll", Tampered(_unlisted)).fetch(request())
    assert result.items[Category.MEDICATIONS] == ()
    assert result.status_for(Category.MEDICATIONS) is Status.INVALID
    reason = result.reason_for(Category.MEDICATIONS)
    assert reason is not None
    assert reason.code == "UNREADABLE_RECORDS"
    assert "3 medication statements" in reason.detail
