"""The municipal connector: fans one patient request out to the municipalities' own stores.

Sits under the fan-out: `fetch` posts one FHIR `batch` Bundle of searches to each allowed
store at once (the patient's identity number travels only in the body, never in a URL), maps
the answers with `connectors.municipal.mapping`, applies a store's local restriction
(sperring) and merges the stores into one `SourceResult`. One store failing gives PARTIAL;
every store failing re-raises the first store's `ConnectorError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from connectors import (
    FNR_SYSTEM,
    AccessBasis,
    Category,
    ConnectorConfigError,
    ConnectorError,
    ConnectorSettings,
    FetchRequest,
    Item,
    PrivacyState,
    SourceResult,
    Status,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    is_valid_nin,
    nin_system,
)
from connectors.fhir import bundle_resources, expect_resource, now, request_json
from connectors.municipal.mapping import (
    MAPPERS,
    SOURCE,
    Restriction,
    provenance_of,
    restriction_of,
    scope_of,
)

PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"
OPENS_RESTRICTION = frozenset({AccessBasis.FORHOYET_AKUTT, AccessBasis.FORHOYET_SAMTYKKE})

# (category, resource type, extra search parameters); the privacy search always goes along.
SEARCHES: tuple[tuple[Category, str, dict[str, str]], ...] = (
    (Category.TREATMENT_LIMITATIONS, "Consent", {"scope": "treatment"}),
    (Category.MUNICIPAL_SERVICES, "EpisodeOfCare", {}),
    (Category.CONDITIONS, "Condition", {}),
    (Category.MEDICATIONS, "MedicationAdministration", {}),
    (Category.DOCUMENTS, "DocumentReference", {}),
)
PRIVACY_SEARCH = ("Consent", {"scope": "patient-privacy"})


@dataclass
class StoreAnswer:
    """What one store gave: items per category, and what its restriction withheld."""

    items: dict[Category, list[Item]] = field(default_factory=dict)
    withheld: set[Category] = field(default_factory=set)
    restricted: bool = False
    opened: bool = False


def build_batch(nin: str, categories: frozenset[Category]) -> tuple[dict[str, Any], list[Category]]:
    """The batch Bundle of searches for `categories`, and the category of each entry in order.

    One more entry than categories goes last: the `patient-privacy` Consent search.
    """
    system = nin_system(nin) if is_valid_nin(nin) else FNR_SYSTEM
    wanted = [(c, t, p) for c, t, p in SEARCHES if c in categories]
    searches = [(t, p) for _, t, p in wanted] + [PRIVACY_SEARCH]
    entries = [
        {"request": {"method": "GET", "url": f"{rtype}?" + urlencode(
            {"patient.identifier": f"{system}|{nin}", **params}, safe=":|")}}
        for rtype, params in searches
    ]
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}, [c for c, _, _ in wanted]


def build_headers(request: FetchRequest) -> dict[str, str]:
    """Correlation and requester headers (role, purpose, access basis, so the store can
    enforce too); no identity number, no name."""
    headers = {
        "nhn-source-system": "kilde",
        "nhn-event-id": (request.request_id or uuid.uuid4().hex)[:128],
        "nhn-purpose-of-use": request.requester.purpose_of_use,
        "nhn-access-basis": request.access_basis.value,
    }
    if request.requester.role_code:
        role = {"system": PROFESSION, "code": request.requester.role_code}
        headers["nhn-user-role"] = quote(json.dumps(role, separators=(",", ":")), safe="")
    return headers


def read_store(
    sets: Sequence[Sequence[Mapping[str, Any]]],
    categories: Sequence[Category],
    *,
    municipality: str,
    access_basis: AccessBasis,
) -> StoreAnswer:
    """Map one store's searchsets (one per category, then the privacy search) to items."""
    fetched_at = now()
    restriction: Restriction | None = restriction_of(sets[-1])
    opened = restriction is not None and access_basis in OPENS_RESTRICTION
    answer = StoreAnswer(restricted=restriction is not None, opened=opened)
    for category, resources in zip(categories, sets, strict=False):
        kept = answer.items.setdefault(category, [])
        for resource in resources:
            rtype = resource.get("resourceType")
            if rtype not in MAPPERS or resource.get("status") == "entered-in-error":
                continue
            if rtype == "Consent" and scope_of(resource) != "treatment":
                continue
            if restriction is not None and not opened and restriction.covers(resource):
                answer.withheld.add(category)
                continue
            provenance = provenance_of(resource, municipality=municipality, fetched_at=fetched_at)
            kept.append(MAPPERS[rtype](resource, provenance))
    return answer


def _invalid_body(message: str) -> UpstreamInvalidError:
    return UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} {message}.")


def _entry_error(status: str) -> ConnectorError:
    code = int(status[:3]) if status[:3].isdigit() else 0
    if code >= 500:
        return UpstreamUnavailableError(SOURCE, f"Source {SOURCE!r} failed a search with HTTP "
                                                f"{code}.")
    return UpstreamRejectedError(SOURCE, f"Source {SOURCE!r} rejected a search with HTTP {code}.",
                                 code or None)


def searchsets(body: Any, count: int) -> list[list[dict[str, Any]]]:
    """The resources of each searchset in a `batch-response`, in request order.

    A wrong shape is `UpstreamInvalidError`; an entry whose `response.status` is not 2xx is
    `UpstreamRejectedError` (4xx) or `UpstreamUnavailableError` (5xx).
    """
    expect_resource(body, "Bundle", SOURCE)
    entries = body.get("entry", [])
    if body.get("type") != "batch-response" or not isinstance(entries, list):
        raise _invalid_body("did not send a batch-response Bundle")
    if len(entries) != count:
        raise _invalid_body(f"answered {len(entries)} of {count} searches")
    result = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise _invalid_body("sent a batch-response entry that is not an object")
        response = entry.get("response")
        status = str(response.get("status", "200") if isinstance(response, dict) else "200")
        if not status.startswith("2"):
            raise _entry_error(status)
        searchset = entry.get("resource")
        result.append(bundle_resources(searchset, SOURCE))
    return result


class MunicipalConnector:
    """Reads the municipal stores in `stores` (kommunenummer -> FHIR base URL).

    >>> connector = MunicipalConnector({"0301": "http://127.0.0.1:8000/municipal/0301"},
    ...                                httpx.AsyncClient())
    >>> sorted(connector.stores)
    ['0301']
    """

    name = SOURCE
    categories = frozenset(c for c, _, _ in SEARCHES)
    standard = "FHIR R4 (no-basis), batch search per municipal store"

    def __init__(self, stores: Mapping[str, str], http: httpx.AsyncClient) -> None:
        self.stores = {number: url.rstrip("/") for number, url in stores.items()}
        self._http = http

    async def fetch(self, request: FetchRequest) -> SourceResult:
        categories = request.categories & self.categories
        numbers = sorted(request.municipalities & self.stores.keys())
        if not categories or not numbers:
            return SourceResult.empty(self.name, request.categories & self.categories)
        batch, order = build_batch(request.patient_nin, categories)
        headers = build_headers(request)
        answers = await asyncio.gather(
            *(self._fetch_store(n, batch, order, headers, request) for n in numbers)
        )
        failed = [(n, a) for n, a in zip(numbers, answers, strict=True)
                  if isinstance(a, ConnectorError)]
        good = [(n, a) for n, a in zip(numbers, answers, strict=True)
                if isinstance(a, StoreAnswer)]
        if not good:
            raise failed[0][1]
        return _merge(good, failed, categories)

    async def _fetch_store(
        self,
        number: str,
        batch: dict[str, Any],
        order: list[Category],
        headers: dict[str, str],
        request: FetchRequest,
    ) -> StoreAnswer | ConnectorError:
        try:
            async with asyncio.timeout(request.timeout):
                body = await request_json(
                    self._http, self.name, "POST", self.stores[number],
                    timeout=request.timeout, headers=headers, json=batch,
                )
        except TimeoutError:
            return UpstreamTimeoutError(self.name, f"Source {self.name!r} did not answer in time.")
        except ConnectorError as exc:
            return exc
        try:
            sets = searchsets(body, len(order) + 1)
            return read_store(sets, order, municipality=number,
                              access_basis=request.access_basis)
        except ConnectorError as exc:
            return exc
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # A field of the wrong JSON type deep in a resource: garbage, not a bug of ours.
            error = UpstreamInvalidError(self.name, f"Source {self.name!r} sent a malformed "
                                                    f"resource ({type(exc).__name__}).")
            error.__cause__ = exc
            return error

    async def aclose(self) -> None:
        """Nothing to close: the shared HTTP client belongs to the gateway."""


def _merge(
    good: list[tuple[str, StoreAnswer]],
    failed: list[tuple[str, ConnectorError]],
    categories: frozenset[Category],
) -> SourceResult:
    items: dict[Category, list[Item]] = {c: [] for c in categories}
    withheld: set[Category] = set()
    for _, answer in good:
        for category, found in answer.items.items():
            items[category].extend(found)
        withheld |= answer.withheld
    restricted = [n for n, a in good if a.restricted]
    opened = [n for n, a in good if a.opened]
    # A local restriction is enforced here, record by record: the withheld categories say
    # RESTRICTED and the rest is delivered. Only an *opened* restriction goes to the policy as
    # privacy state, which lets it through solely for an emergency with a reason (and audits it).
    privacy = PrivacyState(
        restricted=bool(opened),
        restriction_opened=bool(opened),
        detail=_restriction_detail(restricted, opened) if restricted else None,
    )
    result = SourceResult.of(
        SOURCE,
        {c: tuple(found) for c, found in items.items()},
        privacy=privacy,
        category_status={c: Status.RESTRICTED for c in withheld},
        detail=privacy.detail,
    )
    if not failed:
        return result
    names = ", ".join(repr(n) for n, _ in failed)
    codes = ", ".join(sorted({e.code for _, e in failed}))
    detail = f"Municipal store {names} did not answer ({codes}); the other stores did."
    if privacy.detail:
        detail = f"{detail} {privacy.detail}"
    return dataclasses.replace(result, status=Status.PARTIAL, detail=detail)


def _restriction_detail(restricted: list[str], opened: list[str]) -> str:
    stores = ", ".join(repr(n) for n in restricted)
    if opened:
        return f"The patient's restriction in municipal store {stores} was opened."
    return f"The patient has restricted records in municipal store {stores}; they were withheld."


def create(settings: ConnectorSettings, http: httpx.AsyncClient) -> MunicipalConnector:
    """The entry point (`kilde.connectors`): validates `settings.stores` and builds the connector."""
    hint = "set KILDE_CONNECTORS__MUNICIPAL__STORES."
    if not settings.stores:
        raise ConnectorConfigError(f"Connector 'municipal' needs at least one store: {hint}")
    for number, url in settings.stores.items():
        if not (len(number) == 4 and number.isascii() and number.isdigit()):
            raise ConnectorConfigError(
                f"Connector 'municipal' store {number!r} is not a 4-digit municipality number: "
                f"{hint}")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            parsed = httpx.URL("")
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConnectorConfigError(
                f"Connector 'municipal' store {number!r} needs an absolute http(s) URL: {hint}")
    return MunicipalConnector(settings.stores, http)
