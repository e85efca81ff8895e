"""The Persontjenesten connector: one person from the population registry, as `Demographics`.

Sits under the fan-out. NHN's Persontjenesten (the health sector's copy of Folkeregisteret)
answers `POST /api/legal-basis/person/get-by-nin` with the identity number in a form body
(never in the URL, which is logged), the information parts asked for in the query, and
`api-version=3`. 200 is the Person document, 404 "no such person" (the registry does not know
the number: said, not guessed), anything else a failure. Kilde calls it with its own HelseID
token (client credentials, scope `read-with-legal-basis`): the registry is asked for the
routing of every request (the home municipality, which store may hold records), not only
when a clinician selects the demographics, and never acts for the caller.
"""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from connectors import (
    Budget,
    Category,
    ConnectorConfigError,
    ConnectorSettings,
    FetchRequest,
    SourceResult,
    Status,
    UpstreamInvalidError,
)
from connectors.credentials import Audience
from connectors.fhir import request_json_response
from connectors.persontjenesten import mapping

API_VERSION = "3"
PATH = "api/legal-basis/person/get-by-nin"
NOT_FOUND = "The population registry has no person with this identity number."
# How Python fails on a Person document of the wrong shape (the boundary catches the rest).
UNREADABLE = (TypeError, AttributeError, KeyError, ValueError)


class PersontjenestenConnector:
    """NHN Persontjenesten's Person API (v3): name, birth, gender, status, death, home.

    >>> settings = ConnectorSettings("persontjenesten", base_url="http://127.0.0.1:8000/persontjenesten")
    >>> sorted(c.value for c in PersontjenestenConnector(settings, httpx.AsyncClient()).categories)
    ['demographics']
    """

    name = mapping.SOURCE
    categories = frozenset({Category.DEMOGRAPHICS})
    standard = "NHN Persontjenesten Person API v3 (JSON, Folkeregisteret)"

    def __init__(self, settings: ConnectorSettings, http: httpx.AsyncClient) -> None:
        if not settings.base_url:
            raise ConnectorConfigError(
                "Connector 'persontjenesten' needs a base URL: set "
                "KILDE_CONNECTORS__PERSONTJENESTEN__BASE_URL."
            )
        self.base_url = settings.base_url.rstrip("/")
        query = urlencode([*(("informationParts", p) for p in mapping.INFORMATION_PARTS),
                           ("api-version", API_VERSION)])
        self._url = f"{self.base_url}/{PATH}?{query}"
        self._http = http
        self._audience = Audience.of(settings)  # Persontjenesten's HelseID resource

    async def fetch(self, request: FetchRequest) -> SourceResult:
        if Category.DEMOGRAPHICS not in request.categories:
            return SourceResult.empty(self.name, request.categories & self.categories)
        headers = {"accept": "application/json"}
        if request.request_id:
            headers["x-correlation-id"] = request.request_id[:128]
        fetched_at = mapping.now()
        async with Budget.of(request, self.name).enforce():
            answer = await request_json_response(
                self._http, self.name, "POST", self._url, timeout=request.timeout,
                headers=headers, data={"nin": request.patient_nin}, accept_status=(404,),
                auth=request.credentials.to(self._audience, machine=True),
            )
        if answer.status_code == 404:
            return SourceResult(source=self.name, status=Status.EMPTY,
                                items={Category.DEMOGRAPHICS: ()}, fetched_at=fetched_at,
                                detail=NOT_FOUND)
        try:
            item = mapping.demographics(answer.body, fetched_at)
        except UNREADABLE as exc:
            raise UpstreamInvalidError(
                self.name, f"Source {self.name!r} sent a Person document that cannot be read."
            ) from exc
        return SourceResult.of(self.name, {Category.DEMOGRAPHICS: (item,)}, fetched_at=fetched_at)

    async def aclose(self) -> None:
        """Nothing to close: the shared HTTP client belongs to the gateway."""
