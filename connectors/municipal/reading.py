"""Reading one store's answer: which searches a request needs, and what their records say.

Sits between `connectors.municipal.connector` (which fetches) and `mapping` (pure FHIR ->
model): `plan_searches` turns categories into the store's searches, `check_patient` proves
every record is the resolved Patient's, `read_store` maps the records and applies the store's
local restriction (sperring) and a block of the requesting professional.

Nothing is dropped silently. A record that cannot be read (no id, no code, a field of the
wrong type, a match of another resource type) is counted, logged by store and type only, and
makes its category `PARTIAL`, or `INVALID` when nothing of it could be read. A search that
failed (or that the store's CapabilityStatement does not offer) fails only the categories it
feeds. The privacy search is different: when it failed, was cut short or sent a Consent that
cannot be read, the store's restrictions and blocks are unknown, so `read_store` raises and
none of that store's records is shown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors import (
    AccessBasis,
    Category,
    ConnectorError,
    Item,
    Status,
    UpstreamInvalidError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from connectors.fhir import now
from connectors.municipal.capabilities import StoreCapabilities
from connectors.municipal.critical import entered_in_error, map_allergy, map_flag
from connectors.municipal.identity import StorePatient, refers_to
from connectors.municipal.mapping import (
    MAPPERS,
    SOURCE,
    SUBJECT,
    Restriction,
    blocks,
    provenance_of,
    restriction_of,
    scope_of,
)
from connectors.municipal.searches import Found, Search

logger = logging.getLogger(__name__)
# How reading a field of the wrong JSON type fails (the boundary's list): a record not read
UNREADABLE = (TypeError, LookupError, AttributeError, ValueError, ArithmeticError,
              RecursionError)
READERS = {**MAPPERS, "AllergyIntolerance": map_allergy, "Flag": map_flag}
OPENS_RESTRICTION = frozenset({AccessBasis.FORHOYET_AKUTT, AccessBasis.FORHOYET_SAMTYKKE})

# What each category searches; the privacy search (local restrictions) always goes along.
SEARCHES: tuple[tuple[Category, Search], ...] = (
    (Category.TREATMENT_LIMITATIONS, Search("Consent", (("scope", "treatment"),))),
    (Category.MUNICIPAL_SERVICES, Search("EpisodeOfCare")),
    (Category.CONDITIONS, Search("Condition")),
    (Category.MEDICATIONS, Search("MedicationAdministration")),
    (Category.DOCUMENTS, Search("DocumentReference")),
    (Category.CRITICAL_INFORMATION, Search("AllergyIntolerance")),
    (Category.CRITICAL_INFORMATION, Search("Flag")),
)
PRIVACY_SEARCH = Search("Consent", (("scope", "patient-privacy"),))


UNREADABLE_RECORDS = "UNREADABLE_RECORDS"  # the reason code of a record Kilde could not read
Planned = tuple[Search, frozenset[Category | None]]
Answered = tuple[Search, frozenset[Category | None], Found | ConnectorError]


def plan_searches(categories: frozenset[Category], capabilities: StoreCapabilities
                  ) -> tuple[list[Planned], list[Answered]]:
    """The distinct searches for `categories` in one store, each with the categories it feeds
    (None: the privacy search), and those the store cannot be asked (its CapabilityStatement
    offers no search of the type by `patient`), each with the `UpstreamRejectedError` that is
    its answer. A parameter the store does not declare is left out (a strict store would
    refuse it) and applied when reading instead, so two searches may become one. A store that
    cannot be asked the privacy search is refused whole (`UpstreamRejectedError`)."""
    wanted = [(c, s) for c, s in SEARCHES if c in categories] + [(None, PRIVACY_SEARCH)]
    plan: dict[Search, set[Category | None]] = {}
    refused: dict[Search, set[Category | None]] = {}
    for category, search in wanted:
        if not capabilities.supports(search.resource_type, "patient"):
            if category is None:
                raise UpstreamRejectedError(SOURCE, f"Source {SOURCE!r} has a store that does "
                                            "not offer the Consent search by patient, so its "
                                            "restrictions and blocks cannot be checked.")
            refused.setdefault(search, set()).add(category)
            continue
        params = tuple((k, v) for k, v in search.params
                       if capabilities.supports(search.resource_type, k))
        if params != search.params:  # else the search as declared (a frozen value)
            search = Search(search.resource_type, params)
        plan.setdefault(search, set()).add(category)
    return ([(s, frozenset(c)) for s, c in plan.items()],
            [(s, frozenset(c), UpstreamRejectedError(
                SOURCE, f"Source {SOURCE!r} does not offer the {s.resource_type} search by "
                        "patient (its CapabilityStatement).")) for s, c in refused.items()])


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why one store's answer for one category is not whole: the status it gives that category
    in this store (PARTIAL, or INVALID/UNAVAILABLE/TIMEOUT when nothing came), a stable code and
    one sentence without personal data."""

    status: Status
    code: str
    detail: str


@dataclass
class StoreAnswer:
    """What one store gave: items per category, what its restriction withheld, what paging
    could not finish, what could not be read or searched (`shortfalls`), and whether it knew
    the patient at all."""

    items: dict[Category, list[Item]] = field(default_factory=dict)
    withheld: set[Category] = field(default_factory=set)
    incomplete: set[Category] = field(default_factory=set)
    shortfalls: dict[Category, Shortfall] = field(default_factory=dict)
    restricted: bool = False
    opened: bool = False
    blocked: bool = False
    known: bool = True


def _matches(found: Found, search: Search) -> tuple[list[dict[str, Any]], int]:
    """The matched resources of `search` in `found` (includes and outcomes are not records), and
    how many matches were of another resource type (records that cannot be read)."""
    out = []
    other = 0
    ids: set[Any] = set()
    for entry in found.entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        search_mode = entry.get("search")  # includes and outcomes are not records
        if isinstance(search_mode, dict) and search_mode.get("mode") in ("include", "outcome"):
            continue
        kind = resource.get("resourceType")
        if kind == "OperationOutcome":
            continue  # a warning (errors fail the search in `searchset`)
        if kind != search.resource_type:
            other += 1
            continue
        rid = resource.get("id")
        if isinstance(rid, str) and rid in ids:
            continue  # a page sent twice is one page
        ids.add(rid)
        out.append(resource)
    return out, other


def check_patient(found: Found, search: Search, patient: StorePatient, nin: str) -> bool:
    """True when every record `search` returned refers to `patient`."""
    full_urls = {e["fullUrl"]: e.get("resource") for e in found.entries
                 if isinstance(e.get("fullUrl"), str)}
    return all(refers_to(r.get(SUBJECT[search.resource_type]), patient, nin,
                         contained=r.get("contained") or (), full_urls=full_urls)
               for r in _matches(found, search)[0])


def _is_list_of_dicts(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, dict) for v in value))


def readable_privacy(resource: Mapping[str, Any]) -> bool:
    """True when a Consent of the privacy search can be read for what it restricts or blocks:
    a scope Kilde can tell, and for a `patient-privacy` Consent a status and a provision of the
    shapes `restriction_of` and `blocks` read (a malformed one must not read as no restriction)."""
    scope = scope_of(resource)
    if scope is None:
        return False
    if scope != "patient-privacy":
        return True
    provision = resource.get("provision")
    if not isinstance(resource.get("status"), str) or not isinstance(provision, dict):
        return False
    if not isinstance(provision.get("type"), str):
        return False
    if not all(_is_list_of_dicts(provision.get(k)) for k in ("actor", "class", "data",
                                                             "securityLabel")):
        return False
    for actor in provision.get("actor") or []:
        reference = actor.get("reference")
        if not isinstance(reference, dict):
            return False
        identifier = reference.get("identifier")
        if not (isinstance(reference.get("reference"), str) or (
                isinstance(identifier, dict) and isinstance(identifier.get("value"), str))):
            return False
    return True


def _privacy_records(results: Sequence[Answered], municipality: str) -> list[dict[str, Any]]:
    """The Consents of the privacy search, or the error that withholds the whole store."""
    records: list[dict[str, Any]] = []
    for search, categories, found in results:
        if None not in categories:
            continue
        if isinstance(found, ConnectorError):
            logger.warning("Municipal store %s failed the privacy search (%s); none of its "
                           "records is shown.", municipality, found.code)
            raise type(found)(SOURCE, f"Source {SOURCE!r} could not check the patient's "
                              f"restrictions and blocks in a store ({found.code}); none of "
                              "that store's records is shown.")
        matches, other = _matches(found, search)
        if not found.complete or (found.total is not None and len(matches) + other < found.total):
            logger.warning("Municipal store %s did not send the whole privacy search; none of "
                           "its records is shown.", municipality)
            raise UpstreamUnavailableError(SOURCE, f"Source {SOURCE!r} did not send all of the "
                                           "patient's restrictions and blocks in a store; none "
                                           "of that store's records is shown.")
        if other or not all(readable_privacy(r) for r in matches):
            logger.warning("Municipal store %s sent a privacy record Kilde could not read; "
                           "none of its records is shown.", municipality)
            raise UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} sent a Consent Kilde cannot "
                                       "read, so the patient's restrictions and blocks in a "
                                       "store are unknown; none of that store's records is "
                                       "shown.")
        records.extend(matches)
    return records


@dataclass
class _Tally:
    """One category's reading in one store."""

    read: int = 0  # records read (shown, withheld, or not this category's)
    unreadable: dict[str, int] = field(default_factory=dict)  # by resource type
    failed: list[tuple[str, ConnectorError]] = field(default_factory=list)
    searched: int = 0  # searches that answered


def read_store(
    results: Sequence[Answered],
    *,
    municipality: str,
    access_basis: AccessBasis,
    requester_hpr: str | None = None,
    linked: bool = False,
) -> StoreAnswer:
    """Map one store's checked searches to items, applying its local restriction. `linked`:
    the store links the Patient to another record (`Patient.link`), whose records are not
    read: every category is PARTIAL."""
    fetched_at = now()
    privacy = _privacy_records(results, municipality)
    restriction: Restriction | None = restriction_of(privacy)
    opened = restriction is not None and access_basis in OPENS_RESTRICTION
    answer = StoreAnswer(restricted=restriction is not None, opened=opened,
                         blocked=blocks(privacy, requester_hpr))
    tallies: dict[Category, _Tally] = {}
    for search, categories, found in results:
        for category in (c for c in categories if c is not None):
            kept = answer.items.setdefault(category, [])
            tally = tallies.get(category)
            if tally is None:  # (setdefault would build a _Tally for every search)
                tally = tallies[category] = _Tally()
            if isinstance(found, ConnectorError):
                tally.failed.append((search.resource_type, found))
                continue
            tally.searched += 1
            matches, other = _matches(found, search)
            if other:
                tally.unreadable[search.resource_type] = (
                    tally.unreadable.get(search.resource_type, 0) + other)
            if not found.complete or (found.total is not None
                                      and len(matches) + other < found.total):
                # cut short, or (a store that pages without next links) fewer than its total
                answer.incomplete.add(category)
            for resource in matches:
                item = _read(resource, search, restriction, opened, municipality, fetched_at)
                if item is None:
                    tally.unreadable[search.resource_type] = (
                        tally.unreadable.get(search.resource_type, 0) + 1)
                    continue
                tally.read += 1
                if item is _WITHHELD:
                    answer.withheld.add(category)
                elif item is not _SKIPPED:
                    kept.append(item)
    for category, tally in tallies.items():
        shortfall = _shortfall(tally, municipality, category in answer.incomplete, linked)
        if shortfall is not None:
            answer.shortfalls[category] = shortfall
    return answer


_WITHHELD = object()  # covered by the store's restriction
_SKIPPED = object()  # read, and not shown: entered in error, or another Consent scope


def _read(resource: dict[str, Any], search: Search, restriction: Restriction | None,
          opened: bool, municipality: str, fetched_at: Any) -> Any:
    """One record as an item, `_WITHHELD`, `_SKIPPED`, or None when it cannot be read."""
    try:
        if entered_in_error(resource):
            return _SKIPPED
        if search.resource_type == "Consent":
            scope = scope_of(resource)
            if scope is None:
                return None  # no scope Kilde can tell: is it a treatment decision at all?
            if scope != "treatment":
                # a search by scope=treatment that answers another scope sent what was not
                # asked (a record not to be read); without the parameter, others are expected
                return None if ("scope", "treatment") in search.params else _SKIPPED
        if restriction is not None and not opened and restriction.covers(resource):
            return _WITHHELD
        provenance = provenance_of(resource, municipality=municipality, fetched_at=fetched_at)
        return READERS[search.resource_type](resource, provenance)
    except (UpstreamInvalidError, *UNREADABLE):
        return None


def _shortfall(tally: _Tally, municipality: str, incomplete: bool, linked: bool
               ) -> Shortfall | None:
    store = f"Municipal store {municipality!r}"
    notes: list[str] = []
    for kind, error in tally.failed:
        logger.warning("Municipal store %s failed a %s search (%s).", municipality, kind,
                       error.code)
        notes.append(f"{store} did not answer the {kind} search ({error.code}: "
                     f"{error.message})")
    for kind, count in sorted(tally.unreadable.items()):
        logger.warning("Municipal store %s sent %d %s record(s) Kilde could not read.",
                       municipality, count, kind)
        noun = "record" if count == 1 else "records"
        notes.append(f"{store} sent {count} {kind} {noun} Kilde could not read; not shown")
    if incomplete:
        notes.append(f"{store} did not send every page of a search (the deadline, a next link "
                     "that loops or leaves the store, or fewer records than its total); the "
                     "answer is incomplete")
    if linked:
        notes.append(f"{store} links this patient record to another one (Patient.link), "
                     "whose records are not read")
    if not notes:
        return None
    detail = "; ".join(notes) + "."
    if tally.searched == 0:  # every search of the category failed
        error = tally.failed[0][1]
        return Shortfall(_ERROR_STATUS.get(error.code, Status.UNAVAILABLE), error.code, detail)
    if tally.unreadable and tally.read == 0:
        return Shortfall(Status.INVALID, UNREADABLE_RECORDS, detail)  # nothing could be read
    code = (tally.failed[0][1].code if tally.failed else
            UNREADABLE_RECORDS if tally.unreadable else
            "LINKED_PATIENT_RECORD" if linked and not incomplete else "PARTIAL_ANSWER")
    return Shortfall(Status.PARTIAL, code, detail)


_ERROR_STATUS = {"UPSTREAM_TIMEOUT": Status.TIMEOUT, "UPSTREAM_INVALID": Status.INVALID,
                 "UPSTREAM_UNAVAILABLE": Status.UNAVAILABLE,
                 "UPSTREAM_REJECTED": Status.UNAVAILABLE}
