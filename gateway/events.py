"""`POST /events`: an upstream says a patient's data changed: cached entries go, watchers hear.

Sits at the HTTP edge beside the GraphQL endpoint. The municipal event store (kommunens
hendelseslager "receives events") - or any source's notifier - posts

    {"source": "municipal", "patient": "<identity number>",
     "categories": ["treatment_limitations"], "municipality": "4601",
     "changedAt": "2026-12-02T01:00:00Z"}

(`categories`, `municipality` and `changedAt` are optional: every category the source serves,
any of its stores, now) with a token carrying the scope `kilde/events.write` (the policy
file's `[scopes] events`), usually a machine's token (client credentials, no person: the one
door such a token may use). The cache bumps that patient's generation for that source, so every
entry for them there is unreachable from then on, and the change bus (gateway/live) tells the
live subscribers of that patient, on every replica, what changed - never the data itself.
Answers 202 when done, 401/403 for bad tokens, 400 for bad input, 503 when the cache store
cannot record it (the sender should retry; subscribers were told, and entries expire within
their TTL anyway). FHIR stores' subscription notifications come in at `POST /events/fhir/
<source>` (gateway/live/notification.py) and end in `apply_change` too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from connectors.cache import Cache
from connectors.cachestore import CacheUnavailableError
from connectors.errors import UpstreamUnavailableError
from connectors.identifiers import is_valid_nin
from connectors.registry import Registry
from gateway.auth import Authenticator, AuthError
from gateway.auth.door import authenticate_request, challenge
from gateway.live import ChangeBus
from gateway.live.notification import QUIET_TYPES, NotificationError, changes_in, notification_type
from schema.errors import BadUserInputError, ForbiddenError, KildeError, error_dict

log = logging.getLogger("kilde.events")

MAX_EVENT_BYTES = 4096
MAX_NOTIFICATION_BYTES = 512 * 1024  # a full-resource notification carries the resources
EXAMPLE = ('{"source": "municipal", "patient": "<identity number>", "categories": '
           '["treatment_limitations"]}')


def _answer(status: int, payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(status: int, error: KildeError) -> Response:
    return _answer(status, {"errors": [error_dict(error)]})


class EventError(ValueError):
    """An event that cannot be applied: 400 BAD_USER_INPUT with this message."""


async def authenticate_event_sender(request: Request, authenticator: Authenticator
                                    ) -> Response | None:
    """None when the caller may post events (the events scope), else the error response."""
    scope = authenticator.trust.events_scope
    try:
        principal = await authenticate_request(request, authenticator, machine_scope=scope)
    except AuthError as exc:
        return challenge(_error(exc.status, exc), exc, authenticator)
    if scope not in principal.scopes:
        return _error(403, ForbiddenError(f"Posting events needs the scope {scope!r}."))
    return None


def check_change(registry: Registry, source: Any, nin: Any, categories: Any = (),
                 municipality: Any = None) -> tuple[str, str, tuple[str, ...], str | None]:
    """The event's parts, checked: a known source, a valid identity number, categories that
    source serves, a municipality number; EventError otherwise."""
    if not isinstance(source, str) or not isinstance(nin, str):
        raise EventError(f"An event must be a JSON object like {EXAMPLE}.")
    entry = registry.get(source)
    if entry is None:
        raise EventError(f"Unknown source {source!r}; one of {list(registry.names)}.")
    if not is_valid_nin(nin):
        raise EventError("The patient is not a valid national identity number.")
    if not isinstance(categories, list | tuple) or not all(
            isinstance(c, str) for c in categories):
        raise EventError("'categories' must be a list of category names like "
                         "'treatment_limitations'.")
    served = sorted(c.value for c in entry.connector.categories)
    unknown = [c for c in categories if c not in served]
    if unknown:
        raise EventError(f"Source {source!r} serves no category {unknown[0]!r}; one of "
                         f"{served}.")
    if municipality is not None and not (isinstance(municipality, str)
                                         and len(municipality) == 4 and municipality.isdigit()):
        raise EventError("'municipality' must be a four-digit municipality number.")
    return source, nin, tuple(dict.fromkeys(categories)), municipality


async def apply_change(cache: Cache | None, bus: ChangeBus | None, *, source: str, nin: str,
                       categories: Sequence[str], municipality: str | None, origin: str,
                       changed_at: datetime | None = None) -> bool | None:
    """Evict the patient's entries at `source` and tell the watchers. True when evicted, None
    when there is no cache; CacheUnavailableError after the watchers were told."""
    if bus is not None:  # first: a dead Redis must not keep the change from this replica
        await bus.publish(nin=nin, source=source, categories=categories, origin=origin,
                          municipality=municipality, changed_at=changed_at)
    if cache is None:
        return None
    await cache.evict(source, nin)
    return True


def _changed_at(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None:
        raise EventError("'changedAt' must be a time with its zone, like "
                         "2026-12-02T01:00:00Z.")
    return when


async def handle_event(request: Request, authenticator: Authenticator, registry: Registry,
                       cache: Cache | None, bus: ChangeBus | None = None) -> Response:
    refused = await authenticate_event_sender(request, authenticator)
    if refused is not None:
        return refused
    body = await request.body()
    try:
        if len(body) > MAX_EVENT_BYTES:
            raise EventError(f"An event is at most {MAX_EVENT_BYTES} bytes.")
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise EventError(f"An event must be a JSON object like {EXAMPLE}.") from None
        if not isinstance(event, dict) or "source" not in event or "patient" not in event:
            raise EventError(f"An event must be a JSON object like {EXAMPLE}.")
        source, nin, categories, municipality = check_change(
            registry, event["source"], event["patient"], event.get("categories", ()),
            event.get("municipality"))
        changed_at = _changed_at(event.get("changedAt"))
    except EventError as exc:
        return _error(400, BadUserInputError(str(exc)))
    try:
        evicted = await apply_change(cache, bus, source=source, nin=nin, categories=categories,
                                     municipality=municipality, origin="events",
                                     changed_at=changed_at)
    except CacheUnavailableError:
        log.warning("event for source %s not applied: cache store unavailable", source)
        return _error(503, UpstreamUnavailableError("cache", "The cache could not record the event; "
                      "send it again shortly."))
    if evicted is None:
        return _answer(202, {"source": source, "evicted": False, "cache": "disabled"})
    return _answer(202, {"source": source, "evicted": True})


async def handle_fhir_notification(request: Request, authenticator: Authenticator,
                                   registry: Registry, cache: Cache | None,
                                   bus: ChangeBus | None, source: str) -> Response:
    """`POST /events/fhir/<source>`: a FHIR store's subscription notification (R4 backport,
    gateway/live/notification.py). 200 for a handshake or heartbeat, 202 when its changes are
    applied, 400 malformed, 422 when a change names no patient, 503 as for /events."""
    refused = await authenticate_event_sender(request, authenticator)
    if refused is not None:
        return refused
    entry = registry.get(source)
    if entry is None:
        return _error(404, BadUserInputError(f"Unknown source {source[:40]!r}; one of "
                      f"{list(registry.names)}."))
    body = await request.body()
    try:
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise NotificationError(f"A notification is at most {MAX_NOTIFICATION_BYTES} "
                                    "bytes.")
        try:
            bundle = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise NotificationError("A notification must be a FHIR JSON Bundle.") from None
        kind = notification_type(bundle)
        if kind in QUIET_TYPES:
            return _answer(200, {"type": kind, "changes": 0})
        changes = changes_in(bundle, source, entry.settings.stores)
    except NotificationError as exc:
        return _error(exc.status, BadUserInputError(str(exc)))
    try:
        for change in changes:
            await apply_change(cache, bus, source=source, nin=change.nin,
                               categories=change.categories, municipality=change.municipality,
                               origin="fhir-subscription", changed_at=change.changed_at)
    except CacheUnavailableError:
        log.warning("notification for source %s not applied: cache store unavailable", source)
        return _error(503, UpstreamUnavailableError("cache", "The cache could not record the change; "
                      "send it again shortly."))
    return _answer(202, {"type": kind, "changes": len(changes)})
