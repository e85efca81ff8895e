"""The Kjernejournal connector: /status and the Kj* searches at once, into one SourceResult.

Sits under the fan-out. `fetch` sends `POST /status` (privacy settings, is the requester
blocked) together with only the searches the requested categories need, so one round trip of
latency answers both; a privacy probe (no categories) sends only `/status`. The patient's
identity number travels in the `/status` body and the `nhn-patient-nin` header, never in a
URL. Privacy refusals are results, not errors: reserved ->
RESERVED, anyone blocked -> BLOCKED (never overridable), restricted (sperret) and not opened by
the access basis -> RESTRICTED; other 4xx are `UpstreamRejectedError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson

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
)
from connectors.credentials import Audience
from connectors.fhir import (
    JsonResponse,
    bundle_entries,
    names_another_patient,
    now,
    request_json_response,
)
from connectors.kjernejournal import mapping

PROFESSION = "urn:oid:2.16.578.1.12.4.1.1.9060"  # kodeverk 9060, kategori helsepersonell
Mapper = Callable[[Mapping[str, Any], datetime], Item | None]

# Per category, the searches it needs: (resource type, mapper).
SEARCHES: Mapping[Category, tuple[tuple[str, Mapper], ...]] = {
    Category.CRITICAL_INFORMATION: (
        ("AllergyIntolerance", mapping.allergy),
        ("Condition", mapping.critical_condition),
        ("Flag", mapping.flag),
    ),
    Category.TREATMENT_LIMITATIONS: (("Consent", mapping.treatment_limitation),),
}
# A resource that cannot be read; `mapping` raises ValueError, wrong JSON types the others.
UNREADABLE = (TypeError, AttributeError, KeyError, ValueError)
UNREADABLE_RECORDS = "UNREADABLE_RECORDS"  # the reason code of records that could not be read
# The element that names the patient, per type: a record naming anyone else is refused
PATIENT_ELEMENT = {"AllergyIntolerance": "patient", "Consent": "patient", "Condition": "subject",
                   "Flag": "subject"}
logger = logging.getLogger(__name__)


def request_headers(request: FetchRequest, source_system: str) -> dict[str, str]:
    """The `nhn-*` headers shared by /status and the searches (no patient header)."""
    headers = {"nhn-access-basis": mapping.access_basis_value(request.access_basis),
               "nhn-source-system": source_system}
    requester = request.requester
    if requester.role_code:
        headers["nhn-user-role"] = _user_role(requester.role_code)
    if requester.hpr_number:
        headers["nhn-user-hpr"] = requester.hpr_number
    if request.request_id:
        headers["nhn-event-id"] = request.request_id[:128]
    return headers


@functools.lru_cache(maxsize=64)
def _user_role(role_code: str) -> str:
    """The `nhn-user-role` header for a role (kodeverk 9060: a handful of codes, so each is
    encoded once, not once per request)."""
    return quote(orjson.dumps({"system": PROFESSION, "code": role_code}).decode(), safe="")


class KjernejournalConnector:
    """Kjernejournal's critical-information API (kritisk informasjon), FHIR R4.

    >>> settings = ConnectorSettings("kjernejournal", base_url="http://127.0.0.1:8000/kjernejournal")
    >>> connector = KjernejournalConnector(settings, httpx.AsyncClient())
    >>> sorted(c.value for c in connector.categories)
    ['critical_information', 'treatment_limitations']
    """

    name = mapping.SOURCE
    categories = frozenset(SEARCHES)
    standard = "FHIR R4, Kjernejournal critical-information API"

    def __init__(self, settings: ConnectorSettings, http: httpx.AsyncClient) -> None:
        if not settings.base_url:
            raise ConnectorConfigError(
                "Connector 'kjernejournal' needs a base URL: set "
                "KILDE_CONNECTORS__KJERNEJOURNAL__BASE_URL."
            )
        self.base_url = settings.base_url.rstrip("/")
        self._http = http
        self._audience = Audience.of(settings)  # Kjernejournal's HelseID resource
        self._source_system = str(settings.options.get("source_system", "kilde"))

    async def fetch(self, request: FetchRequest) -> SourceResult:
        """Ask /status and the needed searches concurrently; privacy outcomes are results."""
        wanted = [c for c in SEARCHES if c in request.categories]
        if not wanted:
            if request.privacy_probe:
                return await self._privacy_only(request)
            return SourceResult.empty(self.name)
        searches = [(c, rtype, mapper) for c in wanted for rtype, mapper in SEARCHES[c]]
        headers = request_headers(request, self._source_system)
        search_headers = {**headers, "nhn-patient-nin": request.patient_nin}
        fetched_at = now()
        try:
            # A TaskGroup, not gather: one failure cancels the other calls instead of leaving
            # them running after fetch() has returned. /status runs in this task itself (one
            # task fewer per fetch); failing, it cancels the searches just the same.
            async with Budget.of(request, self.name).enforce(), asyncio.TaskGroup() as group:
                calls = [group.create_task(self._call(request, "GET", rtype, search_headers,
                                                      accept_status=(403,)))
                         for _, rtype, _ in searches]
                # /status asks whether KJ may be read at all: Kilde's own (machine) token
                status_answer = await self._call(
                    request, "POST", "status", headers, json={"nin": request.patient_nin},
                    machine=True)
        except ExceptionGroup as group_error:
            raise _first_connector_error(group_error) from None
        status = status_answer.body
        if not isinstance(status, dict):
            raise UpstreamInvalidError(self.name, f"Source {self.name!r} sent a bad /status body.")
        answers = [call.result() for call in calls]
        return self._result(status, list(zip(searches, answers, strict=True)), wanted, fetched_at,
                            request.patient_nin)

    async def aclose(self) -> None:
        """Nothing to close: the shared HTTP client belongs to the gateway."""

    async def _privacy_only(self, request: FetchRequest) -> SourceResult:
        """Only /status: is the requester blocked (no clinical search, nothing audited at KJ)."""
        fetched_at = now()
        async with Budget.of(request, self.name).enforce():
            answer = await self._call(request, "POST", "status",
                                      request_headers(request, self._source_system),
                                      json={"nin": request.patient_nin}, machine=True)
        if not isinstance(answer.body, dict):
            raise UpstreamInvalidError(self.name, f"Source {self.name!r} sent a bad /status body.")
        return SourceResult(source=self.name, status=Status.EMPTY, items={},
                            fetched_at=fetched_at, privacy=mapping.privacy_state(answer.body))

    def _call(self, request: FetchRequest, method: str, path: str,
              headers: Mapping[str, str], *, json: Any = None,
              accept_status: Sequence[int] = (), machine: bool = False
              ) -> Coroutine[Any, Any, JsonResponse]:
        # the request's coroutine itself (no frame of its own around it)
        return request_json_response(
            self._http, self.name, method, f"{self.base_url}/{path}", timeout=request.timeout,
            headers=headers, json=json, accept_status=accept_status,
            auth=request.credentials.to(self._audience, machine=machine),
        )

    def _result(
        self,
        status: Mapping[str, Any],
        answers: list[tuple[tuple[Category, str, Mapper], JsonResponse]],
        wanted: list[Category],
        fetched_at: datetime,
        nin: str,
    ) -> SourceResult:
        privacy = mapping.privacy_state(status)
        refused: dict[Category, str] = {}
        resources: dict[Category, list[tuple[Mapper, Mapping[str, Any]]]] = {c: [] for c in wanted}
        # records that cannot be read: a match of another type, or fewer than the Bundle's total
        unreadable: dict[Category, int] = dict.fromkeys(wanted, 0)
        opened = reservation = False
        for (category, rtype, mapper), answer in answers:
            if answer.status_code == 403:
                refused[category] = self._refusal(answer.body, refused.get(category))
                continue
            opened |= answer.headers.get("nhn-restriction-opened", "").lower() == "true"
            body = answer.body
            if not isinstance(body, dict) or body.get("type") != "searchset":
                raise UpstreamInvalidError(self.name, f"Source {self.name!r} answered a search "
                                           "with something other than a searchset Bundle.")
            matches = 0
            for entry in bundle_entries(body, self.name):
                resource = entry["resource"]
                if resource.get("resourceType") == "OperationOutcome":
                    reservation |= "Reservation" in mapping.outcome_codes(resource)
                elif resource.get("resourceType") == rtype:
                    if names_another_patient(resource.get(PATIENT_ELEMENT[rtype]), nin):
                        logger.warning("Source %s returned a %s of another patient; its answer "
                                       "is discarded.", self.name, rtype)
                        raise UpstreamInvalidError(self.name, f"Source {self.name!r} sent "
                                                   "records of another patient.")
                    resources[category].append((mapper, resource))
                    matches += 1
                else:
                    unreadable[category] += 1
            total = body.get("total")
            if isinstance(total, int) and not isinstance(total, bool) and total > matches:
                unreadable[category] += min(total - matches, 10_000)  # said, not sent

        if privacy.reserved or reservation:
            return self._withheld(Status.RESERVED, dataclasses.replace(privacy, reserved=True),
                                  wanted, fetched_at, "The patient has reserved against "
                                  "Kjernejournal.")
        if privacy.blocked_requester or privacy.any_blocked or "blocked" in refused.values():
            # Kjernejournal shares no clinical data at all once anyone is blocked.
            return self._withheld(Status.BLOCKED, dataclasses.replace(privacy, any_blocked=True),
                                  wanted, fetched_at, "The patient has blocked health personnel; "
                                  "Kjernejournal shares no clinical information.")
        if refused:
            privacy = dataclasses.replace(privacy, restricted=True)
        elif opened or privacy.restricted:
            # Data came back for a restricted patient: the access basis opened the restriction.
            privacy = dataclasses.replace(privacy, restricted=True, restriction_opened=True)
        if set(refused) == set(wanted):
            return self._withheld(Status.RESTRICTED, privacy, wanted, fetched_at,
                                  "Kjernejournal is restricted (sperret); an emergency or "
                                  "elevated-consent access basis is needed.")
        return self._items(resources, refused, privacy, fetched_at, unreadable)

    def _refusal(self, body: Any, earlier: str | None) -> str:
        codes = mapping.outcome_codes(body)
        if "blocked" in codes or earlier == "blocked":
            return "blocked"
        if "restricted" in codes:
            return "restricted"
        raise UpstreamRejectedError(
            self.name, f"Source {self.name!r} rejected the request with HTTP 403.", 403
        )

    def _items(
        self,
        resources: Mapping[Category, list[tuple[Mapper, Mapping[str, Any]]]],
        refused: Mapping[Category, str],
        privacy: PrivacyState,
        fetched_at: datetime,
        unreadable: Mapping[Category, int],
    ) -> SourceResult:
        """The items per category; records that could not be read make their category
        PARTIAL, or INVALID when nothing of it could be read (never silently EMPTY)."""
        items: dict[Category, list[Item]] = {}
        statuses: dict[Category, Status] = {c: Status.RESTRICTED for c in refused}
        reasons: dict[Category, Reason] = {}
        for category, found in resources.items():
            items[category] = []
            read, lost = 0, unreadable.get(category, 0)
            for mapper, resource in found:
                try:
                    item = mapper(resource, fetched_at)
                except UNREADABLE:
                    lost += 1
                    continue
                read += 1
                if item is not None:
                    items[category].append(item)
            if lost and category not in refused:
                logger.warning("Source %s sent %d %s record(s) Kilde could not read.", self.name,
                               lost, category.value)
                noun = "record" if lost == 1 else "records"
                statuses[category] = Status.PARTIAL if read else Status.INVALID
                reasons[category] = Reason(UNREADABLE_RECORDS, (
                    f"Source {self.name!r} sent {lost} {noun} Kilde could not read; not shown."))
        return SourceResult.of(
            self.name, items, privacy=privacy, fetched_at=fetched_at,
            category_status=statuses, category_reason=reasons,
        )

    def _withheld(self, status: Status, privacy: PrivacyState, wanted: list[Category],
                  fetched_at: datetime, detail: str) -> SourceResult:
        return SourceResult(source=self.name, status=status, items={c: () for c in wanted},
                            fetched_at=fetched_at, privacy=privacy, detail=detail)


def _first_connector_error(group_error: ExceptionGroup[Exception]) -> Exception:
    """The first `ConnectorError` of a failed TaskGroup; anything else is a bug: the group."""
    errors, _ = group_error.split(ConnectorError)
    if errors is None:
        return group_error
    first = errors.exceptions[0]
    while isinstance(first, ExceptionGroup):
        first = first.exceptions[0]
    return first
