"""Audit export: a stretch of the trail as FHIR, streamed, never held in memory whole.

Sits after the sink: `kilde audit export` (gateway/cli.py) and the privacy officer's HTTP
export (gateway/audit/routes.py) feed `sink.stream(...)` into one of `FORMATS`: `fhir`, one
Bundle (type collection) of AuditEvents in HL7 Norway's profile, or `ndjson`, one AuditEvent
per line (the FHIR bulk-data form, for very large exports). `bounds` reads the command's and
the endpoint's `from`/`to` the same way.

>>> bounds("2026-03-01", "2026-03-31")[1].isoformat()
'2026-04-01T00:00:00+00:00'
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta

import orjson

from gateway.audit.events import AuditEvent, format_time
from gateway.audit.fhir import to_fhir_audit_event
from schema.errors import InvalidValueError

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"


def _full_url(event_id: str) -> str | None:
    try:
        return uuid.UUID(event_id).urn
    except ValueError:
        return None


def _entry(event: AuditEvent) -> bytes:
    entry: dict[str, object] = {"resource": to_fhir_audit_event(event)}
    full_url = _full_url(event.event_id)
    if full_url:
        entry = {"fullUrl": full_url, **entry}
    return orjson.dumps(entry)


async def fhir_bundle(events: AsyncIterable[AuditEvent], *,
                      now: datetime | None = None) -> AsyncIterator[bytes]:
    """A FHIR Bundle (type `collection`) with one entry per event, as JSON chunks."""
    stamp = format_time(now or datetime.now(UTC))
    head = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": stamp},
            "type": "collection", "timestamp": stamp}
    yield orjson.dumps(head)[:-1] + b',"entry":['
    separator = b""
    async for event in events:
        yield separator + _entry(event)
        separator = b","
    yield b"]}"


async def fhir_ndjson(events: AsyncIterable[AuditEvent], *,
                      now: datetime | None = None) -> AsyncIterator[bytes]:
    """One AuditEvent resource per line (newline-delimited JSON)."""
    async for event in events:
        yield orjson.dumps(to_fhir_audit_event(event)) + b"\n"


Writer = Callable[..., AsyncIterator[bytes]]
FORMATS: dict[str, tuple[str, Writer]] = {
    "fhir": (FHIR_JSON, fhir_bundle),
    "ndjson": (FHIR_NDJSON, fhir_ndjson),
}


def _instant(value: str, name: str, *, end: bool) -> datetime:
    """A date (UTC midnight; as an end, the day is included) or an ISO 8601 date-time (UTC
    when it has no offset)."""
    text = value.strip()
    try:  # only the parse: nothing else here can raise into this handler
        parsed = (date.fromisoformat(text) if len(text) == 10
                  else datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidValueError(f"{name!r} must be a date like 2026-03-01 or a date-time like "
                                "2026-03-01T12:00:00Z.", argument=name) from None
    if not isinstance(parsed, datetime):
        moment = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
        return moment + timedelta(days=1) if end else moment
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)


def bounds(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """[start, end) for the export's `from` and `to` (either may be missing: open-ended)."""
    low = _instant(start, "from", end=False) if start else None
    high = _instant(end, "to", end=True) if end else None
    if low is not None and high is not None and high <= low:
        raise InvalidValueError("'to' must be later than 'from'.", argument="to")
    return low, high
