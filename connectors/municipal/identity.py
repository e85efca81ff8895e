"""The right patient, always: resolving a person to a store's Patient, and checking every record.

Sits under `connectors.municipal.connector`: the connector first resolves the identity number
to the store's own `Patient` (`resolve_patient`), then searches by its logical id, and keeps a
store's answer only when every record it returned refers to that Patient (`refers_to`). A
store that answers anything else is `UpstreamInvalidError` for the request: none of its items
is shown. Identity is the number *under a person-identifier system of its kind* (FNR, D-nummer,
FHN; the OIDs and the hl7.no NamingSystem URIs alike): the same digits as a local H-nummer
(`system = "HNR"`, unique only with its assigner) or under another kind's system are someone
else. No message names the number, the store's ids or a URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors import (
    DNR_SYSTEM,
    FHN_SYSTEM,
    FNR_SYSTEM,
    UpstreamInvalidError,
    is_valid_nin,
    nin_system,
)

SOURCE = "municipal"
# Each kind's systems: the OID (what no-basis requires) and the NamingSystem URI some stores use.
SYSTEMS: Mapping[str, tuple[str, ...]] = {
    FNR_SYSTEM: (FNR_SYSTEM, "http://hl7.no/fhir/NamingSystem/FNR"),
    DNR_SYSTEM: (DNR_SYSTEM, "http://hl7.no/fhir/NamingSystem/DNR"),
    FHN_SYSTEM: (FHN_SYSTEM, "http://hl7.no/fhir/NamingSystem/FHNR"),
}
_LITERAL = re.compile(r"^(?:(?P<base>https?://\S+?)/)?Patient/(?P<id>[A-Za-z0-9\-.]{1,64})"
                      r"(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


def _invalid(message: str) -> UpstreamInvalidError:
    return UpstreamInvalidError(SOURCE, f"Source {SOURCE!r} {message}.")


def person_systems(nin: str) -> tuple[str, ...]:
    """The identifier systems that may carry `nin` (by its kind)."""
    return SYSTEMS[nin_system(nin) if is_valid_nin(nin) else FNR_SYSTEM]


def identifier_query(nin: str) -> str:
    """The token search value for `nin` under every system of its kind (`,` is OR)."""
    return ",".join(f"{system}|{nin}" for system in person_systems(nin))


def carries(identifiers: Any, nin: str) -> bool:
    """True when one identifier is `nin` under a system of its kind."""
    systems = person_systems(nin)
    found = identifiers if isinstance(identifiers, list) else [identifiers]
    return any(isinstance(i, dict) and i.get("system") in systems
               and isinstance(i.get("value"), str) and i["value"].strip() == nin
               for i in found)


@dataclass(frozen=True, slots=True)
class StorePatient:
    """The store's one Patient for this person: its logical id, on the store's base URL."""

    id: str
    base: str
    linked: bool = False  # `Patient.link` to another record (replaces, refer, seealso)


def resolve_patient(entries: Iterable[Mapping[str, Any]], nin: str, base: str
                    ) -> StorePatient | None:
    """The one Patient of a Patient search that is this person, or None when there is none.

    Several Patients for the person are `UpstreamInvalidError` (never merged, linked or not); a
    matched Patient that is not this person means the store ignored the search; a Patient
    `replaced-by` another is a record Kilde cannot vouch for; a Patient with another link
    (`replaces`, `refer`, `seealso`) is `linked`: its own records are read, the linked
    record's are not, and the answer is PARTIAL. `active = false` is still the person (a
    record no longer in use keeps its history).
    """
    found: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        resource = entry.get("resource")
        mode = _mode(entry)
        if not isinstance(resource, dict) or mode in ("include", "outcome"):
            continue
        if resource.get("resourceType") == "OperationOutcome":
            continue
        if resource.get("resourceType") != "Patient":
            raise _invalid("answered a patient search with another kind of resource")
        if not carries(resource.get("identifier"), nin):
            raise _invalid("answered a patient search with another person's record")
        rid = resource.get("id")
        if not isinstance(rid, str) or not _LITERAL.match(f"Patient/{rid}"):
            raise _invalid("sent a Patient without a usable id")
        found[rid] = resource
    if not found:
        return None
    if len(found) > 1:
        raise _invalid("holds several patient records for this person; they are not merged")
    ((rid, resource),) = found.items()
    links = resource.get("link")
    if links is not None and not (isinstance(links, list)
                                  and all(isinstance(link, dict) for link in links)):
        raise _invalid("sent a Patient whose links cannot be read")
    kinds = {link.get("type") for link in links or []}
    if "replaced-by" in kinds:
        raise _invalid("holds this person's patient record as replaced by another; "
                       "Kilde does not follow the link")
    # Another record of the same person (an older one it replaces, a seealso/refer): its
    # records are not read (never merged silently), and the answer says so.
    return StorePatient(rid, base, linked=bool(links))


def _mode(entry: Mapping[str, Any]) -> str:
    search = entry.get("search")
    mode = search.get("mode") if isinstance(search, dict) else None
    return mode if isinstance(mode, str) else "match"


def _same_base(base: str, other: str) -> bool:
    return base.rstrip("/").casefold() == other.rstrip("/").casefold()


def refers_to(subject: Any, patient: StorePatient, nin: str, *,
              contained: Iterable[Any] = (), full_urls: Mapping[str, Any] | None = None) -> bool:
    """True when a record's subject/patient element is `patient`: a literal reference (relative,
    absolute on this store's base, versioned), a contained Patient, a bundle-local `urn:` or an
    identifier, each carrying this person; anything else (missing, another id, another server,
    another type, display only) is False."""
    if not isinstance(subject, dict):
        return False
    identifier = subject.get("identifier")
    if identifier is not None and not carries(identifier, nin):
        return False
    reference = subject.get("reference")
    if reference is None:
        return identifier is not None
    if not isinstance(reference, str):
        return False
    if reference.startswith("#"):
        return any(isinstance(c, dict) and c.get("resourceType") == "Patient"
                   and c.get("id") == reference[1:] and carries(c.get("identifier"), nin)
                   for c in contained)
    if reference.startswith("urn:"):
        target = (full_urls or {}).get(reference)
        return (isinstance(target, dict) and target.get("resourceType") == "Patient"
                and (target.get("id") == patient.id or carries(target.get("identifier"), nin)))
    literal = _LITERAL.match(reference)
    if literal is None or literal["id"] != patient.id:
        return False
    return literal["base"] is None or _same_base(literal["base"], patient.base)
