"""The `proevesvar` connector: fetches lab reports from Pasientens prøvesvar (PPS, formerly NILAR).

Sits under the fan-out: one `fetch` per request posts `DiagnosticReport/_search` with a
form-encoded body (the patient only in the `person-id` header, never in the URL or the body),
follows `_skip` pagination for a bounded number of pages within `request.timeout`, and hands
the collected entries to the pure `mapping`. HTTP failures are translated by
`connectors.fhir.request_json`; privacy outcomes come back in-band as a status, not an error.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from connectors import (
    AnyCategory,
    Budget,
    Category,
    ConnectorError,
    FetchRequest,
    Reason,
    SourceResult,
    Status,
    UpstreamInvalidError,
)
from connectors.credentials import Audience
from connectors.fhir import bundle_entries, names_another_patient, now, request_json
from connectors.proevesvar.mapping import SOURCE, map_search

logger = logging.getLogger(__name__)

SEARCH_PATH = "/DiagnosticReport/_search"
DEFAULT_PAGE_SIZE = 50
DEFAULT_MAX_PAGES = 5
UNREADABLE_RECORDS = "UNREADABLE_RECORDS"  # the reason code of records that could not be read


class ProevesvarConnector:
    """Lab results (`Category.LAB_RESULTS`) from Pasientens prøvesvar.

    >>> connector = ProevesvarConnector(http, "http://127.0.0.1:8000/proevesvar")
    >>> result = await connector.fetch(FetchRequest("14033841389",
    ...     frozenset({Category.LAB_RESULTS}), request_id="r-1"))  # doctest: +SKIP
    >>> result.items[Category.LAB_RESULTS][0].results[0].code.code  # doctest: +SKIP
    'NPU02319'
    """

    name = SOURCE
    categories = frozenset({Category.LAB_RESULTS})
    standard = "FHIR R4, HL7 Norway NILAR DiagnosticReport IG"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        audience: Audience | None = None,
    ) -> None:
        self.http = http
        self.audience = audience  # Pasientens prøvesvar's HelseID resource
        self.search_url = base_url.rstrip("/") + SEARCH_PATH
        self.page_size = page_size
        self.max_pages = max_pages

    async def fetch(self, request: FetchRequest) -> SourceResult:
        """Every lab report since `request.since` (newest first), or the privacy state that
        withheld them. Raises `ConnectorError` when the first page cannot be had."""
        if Category.LAB_RESULTS not in request.categories:
            return SourceResult.empty(self.name)
        entries, shortfall, total = await self._collect(request)
        for entry in entries:
            resource = entry.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") in (
                    "DiagnosticReport", "Observation") and names_another_patient(
                    resource.get("subject"), request.patient_nin):
                logger.warning("Source %r returned a %s of another patient; its answer is "
                               "discarded.", self.name, resource.get("resourceType"))
                raise UpstreamInvalidError(self.name, f"Source {self.name!r} sent records of "
                                                      "another patient.")
        fetched_at = now()
        mapped = map_search(entries, fetched_at)
        items: dict[AnyCategory, Sequence[Any]] = {Category.LAB_RESULTS: mapped.reports}
        if mapped.status is not None:
            return SourceResult(source=self.name, status=mapped.status, items=items,
                                fetched_at=fetched_at, privacy=mapped.privacy,
                                detail=mapped.privacy.detail)
        short = shortfall is None and total is not None and mapped.seen < total
        if short:
            shortfall = "The source said it holds more lab reports than it sent."
        if mapped.incomplete and shortfall is None:
            shortfall = "Some lab results referenced by a report were missing or unreadable."
        detail = " ".join(d for d in (mapped.privacy.detail, shortfall) if d) or None
        result = SourceResult.of(self.name, items, privacy=mapped.privacy, detail=detail,
                                 fetched_at=fetched_at)
        if (mapped.incomplete or short) and not mapped.reports:
            # records were there and none could be read: not EMPTY, not a partial answer
            logger.warning("Source %r sent lab reports none of which could be read.", self.name)
            reason = Reason(UNREADABLE_RECORDS, f"Source {self.name!r} sent lab reports Kilde "
                            "could not read; none is shown.")
            return replace(result, category_status={Category.LAB_RESULTS: Status.INVALID},
                           category_reason={Category.LAB_RESULTS: reason})
        return replace(result, status=Status.PARTIAL) if shortfall else result

    async def _collect(self, request: FetchRequest
                       ) -> tuple[list[dict[str, Any]], str | None, int | None]:
        """The entries of up to `max_pages` pages, why the list is short, if it is, and the
        number of reports the first page's `Bundle.total` says there are."""
        budget = Budget.of(request, self.name)
        headers = self._headers(request)
        entries: list[dict[str, Any]] = []
        total: int | None = None
        skip = 0
        for page in range(self.max_pages):
            try:
                bundle = await self._page(request, headers, skip, budget)
                page_entries = list(bundle_entries(bundle, self.name))
                if bundle.get("type") != "searchset":
                    raise UpstreamInvalidError(self.name, f"Source {self.name!r} answered with "
                                               "a Bundle that is not a searchset.")
            except ConnectorError as exc:
                if page == 0:
                    raise
                # Partial beats nothing: keep the pages we have, say that more exist.
                logger.warning("Source %r failed on page %d (%s); serving earlier pages.",
                               self.name, page + 1, exc.code)
                return entries, "Later pages of lab reports could not be fetched.", None
            if page == 0:
                count = bundle.get("total")
                total = count if isinstance(count, int) and not isinstance(count, bool) else None
            entries.extend(page_entries)
            next_url = _next_url(bundle)
            if next_url is None or not page_entries:
                return entries, None, total
            next_skip = _skip_of(next_url)
            if next_skip is None or next_skip <= skip:  # following it could loop forever
                return (entries, "The source's link to further lab reports could not be "
                        "followed.", None)
            skip = next_skip
        return (entries, f"Only the first {self.max_pages} pages of lab reports were fetched.",
                None)

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client is shared and owned by the gateway."""

    def _headers(self, request: FetchRequest) -> dict[str, str]:
        headers = {
            "person-id": request.patient_nin,
            "access-basis": request.access_basis.value,  # PPS uses our vocabulary as is
            "correlation-id": request.request_id or uuid.uuid4().hex,
        }
        if request.requester.role_code:
            headers["requester-hpr-role"] = request.requester.role_code
        return headers

    def _form(self, request: FetchRequest, skip: int) -> dict[str, str]:
        form = {
            "_include": "DiagnosticReport:result",
            "_include:iterate": "Observation:has-member",
            "_count": str(self.page_size),
        }
        if request.since is not None:
            # PPS documents gt/lt/eq only; gt the day before makes `since` inclusive.
            form["date"] = f"gt{(request.since - timedelta(days=1)).isoformat()}"
        if skip:
            form["_skip"] = str(skip)
        return form

    async def _page(
        self, request: FetchRequest, headers: dict[str, str], skip: int, budget: Budget
    ) -> Any:
        budget.check()
        # httpx's timeout is per read; the budget bounds the whole page.
        async with budget.enforce():
            return await request_json(
                self.http, self.name, "POST", self.search_url, timeout=budget.left(),
                headers=headers, data=self._form(request, skip),
                auth=request.credentials.to(self.audience),
            )


def _next_url(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _skip_of(url: str) -> int | None:
    values = parse_qs(urlsplit(url).query).get("_skip", [])
    return int(values[0]) if values and values[0].isdigit() else None
