"""Running a store's searches: one batch where the store declares it, parallel reads where not,
and every `Bundle.link[next]` followed within the request's budget.

Sits under `connectors.municipal.connector`. Every request carries `Prefer: handling=strict`
(a store must refuse what it cannot search, not answer it unfiltered). The identity number
travels only in POST bodies (a form `_search`, a batch); searches by the store's logical id
(`patient=Patient/{id}`) may be GETs. A next link is followed only on the store's own base,
never twice, at most `MAX_PAGES` times, and only while the budget lasts; a search cut short
is `complete = False` (the connector reports PARTIAL). A chained search's next link would put
the identity number in a URL: the caller searches that type again by reference instead.

An answer is a search's only when it is a `searchset` Bundle without an error OperationOutcome
in it; anything else (a bare OperationOutcome with 200, a `collection`, a Bundle without a
type) is `UpstreamInvalidError` *for that search*: `batch` and `by_reference` return each
search's `Found` or its `ConnectorError`, so one failed search fails only what it feeds.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx

from connectors import (
    Budget,
    ConnectorError,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from connectors.credentials import UpstreamAuth
from connectors.fhir import bundle_entries, expect_resource, request_json

SOURCE = "municipal"
STRICT = {"prefer": "handling=strict"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
PAGE_SIZE = 100
MAX_PAGES = 20

Entry = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Search:
    """One search of a resource type, without its patient parameter."""

    resource_type: str
    params: tuple[tuple[str, str], ...] = ()


@dataclass
class Found:
    """The entries of one search (every page), and whether all pages arrived."""

    entries: list[Entry] = field(default_factory=list)
    complete: bool = True
    next_url: str | None = None
    self_url: str | None = None
    total: int | None = None  # the store's count of matches, when it says


def store_budget(budget: Budget) -> Budget:
    """A store's share of the source's budget: the last tenth is kept so that a page cut off
    by it still leaves time to answer with what arrived (PARTIAL, not TIMEOUT)."""
    return budget.cut(budget.left() * 0.1)


def _invalid(message: str) -> UpstreamInvalidError:
    return UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} {message}.")


def _entry_error(status: str) -> ConnectorError:
    code = int(status[:3]) if status[:3].isdigit() else 0
    if code >= 500:
        return UpstreamUnavailableError(SOURCE, f"Source {SOURCE!r} failed a search with HTTP "
                                                f"{code}.")
    return UpstreamRejectedError(SOURCE, f"Source {SOURCE!r} rejected a search with HTTP {code}.",
                                 code or None)


def searchset(body: Any) -> Found:
    """A searchset Bundle's entries and its next link (shape checked)."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        raise _invalid("answered a search with an OperationOutcome instead of a Bundle")
    expect_resource(body, "Bundle", SOURCE)
    if body.get("type") != "searchset":
        raise _invalid("answered a search with a Bundle that is not a searchset")
    entries = list(bundle_entries(body, SOURCE))  # every entry an object with a resource
    for entry in entries:
        resource = entry["resource"]
        if resource.get("resourceType") == "OperationOutcome" and _is_error(resource):
            raise _invalid("answered a search with an error OperationOutcome")
    links = body.get("link") or []
    urls = {link.get("relation"): link.get("url") for link in links
            if isinstance(link, dict) and isinstance(link.get("url"), str)}
    total = body.get("total")
    return Found(entries=entries, next_url=urls.get("next"), self_url=urls.get("self"),
                 total=total if isinstance(total, int) and not isinstance(total, bool) else None)


def _is_error(resource: dict[str, Any]) -> bool:
    """An OperationOutcome that reports an error (a warning or information is no failure)."""
    if resource.get("resourceType") != "OperationOutcome":
        return False
    issues = resource.get("issue")
    return not isinstance(issues, list) or any(
        not isinstance(i, dict) or i.get("severity") not in ("warning", "information")
        for i in issues)


def batch_sets(body: Any, count: int) -> list[Found | ConnectorError]:
    """The searchsets of a `batch-response`, in request order; an entry that failed (its
    `response.status`, or a body that is no searchset) is that search's `ConnectorError`."""
    expect_resource(body, "Bundle", SOURCE)
    entries = body.get("entry", [])
    if body.get("type") != "batch-response" or not isinstance(entries, list):
        raise _invalid("did not send a batch-response Bundle")
    if len(entries) != count:
        raise _invalid(f"answered {len(entries)} of {count} searches")
    result: list[Found | ConnectorError] = []
    for entry in entries:
        if not isinstance(entry, dict):
            result.append(_invalid("sent a batch-response entry that is not an object"))
            continue
        response = entry.get("response")
        status = response.get("status", "200") if isinstance(response, dict) else "200"
        status = status if isinstance(status, str) else ""
        if not status.startswith("2"):
            result.append(_entry_error(status))
            continue
        try:
            result.append(searchset(entry.get("resource")))
        except UpstreamInvalidError as exc:
            result.append(exc)
    return result


def query(search: Search, patient: tuple[str, str]) -> str:
    """`urlencode([patient, *search.params, ("_count", PAGE_SIZE)])`, the search's own part
    encoded once per search (a fixed set; the patient's part, which names the person, is never
    kept)."""
    name, value = patient
    return f"{_quote(str(name))}={_quote(str(value))}&{_rest(search)}"


_SAFE = ":|/,"
_AS_IS = re.compile(r"[A-Za-z0-9_.~:|/,-]*")  # what quote_plus leaves alone (with _SAFE)


def _quote(text: str) -> str:
    return text if _AS_IS.fullmatch(text) else quote_plus(text, _SAFE)


@functools.lru_cache(maxsize=64)
def _rest(search: Search) -> str:
    return urlencode([*search.params, ("_count", str(PAGE_SIZE))], safe=_SAFE)


def batch_bundle(requests: Sequence[str]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch",
            "entry": [{"request": {"method": "GET", "url": url}} for url in requests]}


class StoreClient:
    """One store's base URL, headers and budget, for the connector's searches of one request."""

    def __init__(self, http: httpx.AsyncClient, base: str, headers: Mapping[str, str],
                 budget: Budget, auth: UpstreamAuth | None = None) -> None:
        self.http = http
        self.base = base
        self.headers = {**headers, **STRICT}
        self.budget = budget
        self.auth = auth  # the store's HelseID token + DPoP proof, on every request

    def _timeout(self) -> float:
        self.budget.check()
        return self.budget.left()

    async def post_search(self, resource_type: str, form: Sequence[tuple[str, str]]) -> Found:
        """`POST [base]/{Type}/_search` with a form body (the identity number stays out of URLs)."""
        body = await request_json(
            self.http, SOURCE, "POST", f"{self.base}/{resource_type}/_search",
            timeout=self._timeout(), headers={**self.headers, **FORM},
            data=dict(form), auth=self.auth)
        return searchset(body)

    async def batch(self, requests: Sequence[str]) -> list[Found | ConnectorError]:
        body = await request_json(self.http, SOURCE, "POST", self.base, timeout=self._timeout(),
                                  headers=self.headers, json=batch_bundle(requests),
                                  auth=self.auth)
        return batch_sets(body, len(requests))

    async def get(self, url: str) -> Found:
        body = await request_json(self.http, SOURCE, "GET", url, timeout=self._timeout(),
                                  headers=self.headers, auth=self.auth)
        return searchset(body)

    async def by_reference(self, patient_id: str, searches: Sequence[Search], *,
                           batch: bool) -> list[Found | ConnectorError]:
        """Each search for `Patient/{patient_id}`, in one batch or as parallel reads, with
        every page; a search that failed is its `ConnectorError` (the others still count)."""
        patient = ("patient", f"Patient/{patient_id}")
        urls = [f"{s.resource_type}?{query(s, patient)}" for s in searches]
        if batch and len(urls) > 1:
            found = await self.batch(urls)
        else:
            found = list(await asyncio.gather(*(self._search(f"{self.base}/{u}")
                                                for u in urls)))
        await asyncio.gather(*(self.follow(f) for f in found if isinstance(f, Found)))
        return found

    async def _search(self, url: str) -> Found | ConnectorError:
        try:
            return await self.get(url)
        except ConnectorError as exc:  # a timeout too: it fails this search's categories
            return exc

    async def follow(self, found: Found) -> None:
        """Fetch the rest of `found`'s pages in place; a cut-short search is incomplete."""
        seen = {found.self_url} if found.self_url else set()
        pages = 1
        while found.next_url is not None:
            url, found.next_url = found.next_url, None
            if url in seen or pages >= MAX_PAGES or not self._own(url) or self.budget.spent():
                found.complete = False
                return
            seen.add(url)
            try:
                async with self.budget.enforce():
                    page = await self.get(url)
            except ConnectorError:  # a timeout (the budget's) included
                found.complete = False  # the pages that arrived count; the search is PARTIAL
                return
            if page.self_url:
                seen.add(page.self_url)
            found.entries.extend(page.entries)
            found.next_url = page.next_url
            pages += 1

    def _own(self, url: str) -> bool:
        """A next link on this store's own base (scheme, host, port and path prefix)."""
        try:
            link, base = httpx.URL(url), httpx.URL(self.base)
        except httpx.InvalidURL:
            return False
        return (link.scheme, link.host, link.port) == (base.scheme, base.host, base.port) and (
            link.path.rstrip("/") + "/").startswith(base.path.rstrip("/") + "/")
