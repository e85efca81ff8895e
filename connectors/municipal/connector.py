"""The municipal connector: fans one patient request out to the municipalities' own stores.

Sits under the fan-out. For each allowed store, within the request's budget: read what the
store declares (`capabilities`, kept between requests), resolve the person to the store's one
`Patient` (`identity`), search each category by that Patient's logical id (`searches`: one
batch, or parallel reads, every page), check that every returned record is that Patient's,
then map (`mapping`), apply the store's local restriction (sperring) and merge the stores into
one `SourceResult`. A store that declares batch and chained `patient.identifier` gets it all in
one batch whose first entry is the Patient search. A store that returns another person's
record is INVALID for the request and none of its items is shown; one store failing gives
PARTIAL; every store failing re-raises the first store's `ConnectorError`. Within a store, a
search that failed or records that could not be read make only their categories PARTIAL (or
INVALID/UNAVAILABLE/TIMEOUT when nothing of the category came), each with a `Reason`; a failed
privacy search fails the store (`reading`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import quote

import httpx

from connectors import (
    Budget,
    Category,
    ConnectorConfigError,
    ConnectorError,
    ConnectorSettings,
    FetchRequest,
    Item,
    PrivacyState,
    Reason,
    SourceResult,
    Status,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
    WriteRequest,
    WriteResult,
)
from connectors.credentials import Audience
from connectors.fhir import request_json_response
from connectors.municipal.capabilities import CapabilityCache, StoreCapabilities
from connectors.municipal.identity import StorePatient, identifier_query, resolve_patient
from connectors.municipal.mapping import SOURCE
from connectors.municipal.reading import (
    SEARCHES,
    Answered,
    Planned,
    Shortfall,
    StoreAnswer,
    check_patient,
    plan_searches,
    read_store,
)
from connectors.municipal.searches import Found, Search, StoreClient, query, store_budget
from connectors.municipal.writing import (
    if_none_exist,
    read_written,
    rejected,
    resource_for,
    resource_type_of,
)

logger = logging.getLogger(__name__)
PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"

def build_headers(request: FetchRequest | WriteRequest) -> dict[str, str]:
    """Correlation and requester headers (role, purpose, access basis, so the store can
    enforce too); no identity number, no name."""
    headers = {
        "nhn-source-system": "kilde",
        "nhn-event-id": (request.request_id or uuid.uuid4().hex)[:128],
        "nhn-purpose-of-use": request.requester.purpose_of_use,
    }
    if isinstance(request, FetchRequest):
        headers["nhn-access-basis"] = request.access_basis.value
    if request.requester.role_code:
        role = {"system": PROFESSION, "code": request.requester.role_code}
        headers["nhn-user-role"] = quote(json.dumps(role, separators=(",", ":")), safe="")
    return headers


class MunicipalConnector:
    """Reads the municipal stores in `stores` (kommunenummer -> FHIR base URL).

    >>> connector = MunicipalConnector({"0301": "http://127.0.0.1:8000/municipal/0301"},
    ...                                httpx.AsyncClient())
    >>> sorted(connector.stores)
    ['0301']
    """

    name = SOURCE
    categories = frozenset(c for c, _ in SEARCHES)
    # what `write` records (connectors.writing): treatment limitations, notes, administrations
    writes = frozenset({Category.TREATMENT_LIMITATIONS, Category.DOCUMENTS, Category.MEDICATIONS})
    standard = "FHIR R4 (no-basis): Patient first, then search by reference, per municipal store"

    def __init__(self, stores: Mapping[str, str], http: httpx.AsyncClient,
                 audience: Audience | None = None) -> None:
        self.stores = {number: url.rstrip("/") for number, url in stores.items()}
        self._http = http
        self._audience = audience  # the stores' HelseID token, when one is configured
        self._capabilities = CapabilityCache(http, SOURCE)

    async def fetch(self, request: FetchRequest) -> SourceResult:
        categories = frozenset(c for c in request.categories & self.categories
                               if isinstance(c, Category))
        numbers = sorted(request.municipalities & self.stores.keys())
        if not categories or not numbers:
            return SourceResult.empty(self.name, request.categories & self.categories)
        headers = build_headers(request)
        answers: list[StoreAnswer | ConnectorError]
        if len(numbers) == 1:  # the usual request: one store, asked in this task (no gather)
            answers = [await self._fetch_store(numbers[0], categories, headers, request)]
        else:
            answers = await asyncio.gather(
                *(self._fetch_store(n, categories, headers, request) for n in numbers)
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
        categories: frozenset[Category],
        headers: dict[str, str],
        request: FetchRequest,
    ) -> StoreAnswer | ConnectorError:
        base = self.stores[number]
        source_budget = Budget.of(request, self.name)
        try:
            async with source_budget.enforce():
                budget = store_budget(source_budget)
                # the CapabilityStatement is kept for every caller: read as Kilde, not for one
                capabilities = await self._capabilities.get(
                    base, timeout=source_budget.left() / 2, headers=headers,
                    auth=request.credentials.to(self._audience, machine=True))
                if capabilities.unusable:
                    logger.warning("Municipal store %s answered its CapabilityStatement with "
                                   "something Kilde cannot read.", number)
                    return UpstreamInvalidError(self.name, f"Source {self.name!r} has a store "
                                                "whose CapabilityStatement cannot be read.")
                client = StoreClient(self._http, base, headers, budget,
                                     auth=request.credentials.to(self._audience))
                plan, refused = plan_searches(categories, capabilities)
                patient, found = await self._search(client, capabilities, plan,
                                                    request.patient_nin)
        except ConnectorError as exc:  # a timeout included
            return exc
        if patient is None:
            return StoreAnswer(known=False)
        try:
            for (search, _), answer in zip(plan, found, strict=True):
                if isinstance(answer, Found) and not check_patient(answer, search, patient,
                                                                   request.patient_nin):
                    # The store ignored or misapplied the patient filter: nothing it sent is
                    # trusted. Logged by store and type only (no identifier, no ids).
                    logger.warning("Municipal store %s returned a %s of another patient; its "
                                   "answer is discarded.", number, search.resource_type)
                    return UpstreamInvalidError(self.name, f"Source {self.name!r} sent records "
                                                           "of another patient.")
            results: list[Answered] = [(s, c, f) for (s, c), f in zip(plan, found, strict=True)]
            return read_store([*results, *refused], municipality=number,
                              access_basis=request.access_basis,
                              requester_hpr=request.requester.hpr_number, linked=patient.linked)
        except ConnectorError as exc:
            return exc
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # A field of the wrong JSON type deep in a resource: garbage, not a bug of ours.
            error = UpstreamInvalidError(self.name, f"Source {self.name!r} sent a malformed "
                                                    f"resource ({type(exc).__name__}).")
            error.__cause__ = exc
            return error

    async def _search(
        self,
        client: StoreClient,
        capabilities: StoreCapabilities,
        plan: Sequence[Planned],
        nin: str,
    ) -> tuple[StorePatient | None, list[Found | ConnectorError]]:
        """The store's Patient for `nin` and each planned search's answer (every page), or the
        search's own error. A failed Patient search fails the store."""
        if not capabilities.supports("Patient", "identifier"):
            raise UpstreamRejectedError(self.name, f"Source {self.name!r} has a store that does "
                                        "not offer the Patient search by identifier.")
        searches = [s for s, _ in plan]
        identity = identifier_query(nin)
        if capabilities.batch and all(capabilities.chains(s.resource_type) for s in searches):
            # One round trip: the Patient search first, then each type by chained identifier.
            urls = [f"Patient?{query(Search('Patient'), ('identifier', identity))}",
                    *(f"{s.resource_type}?{query(s, ('patient.identifier', identity))}"
                      for s in searches)]
            first, *found = await client.batch(urls)
            if isinstance(first, ConnectorError):
                raise first
            patient = _one_patient(first, nin, client.base)
            if patient is None:
                return None, []
            # A chained search's next link would carry the identity number in a URL: the
            # types with more pages are searched again by reference instead.
            again = [i for i, f in enumerate(found) if isinstance(f, Found)
                     and f.next_url is not None]
            if again:
                redone = await client.by_reference(patient.id, [searches[i] for i in again],
                                                   batch=True)
                for i, answer in zip(again, redone, strict=True):
                    found[i] = answer
            return patient, found
        first = await client.post_search("Patient", [("identifier", identity)])
        patient = _one_patient(first, nin, client.base)
        if patient is None:
            return None, []
        return patient, await client.by_reference(patient.id, searches,
                                                  batch=capabilities.batch)

    async def write(self, request: WriteRequest) -> WriteResult:
        """Record `request.draft` in the store of `request.municipality`, once: resolve the
        person to the store's Patient, then POST the resource with `If-None-Exist` on the
        request's identifier (see `connectors.municipal.writing`). Never retried here."""
        base = self.stores.get(request.municipality)
        if base is None:
            raise UpstreamUnavailableError(self.name, f"Source {self.name!r} has no store for "
                                                      "that municipality.")
        rtype = resource_type_of(request.draft)
        headers = build_headers(request)
        sent = False  # until the POST goes, a failure means nothing was written
        budget = Budget(self.name, request.timeout)
        try:
            async with budget.enforce():
                capabilities = await self._capabilities.get(
                    base, timeout=request.timeout / 2, headers=headers,
                    auth=request.credentials.to(self._audience, machine=True))
                if not capabilities.declared:
                    raise UpstreamUnavailableError(
                        self.name, f"Source {self.name!r} did not say what it supports; "
                                   "nothing was written.")
                if rtype not in capabilities.conditional_create:
                    raise UpstreamRejectedError(
                        self.name, f"Source {self.name!r} does not declare conditional create "
                                   f"for {rtype}; Kilde writes only where a repeat cannot make "
                                   "a second record.", issues=("not-supported",))
                auth = request.credentials.to(self._audience)
                client = StoreClient(self._http, base, headers, store_budget(budget),
                                     auth=auth)
                found = await client.post_search(
                    "Patient", [("identifier", identifier_query(request.patient_nin))])
                patient = _one_patient(found, request.patient_nin, base)
                if patient is None:
                    raise UpstreamRejectedError(
                        self.name, f"Source {self.name!r} has no patient record for this "
                                   "person; nothing was written.", issues=("not-found",))
                sent = True
                answer = await request_json_response(
                    self._http, self.name, "POST", f"{base}/{rtype}",
                    timeout=max(0.1, request.timeout / 2), json=resource_for(request, patient),
                    headers={**headers, "if-none-exist": if_none_exist(request.identifier),
                             "prefer": "return=representation"},
                    accept_status=(400, 404, 409, 412, 422), auth=auth)
        except ConnectorError as exc:  # a timeout (the budget's) included
            raise _unsent(exc, sent) from exc.__cause__
        if answer.status_code >= 400:
            raise rejected(answer.status_code, answer.body, rtype)
        if answer.status_code not in (200, 201):
            raise UpstreamInvalidError(self.name, f"Source {self.name!r} answered the write "
                                                  f"with HTTP {answer.status_code}.")
        return read_written(answer.body, request, patient, created=answer.status_code == 201)

    async def aclose(self) -> None:
        """Nothing to close: the shared HTTP client belongs to the gateway."""


def _unsent(error: ConnectorError, sent: bool) -> ConnectorError:
    """`error`, marked as raised before the record was sent when it was (nothing written)."""
    if not sent:
        error.sent = False
    return error


def _one_patient(found: Found, nin: str, base: str) -> StorePatient | None:
    patients = sum(1 for e in found.entries if isinstance(e.get("resource"), dict)
                   and e["resource"].get("resourceType") == "Patient")
    if found.next_url is not None or (found.total is not None and found.total > patients):
        # more than a page of Patients for one person, or a total that says more than it holds
        raise UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} holds several patient records "
                                           "for this person; they are not merged.")
    return resolve_patient(found.entries, nin, base)


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
    unknown = [n for n, a in good if not a.known]
    # A local restriction is enforced here, record by record: the withheld categories say
    # RESTRICTED and the rest is delivered. Only an *opened* restriction goes to the policy as
    # privacy state, which lets it through solely for an emergency with a reason (and audits it).
    # A block of the requesting professional goes to the policy too: it is never overridden.
    privacy = PrivacyState(
        restricted=bool(opened),
        restriction_opened=bool(opened),
        blocked_requester=any(a.blocked for _, a in good),
        detail=_restriction_detail(restricted, opened) if restricted else None,
    )
    notes = [privacy.detail] if privacy.detail else []
    if failed:
        names = ", ".join(repr(n) for n, _ in failed)
        codes = ", ".join(sorted({e.code for _, e in failed}))
        notes.insert(0, f"Municipal store {names} did not answer ({codes}); the other stores "
                        "did.")
    if unknown:
        stores = ", ".join(repr(n) for n in unknown)
        notes.append(f"Municipal store {stores} has no patient record for this person.")
    status: dict[Category, Status] = {}
    reasons: dict[Category, Reason] = {}
    for category in categories:
        shortfalls = [a.shortfalls[category] for _, a in good if category in a.shortfalls]
        if not shortfalls:
            continue
        answered = [a for _, a in good if a.known]
        # nothing of the category came from any store that knows the patient: the failure's own
        # status; else what came is delivered and the category is PARTIAL
        nothing = len(shortfalls) == len(answered) and all(
            s.status is not Status.PARTIAL for s in shortfalls)
        status[category] = shortfalls[0].status if nothing else Status.PARTIAL
        reasons[category] = Reason(_code(shortfalls),
                                   " ".join([*(s.detail for s in shortfalls), *notes]))
    status |= {c: Status.RESTRICTED for c in withheld}
    result = SourceResult.of(
        SOURCE,
        {c: tuple(found) for c, found in items.items()},
        privacy=privacy,
        category_status=status,
        category_reason={c: r for c, r in reasons.items() if status[c] is not Status.RESTRICTED},
        detail=" ".join(notes) or None,
    )
    if not failed:
        return result
    return dataclasses.replace(result, status=Status.PARTIAL)


def _code(shortfalls: list[Shortfall]) -> str:
    """The reason code of a category's shortfalls: a failed search first, then records that
    could not be read, then anything else."""
    order = ["UPSTREAM_TIMEOUT", "UPSTREAM_UNAVAILABLE", "UPSTREAM_INVALID", "UPSTREAM_REJECTED",
             "UNREADABLE_RECORDS"]
    codes = [s.code for s in shortfalls]
    return min(codes, key=lambda c: order.index(c) if c in order else len(order))


def _restriction_detail(restricted: list[str], opened: list[str]) -> str:
    stores = ", ".join(repr(n) for n in restricted)
    if opened:
        return f"The patient's restriction in municipal store {stores} was opened."
    return f"The patient has restricted records in municipal store {stores}; they were withheld."


def build(settings: ConnectorSettings, http: httpx.AsyncClient) -> MunicipalConnector:
    """Validate `settings.stores` and build the connector (the factory `create` wraps)."""
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
    try:
        audience = (Audience(settings.audience, settings.scope, settings.grant)
                    if settings.audience else None)
    except ValueError as exc:
        raise ConnectorConfigError(f"Connector 'municipal': {exc} Check "
                                   "KILDE_CONNECTORS__MUNICIPAL__GRANT.") from None
    return MunicipalConnector(settings.stores, http, audience)
