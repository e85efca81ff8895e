"""The SFM `$getMedication` connector both medication sources are built on.

Sits under the fan-out: `fetch()` POSTs one Parameters body (patient and consent in the body,
never in the URL) to `<base_url>/Patient/$getMedication`, reads the document Bundle purely
(`connectors.medication.sfm`), mapping only the subclass's `part` (each connector maps only
the statements it serves), and lets the subclass pick its part: `PllConnector` the "PLL info"
section, `EreseptConnector` the prescriptions.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from datetime import datetime
from urllib.parse import quote

import httpx

from connectors import (
    Category,
    ConnectorConfigError,
    ConnectorSettings,
    FetchRequest,
    Item,
    Reason,
    SourceResult,
    Status,
)
from connectors.credentials import Audience
from connectors.fhir import now, request_json
from connectors.medication.sfm import MedicationDocument, Part, build_parameters, read_response

logger = logging.getLogger(__name__)
OPERATION = "/Patient/$getMedication"
UNREADABLE_RECORDS = "UNREADABLE_RECORDS"  # the reason code of records that could not be read
PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"  # kodeverk 9060, kategori helsepersonell


class SfmConnector:
    """A medication source read through the SFM Basis API; subclasses set `name`, `part` (the
    statements `read_response` maps for them) and `select`.

    >>> connector = PllConnector(ConnectorSettings("pll", base_url="http://sfm"), http)  # doctest: +SKIP
    >>> result = await connector.fetch(FetchRequest(nin, frozenset({Category.MEDICATIONS})))  # doctest: +SKIP
    """

    name = "sfm"
    categories = frozenset({Category.MEDICATIONS})
    standard = "FHIR R4, SFM Basis API $getMedication"
    part: Part | None = None

    def __init__(self, settings: ConnectorSettings, http: httpx.AsyncClient) -> None:
        if not settings.base_url:
            variable = f"KILDE_CONNECTORS__{self.name.upper()}__BASE_URL"
            raise ConnectorConfigError(f"Connector {self.name!r} needs a base URL ({variable}).")
        self.url = settings.base_url.rstrip("/") + OPERATION
        self.settings = settings
        self.http = http
        self.audience = Audience.of(settings)  # PLL's or e-resept's HelseID resource

    async def fetch(self, request: FetchRequest) -> SourceResult:
        if Category.MEDICATIONS not in request.categories:
            return SourceResult.empty(self.name, request.categories)
        body = await request_json(
            self.http, self.name, "POST", self.url, timeout=request.timeout,
            headers=request_headers(request),
            json=build_parameters(request.patient_nin, request.access_basis),
            auth=request.credentials.to(self.audience),
        )
        fetched_at = now()
        document = read_response(body, self.name, fetched_at, nin=request.patient_nin,
                                 part=self.part)
        return self.select(document, fetched_at)

    def select(self, document: MedicationDocument, fetched_at: datetime) -> SourceResult:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client is shared and owned by the gateway."""


def with_unreadable(result: SourceResult, items: tuple[Item, ...], lost: int) -> SourceResult:
    """`result` with MEDICATIONS PARTIAL when `lost` statements could not be read next to
    `items`, INVALID when nothing could (never a silent EMPTY)."""
    if not lost:
        return result
    logger.warning("Source %s sent %d medication statement(s) Kilde could not read.",
                   result.source, lost)
    noun = "statement" if lost == 1 else "statements"
    reason = Reason(UNREADABLE_RECORDS, f"Source {result.source!r} sent {lost} medication "
                    f"{noun} Kilde could not place; not shown.")
    status = Status.PARTIAL if items else Status.INVALID
    return dataclasses.replace(result, category_status={Category.MEDICATIONS: status},
                               category_reason={Category.MEDICATIONS: reason})


def request_headers(request: FetchRequest) -> dict[str, str]:
    """Correlation and the requester's role (`nhn-user-role`, as Kjernejournal takes it), so
    SFM can enforce too; the access basis travels in the Parameters body."""
    headers = {"x-request-id": request.request_id} if request.request_id else {}
    if request.requester.role_code:
        headers["nhn-user-role"] = _user_role(request.requester.role_code)
    return headers


@functools.lru_cache(maxsize=64)
def _user_role(role_code: str) -> str:
    """The `nhn-user-role` header for a role (kodeverk 9060: a handful of codes, each encoded
    once, not once per request)."""
    role = {"system": PROFESSION, "code": role_code}
    return quote(json.dumps(role, separators=(",", ":")), safe="")
