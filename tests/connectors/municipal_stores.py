"""Municipal stores for the connector tests: the sandbox's FHIR engine over chosen resources.

A test builds a store holding exactly the Patients and records it needs (identity collisions,
odd references, other patients' records) under any `StoreProfile`, reached over
`httpx.ASGITransport`, and sees every request the connector sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base import ConnectorSettings, FetchRequest, Requester
from connectors.model import Category
from connectors.municipal import MunicipalConnector, create
from sandbox import municipal
from sandbox.fhirsearch import PROFILES, StoreProfile

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
NIN = "14033841389"
OTHER = "09014412759"
BASE = "http://store.test/municipal"
ALL = frozenset(Category) - {Category.LAB_RESULTS, Category.DEMOGRAPHICS}

Resource = dict[str, Any]


def patient(rid: str, *identifiers: tuple[str, str], **extra: Any) -> Resource:
    return {"resourceType": "Patient", "id": rid,
            "identifier": [{"system": s, "value": v} for s, v in identifiers], **extra}


def condition(rid: str, subject: Any, code: str = "K77") -> Resource:
    return {"resourceType": "Condition", "id": rid, "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
            "code": {"coding": [{"system": "urn:oid:2.16.578.1.12.4.1.1.7170", "code": code}]},
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "subject": subject if isinstance(subject, dict) else {"reference": subject}}


def consent(rid: str, subject: str, scope: str = "treatment", **extra: Any) -> Resource:
    return {"resourceType": "Consent", "id": rid, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": scope}]},
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "304253006"}]}],
            "patient": {"reference": subject},
            "provision": {"type": "deny", "code": [
                {"coding": [{"system": "http://snomed.info/sct", "code": "304253006",
                             "display": "HLR-minus"}]}]}, **extra}


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """An ASGI transport that keeps every request (method, URL, headers, body)."""

    app: Any
    seen: list[httpx.Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inner = httpx.ASGITransport(app=self.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.seen.append(request)
        return await self.inner.handle_async_request(request)

    def searches(self) -> list[httpx.Request]:
        return [r for r in self.seen if not r.url.path.endswith("/metadata")]


def stores(holdings: Mapping[str, Sequence[Resource]] | Callable[[str], Sequence[Resource]],
           profile: StoreProfile | str = "full") -> tuple[MunicipalConnector, Recorder]:
    """A connector whose stores (one per key) hold `holdings`, served under `profile`."""
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    lookup = holdings if callable(holdings) else (lambda n: holdings[n])
    numbers = None if callable(holdings) else list(holdings)
    app = Starlette(routes=[Mount("/municipal", app=municipal.create_app(
        chosen, resources=lookup, numbers=numbers))])
    recorder = Recorder(app)
    http = httpx.AsyncClient(transport=recorder)
    urls = {n: f"{BASE}/{n}" for n in (numbers or ["0301", "4601", "5001"])}
    return create(ConnectorSettings("municipal", stores=urls), http), recorder


def fetch_request(**kwargs: Any) -> FetchRequest:
    values: dict[str, Any] = {
        "patient_nin": NIN, "categories": ALL, "municipalities": frozenset({"0301"}),
        "request_id": "req-42", "timeout": 2.0,
        "requester": Requester(hpr_number="9144901", role_code="LE", purpose_of_use="ETREAT"),
    } | kwargs
    return FetchRequest(**values)
