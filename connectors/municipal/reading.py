"""Reading one store's answer: which searches a request needs, and what their records say.

Sits between `connectors.municipal.connector` (which fetches) and `mapping` (pure FHIR ->
model): `plan_searches` turns categories into the store's searches, `check_patient` proves
every record is the resolved Patient's, `read_store` maps the records and applies the store's
local restriction (sperring) and a block of the requesting professional.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors import AccessBasis, Category, Item
from connectors.fhir import now
from connectors.municipal.capabilities import StoreCapabilities
from connectors.municipal.critical import entered_in_error, map_allergy, map_flag
from connectors.municipal.identity import StorePatient, refers_to
from connectors.municipal.mapping import (
    MAPPERS,
    SUBJECT,
    Restriction,
    blocks,
    provenance_of,
    restriction_of,
    scope_of,
)
from connectors.municipal.searches import Found, Search

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


def plan_searches(categories: frozenset[Category], capabilities: StoreCapabilities
                  ) -> list[tuple[Search, frozenset[Category | None]]]:
    """The distinct searches for `categories` in one store, each with the categories it feeds
    (None: the privacy search). A parameter the store does not declare is left out (a strict
    store would refuse it) and applied when reading instead, so two searches may become one."""
    wanted = [(c, s) for c, s in SEARCHES if c in categories] + [(None, PRIVACY_SEARCH)]
    plan: dict[Search, set[Category | None]] = {}
    for category, search in wanted:
        params = tuple((k, v) for k, v in search.params
                       if capabilities.supports(search.resource_type, k))
        plan.setdefault(Search(search.resource_type, params), set()).add(category)
    return [(s, frozenset(c)) for s, c in plan.items()]


@dataclass
class StoreAnswer:
    """What one store gave: items per category, what its restriction withheld, what paging
    could not finish, and whether it knew the patient at all."""

    items: dict[Category, list[Item]] = field(default_factory=dict)
    withheld: set[Category] = field(default_factory=set)
    incomplete: set[Category] = field(default_factory=set)
    restricted: bool = False
    opened: bool = False
    blocked: bool = False
    known: bool = True


def _matches(found: Found, search: Search) -> list[dict[str, Any]]:
    """The matched resources of `search` in `found` (includes and outcomes are not records)."""
    out = []
    ids: set[Any] = set()
    for entry in found.entries:
        resource = entry.get("resource")
        mode = entry.get("search", {}).get("mode") if isinstance(entry.get("search"), dict) \
            else None
        if (isinstance(resource, dict) and mode not in ("include", "outcome")
                and resource.get("resourceType") == search.resource_type
                and not (resource.get("id") in ids and isinstance(resource.get("id"), str))):
            ids.add(resource.get("id"))  # a page sent twice is one page
            out.append(resource)
    return out


def check_patient(found: Found, search: Search, patient: StorePatient, nin: str) -> bool:
    """True when every record `search` returned refers to `patient`."""
    full_urls = {e["fullUrl"]: e.get("resource") for e in found.entries
                 if isinstance(e.get("fullUrl"), str)}
    return all(refers_to(r.get(SUBJECT[search.resource_type]), patient, nin,
                         contained=r.get("contained") or (), full_urls=full_urls)
               for r in _matches(found, search))


def read_store(
    results: Sequence[tuple[Search, frozenset[Category | None], Found]],
    *,
    municipality: str,
    access_basis: AccessBasis,
    requester_hpr: str | None = None,
) -> StoreAnswer:
    """Map one store's checked searches to items, applying its local restriction."""
    fetched_at = now()
    privacy = [r for s, cats, f in results if None in cats for r in _matches(f, s)]
    restriction: Restriction | None = restriction_of(privacy)
    opened = restriction is not None and access_basis in OPENS_RESTRICTION
    answer = StoreAnswer(restricted=restriction is not None, opened=opened,
                         blocked=blocks(privacy, requester_hpr))
    for search, categories, found in results:
        for category in (c for c in categories if c is not None):
            kept = answer.items.setdefault(category, [])
            matches = _matches(found, search)
            if not found.complete or (found.total is not None and len(matches) < found.total):
                # cut short, or (a store that pages without next links) fewer than its total
                answer.incomplete.add(category)
            for resource in matches:
                if entered_in_error(resource):
                    continue
                if search.resource_type == "Consent" and scope_of(resource) != "treatment":
                    continue
                if restriction is not None and not opened and restriction.covers(resource):
                    answer.withheld.add(category)
                    continue
                provenance = provenance_of(resource, municipality=municipality,
                                           fetched_at=fetched_at)
                kept.append(READERS[search.resource_type](resource, provenance))
    return answer


