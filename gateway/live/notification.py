"""FHIR subscription notifications: a FHIR store says what changed, in the R4 backport shape.

Sits at `POST /events/fhir/<source>` beside `POST /events`, for FHIR stores that notify
through topic-based subscriptions (HL7 "Subscriptions R5 Backport" IG on R4: a rest-hook
channel whose `header` carries the events-scope token Kilde requires). A notification is a
`Bundle` of type `history` whose first entry is a `Parameters` resource (profile
backport-subscription-status-r4) with `type` (handshake, heartbeat, event-notification, ...)
and one `notification-event` per change (`focus`: a reference to the changed resource). The
changed resources follow as entries (`full-resource` content) or only their URLs (`id-only`).

Kilde needs the patient of each change, and takes it from the bundle only: the focus
resource's subject or patient as an identifier with a Norwegian person-number system, or as a
reference to a `Patient` entry carrying one. A notification naming no patient cannot be applied
(422): send `full-resource` content, or the Patient as `additional-context`. The category
comes from the resource type (the municipal store's own reading table); a privacy Consent, or a
type Kilde does not read, means every category. The municipality is the store whose base URL
the entries' `fullUrl`s start with. Nothing of the resources is kept or passed on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.identifiers import PERSON_SYSTEMS, is_valid_nin
from connectors.municipal.mapping import SUBJECT
from connectors.municipal.reading import SEARCHES

EVENT_TYPES = ("event-notification",)
QUIET_TYPES = ("handshake", "heartbeat", "query-status", "query-event")
# resource type -> category the municipal store serves it under
MUNICIPAL_CATEGORIES: Mapping[str, str] = {s.resource_type: c.value for c, s in SEARCHES}
MAX_EVENTS = 100


class NotificationError(ValueError):
    """A notification that cannot be applied; `status` 400 (malformed) or 422 (no patient)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class NotifiedChange:
    nin: str
    categories: tuple[str, ...]
    changed_at: datetime | None
    municipality: str | None


def _parameters(resource: Any) -> dict[str, list[Any]]:
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise NotificationError("A notification's first entry must be a Parameters resource "
                                "(SubscriptionStatus, R4 backport).")
    found: dict[str, list[Any]] = {}
    for parameter in resource.get("parameter") or []:
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            found.setdefault(parameter["name"], []).append(parameter)
    return found


def notification_type(bundle: Any) -> str:
    """The SubscriptionStatus `type` of a notification bundle; NotificationError if it is not
    one."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" \
            or bundle.get("type") != "history":
        raise NotificationError("A subscription notification is a FHIR Bundle of type "
                                "'history'.")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise NotificationError("The notification Bundle has no entries.")
    kind = (_parameters(entries[0].get("resource")).get("type") or [{}])[0].get("valueCode")
    if kind not in EVENT_TYPES + QUIET_TYPES:
        raise NotificationError(f"Unknown notification type {str(kind)[:40]!r}; one of "
                                f"{list(EVENT_TYPES + QUIET_TYPES)}.")
    return str(kind)


def _relative(url: str) -> str:
    """'Consent/abc' of 'http://store/fhir/Consent/abc' (and of 'Consent/abc')."""
    parts = url.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else url


def _person(identifiers: Any) -> str | None:
    for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(identifier, dict) and identifier.get("system") in PERSON_SYSTEMS \
                and isinstance(identifier.get("value"), str) and is_valid_nin(identifier["value"]):
            return str(identifier["value"])
    return None


def _time(value: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when if when is not None and when.utcoffset() is not None else None


def changes_in(bundle: dict[str, Any], source: str,
               stores: Mapping[str, str]) -> list[NotifiedChange]:
    """The changes an event-notification bundle reports; NotificationError (422) when one of
    them names no patient Kilde can identify."""
    entries = [e for e in bundle["entry"] if isinstance(e, dict)]
    by_ref: dict[str, tuple[dict[str, Any], str]] = {}
    for entry in entries[1:]:
        resource, url = entry.get("resource"), entry.get("fullUrl")
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            ref = f"{resource['resourceType']}/{resource.get('id', '')}"
            full = url if isinstance(url, str) else ""
            by_ref[ref] = (resource, full)
            if full:
                by_ref[_relative(full)] = (resource, full)
    events = _parameters(entries[0].get("resource")).get("notification-event") or []
    if len(events) > MAX_EVENTS:
        raise NotificationError(f"A notification carries at most {MAX_EVENTS} events.")
    changes = []
    for event in events:
        parts = {p.get("name"): p for p in event.get("part") or [] if isinstance(p, dict)}
        focus = (parts.get("focus") or {}).get("valueReference") or {}
        target = by_ref.get(_relative(str(focus.get("reference", ""))))
        if target is None:
            raise NotificationError("A notification event's focus is not in the bundle, so "
                                    "its patient is unknown; send full-resource content.", 422)
        resource, full_url = target
        nin = _patient_of(resource, by_ref)
        if nin is None:
            raise NotificationError("A notification event names no patient with a Norwegian "
                                    "identity number; include the Patient (additional-context)"
                                    " or its identifier in the subject.", 422)
        kind = str(resource["resourceType"])
        category = MUNICIPAL_CATEGORIES.get(kind) if source == "municipal" else None
        if kind == "Consent" and _is_privacy(resource):
            category = None  # a restriction (sperring) changes what every category shows
        changes.append(NotifiedChange(
            nin=nin, categories=(category,) if category else (),
            changed_at=_time((parts.get("timestamp") or {}).get("valueInstant")),
            municipality=_store_of(full_url, stores)))
    return changes


def _patient_of(resource: dict[str, Any], by_ref: Mapping[str, tuple[dict[str, Any], str]]
                ) -> str | None:
    if resource.get("resourceType") == "Patient":
        return _person(resource.get("identifier"))
    field = SUBJECT.get(str(resource["resourceType"]), "subject")
    subject = resource.get(field) or resource.get("subject") or resource.get("patient")
    if not isinstance(subject, dict):
        return None
    nin = _person(subject.get("identifier"))
    if nin is not None:
        return nin
    patient = by_ref.get(_relative(str(subject.get("reference", ""))))
    return _person(patient[0].get("identifier")) if patient is not None else None


def _is_privacy(resource: dict[str, Any]) -> bool:
    codings = ((resource.get("scope") or {}).get("coding") or [])
    return any(isinstance(c, dict) and c.get("code") == "patient-privacy" for c in codings)


def _store_of(url: str, stores: Mapping[str, str]) -> str | None:
    for number, base in stores.items():
        if url and base and url.startswith(base.rstrip("/") + "/"):
            return number
    return None
