"""The contract kit fails a connector for each thing it gets wrong (and passes a good one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors import (
    Category,
    Coding,
    Condition,
    ConnectorError,
    ConnectorSettings,
    FetchRequest,
    Provenance,
    SourceResult,
    UpstreamInvalidError,
)
from connectors.credentials import Audience
from connectors.fhir import bundle_resources, coding_of, now, request_json
from connectors.testing import ConnectorContract, checks
from connectors.testing.credentials import check_upstream_credentials

NIN = "14033841389"


def fake_upstream() -> Starlette:
    """A FHIR server with one patient's conditions behind `POST /Condition/_search`."""

    async def search(request: Request) -> JSONResponse:
        form = parse_qs((await request.body()).decode())
        entries = [] if form.get("patient") != [NIN] else [
            {"resource": {"resourceType": "Condition", "id": "c-1",
                          "code": {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.7170",
                                               "code": "K86", "display": "Hypertensjon"}]}}}]
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "entry": entries})

    return Starlette(routes=[Route("/Condition/_search", search, methods=["POST"])])


class Good:
    """A minimal connector that keeps the contract: the positive control."""

    name = "good"
    categories = frozenset({Category.CONDITIONS})

    def __init__(self, settings: ConnectorSettings, http: httpx.AsyncClient) -> None:
        self.url = f"{settings.base_url}/Condition/_search"
        self.http = http
        self.audience = Audience.of(settings)

    async def fetch(self, request: FetchRequest) -> SourceResult:
        if Category.CONDITIONS not in request.categories:
            return SourceResult.empty(self.name)
        body = await self.call(request)
        return SourceResult.of(self.name, {Category.CONDITIONS: self.read(body)})

    async def call(self, request: FetchRequest, timeout: float | None = None) -> Any:
        return await request_json(self.http, self.name, "POST", self.url,
                                  timeout=request.timeout if timeout is None else timeout,
                                  data={"patient": request.patient_nin},
                                  auth=request.credentials.to(self.audience))

    def read(self, body: Any) -> list[Condition]:
        fetched = now()
        return [Condition(id=r["id"], code=coding_of(r.get("code")) or Coding("", ""),
                          clinical_status="active", provenance=Provenance(self.name, r["id"], fetched))
                for r in bundle_resources(body, self.name, "Condition")]

    async def aclose(self) -> None:
        pass


def setup_for(cls: type, timeout: float = 0.2) -> checks.ContractSetup:
    return ConnectorContractFor(cls, timeout).contract_setup()


class ConnectorContractFor(ConnectorContract):
    name, patient, upstream = "good", NIN, staticmethod(fake_upstream)

    def __init__(self, cls: type = Good, timeout: float = 0.2) -> None:
        self.plugin = cls
        self.timeout = timeout


class TestGoodConnectorKeepsTheContract(ConnectorContract):
    name, plugin, patient, upstream = "good", Good, NIN, staticmethod(fake_upstream)
    timeout = 0.2


class LeaksInErrors(Good):
    async def fetch(self, request: FetchRequest) -> SourceResult:
        try:
            return await super().fetch(request)
        except ConnectorError as exc:
            raise type(exc)(self.name, f"{exc.message} Patient {request.patient_nin}.") from exc


class LogsTheNin(Good):
    async def fetch(self, request: FetchRequest) -> SourceResult:
        logging.getLogger("good").debug("fetching %s", request.patient_nin)
        return await super().fetch(request)


class NinInUrl(Good):
    async def call(self, request: FetchRequest, timeout: float | None = None) -> Any:
        return await request_json(self.http, self.name, "POST",
                                  f"{self.url}?patient={request.patient_nin}",
                                  timeout=request.timeout, data={"patient": request.patient_nin})


class IgnoresTimeout(Good):
    async def call(self, request: FetchRequest, timeout: float | None = None) -> Any:
        return await super().call(request, timeout=request.timeout * 8)


class LetsKeyErrorEscape(Good):
    def read(self, body: Any) -> list[Condition]:
        return [Condition(id=e["resource"]["id"], code=Coding("", ""), clinical_status="active",
                          provenance=Provenance(self.name, "x", now())) for e in body["entry"]]


class WrongProvenance(Good):
    def read(self, body: Any) -> list[Condition]:
        return [Condition(id=c.id, code=c.code, clinical_status="active",
                          provenance=Provenance("someone-else", c.id, now()))
                for c in super().read(body)]


class AnswersUnaskedCategories(Good):
    async def fetch(self, request: FetchRequest) -> SourceResult:
        result = await super().fetch(request)
        return SourceResult.of(self.name, {**result.items, Category.DOCUMENTS: ()})


class FetchesWhenNothingAsked(Good):
    async def fetch(self, request: FetchRequest) -> SourceResult:
        await self.call(request)
        return await super().fetch(request)


class SwallowsCancellation(Good):
    async def fetch(self, request: FetchRequest) -> SourceResult:
        try:
            return await super().fetch(request)
        except asyncio.CancelledError:
            return SourceResult.empty(self.name)


class LeavesATaskBehind(Good):
    async def fetch(self, request: FetchRequest) -> SourceResult:
        self.background = asyncio.ensure_future(self.call(request))  # never awaited or cancelled
        return await super().fetch(request)


class ClosesTheSharedClient(Good):
    async def aclose(self) -> None:
        await self.http.aclose()


class SendsNoCredentials(Good):
    async def call(self, request: FetchRequest, timeout: float | None = None) -> Any:
        return await request_json(self.http, self.name, "POST", self.url,
                                  timeout=request.timeout, data={"patient": request.patient_nin})


class ForwardsTheCallersToken(Good):
    def __init__(self, settings: ConnectorSettings, http: httpx.AsyncClient) -> None:
        super().__init__(settings, http)
        self.http = httpx.AsyncClient(transport=_Forwarding(http))


class _Forwarding(httpx.AsyncBaseTransport):
    """Adds the caller's token (as a careless connector would) beside the proper ones."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from connectors.testing.credentials import CALLER_TOKEN

        request.headers["x-forwarded-authorization"] = f"Bearer {CALLER_TOKEN}"
        response = await self.http.send(request)
        await response.aread()
        return httpx.Response(response.status_code, headers=response.headers,
                              content=response.content)


class RejectsUnknownFields(Good):
    def read(self, body: Any) -> list[Condition]:
        if any(set(r) - {"resourceType", "id", "code"} for r in bundle_resources(body, self.name)):
            raise UpstreamInvalidError(self.name, "Source 'good' sent a field it does not know.")
        return super().read(body)


Check = Callable[..., Coroutine[Any, Any, Any]]


@pytest.mark.parametrize(("connector", "check", "args", "complaint"), [
    (LeaksInErrors, checks.check_no_identity_number, ("error",), "identity number or a URL"),
    (LogsTheNin, checks.check_no_identity_number, ("none",), "log line of logger 'good'"),
    (NinInUrl, checks.check_no_identity_number, ("none",), "log line of logger 'httpx'"),
    (IgnoresTimeout, checks.check_error, ("hang",), "to fail with a 0.2 s timeout"),
    (LetsKeyErrorEscape, checks.check_error, ("wrong_shape",), "let a TypeError escape"),
    (WrongProvenance, checks.check_items_and_provenance, (), "does not name this source"),
    (AnswersUnaskedCategories, checks.check_requested_categories_only, (),
     "categories it was not asked for"),
    (FetchesWhenNothingAsked, checks.check_requested_categories_only, (),
     "no category it serves was asked for"),
    (SwallowsCancellation, checks.check_cancellation, (), "swallowed the cancellation"),
    (LeavesATaskBehind, checks.check_cancellation, (), "left 1 task"),
    (ClosesTheSharedClient, checks.check_aclose, (), "closed the shared HTTP client"),
    (RejectsUnknownFields, checks.check_unknown_fields, (), "ignore unknown fields"),
    (SendsNoCredentials, check_upstream_credentials, (), "does not send the upstream's HelseID"),
    (ForwardsTheCallersToken, check_upstream_credentials, (), "forwards the caller's token"),
])
def test_contract_kit_fails_a_connector_that_breaks_the_contract(
    connector: type, check: Check, args: tuple[str, ...], complaint: str
) -> None:
    asyncio.run(check(setup_for(Good), *args))  # the same check passes the good connector
    with pytest.raises(AssertionError, match=complaint):
        asyncio.run(check(setup_for(connector), *args))
