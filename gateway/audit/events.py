"""Audit events: the record the gateway writes for every delivery, before the data leaves.

Sits at the end of the request flow: resolvers build one `AuditEvent` per delivery (or denial)
and hand it to the `AuditSink`. `canonical_bytes` is the exact byte string that is stored and
hashed into the chain, so it must never change for an existing event: sorted keys, no
whitespace, ASCII only, UTC timestamps with microseconds. Fields added after the first version
(`ADDED_FIELDS`) are written only when set, so a row stored before they existed still
serialises to exactly its stored bytes and `kilde audit verify` passes on old and new rows.

>>> e = AuditEvent(request_id="r1", outcome="DELIVERED", reason="PERMITTED",
...                principal_kind="CLINICIAN", actor_person_id="04125845687", client_id="epj")
>>> event_from_json(canonical_bytes(e)) == e
True
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson

OUTCOMES = ("DELIVERED", "DENIED",
            # a write (`action` "create"): the attempt, before the store is called, then one of
            # its outcomes: recorded, refused by the store, failed before the record was sent,
            # or not known (timeout or no answer to the record itself)
            "WRITE_ATTEMPTED", "WRITTEN", "WRITE_REJECTED", "WRITE_FAILED", "WRITE_UNKNOWN")
# Fields added since the first stored events; omitted from the stored form while None.
ADDED_FIELDS = frozenset({"toa", "action", "record_category", "record_store", "record_id",
                          "attempt_id", "replayed", "patient_municipality"})
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one source served for one category in the audited request.

    `status` is the `SourceStatus.status` string ("OK", "STALE", "DENIED", ...) and `count` the
    number of items handed to the caller (0 when nothing was delivered). `municipality` is the
    municipality whose own store the items came from (its data controller); None for a national
    source. Added after the first stored events: written only when set, so old rows keep
    their bytes.
    """

    category: str
    source: str
    status: str
    count: int
    municipality: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"Delivery.count must be a non-negative int, got {self.count!r}.")


def _now() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    """A random UUID (version 4) as text: the layout of `str(uuid.uuid4())`, formatted from
    16 random bytes without `uuid.UUID`'s checks and int conversions (one per event)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One audited access: who, for which patient, why, what was delivered, and the decision.

    `event_id` and `recorded_at` default to a new uuid4 and now (UTC). `recorded_at` must be
    timezone-aware; it is normalised to UTC. `outcome` is "DELIVERED" or "DENIED"; `reason`
    the policy decision's reason code. `actor_person_id` is the caller's fødselsnummer: it is
    for the audit trail only and never appears in logs (the FHIR export names the practitioner
    by HPR number, and by this number only when they have none). `toa` is the time of
    attestation (Unix seconds) of the care-relationship attest the access relied on, recorded
    when the data was delivered (HL7 Norway's AuditEvent requires it). A write is recorded
    twice: WRITE_ATTEMPTED before the store is called, then WRITTEN, WRITE_REJECTED (the store
    refused), WRITE_FAILED (it failed before the record was sent) or WRITE_UNKNOWN, with
    `attempt_id` naming the attempt. `patient_municipality` is the patient's home municipality as the population registry gave it when the access
    was made (None: not known then); with the deliveries' store municipalities it says whose
    privacy officer oversees the access (`concerned_municipalities`, docs/policies.md).
    """

    event_id: str = field(default_factory=new_event_id)
    recorded_at: datetime = field(default_factory=_now)
    request_id: str
    outcome: str
    reason: str
    principal_kind: str
    actor_person_id: str
    actor_name: str | None = None
    actor_hpr: str | None = None
    actor_profession: str | None = None
    actor_profession_text: str | None = None
    legal_entity: str | None = None
    legal_entity_name: str | None = None
    point_of_care: str | None = None
    point_of_care_name: str | None = None
    actor_municipality: str | None = None
    client_id: str = ""
    patient_nin: str | None = None
    purpose_of_use: str | None = None
    decision_ref: str | None = None
    decision_description: str | None = None
    user_selected: bool = False
    emergency: bool = False
    emergency_reason: str | None = None
    deliveries: tuple[Delivery, ...] = ()
    toa: int | None = None
    # writes: what was asked ("create"), of which category, in which municipality's store; the
    # store's record id once known; the attempt an outcome answers; a repeat answered from
    # the first result (Idempotency-Key) without calling the store again
    action: str | None = None
    record_category: str | None = None
    record_store: str | None = None
    record_id: str | None = None
    attempt_id: str | None = None
    replayed: bool | None = None
    patient_municipality: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"AuditEvent.outcome must be one of {OUTCOMES}, got {self.outcome!r}.")
        if not isinstance(self.recorded_at, datetime) or self.recorded_at.utcoffset() is None:
            raise ValueError("AuditEvent.recorded_at must be a timezone-aware datetime.")
        object.__setattr__(self, "recorded_at", self.recorded_at.astimezone(UTC))
        object.__setattr__(self, "deliveries", tuple(self.deliveries))
        if self.toa is not None and (isinstance(self.toa, bool) or not isinstance(self.toa, int)
                                     or self.toa < 0):
            raise ValueError(f"AuditEvent.toa must be Unix seconds, got {self.toa!r}.")


# (name, added since the first version) per field, in declaration order: read once, not per
# event (`dataclasses.fields` builds its tuple on every call)
_FIELDS = tuple((f.name, f.name in ADDED_FIELDS) for f in fields(AuditEvent))


def _to_dict(event: AuditEvent) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, added in _FIELDS:
        value = getattr(event, name)
        if added and value is None:
            continue  # absent in rows written before the field existed: keep their bytes
        if name == "recorded_at":
            value = format_time(value)
        elif name == "deliveries":
            value = [_delivery_dict(d) for d in value]
        data[name] = value
    return data


def _delivery_dict(d: Delivery) -> dict[str, Any]:
    out: dict[str, Any] = {"category": d.category, "source": d.source, "status": d.status,
                           "count": d.count}
    if d.municipality is not None:  # absent in rows written before deliveries named a store
        out["municipality"] = d.municipality
    return out


def concerned_municipalities(event: AuditEvent) -> frozenset[str]:
    """The municipalities whose privacy officer oversees `event` (the data controllers).

    - the patient's home municipality, when the event records it;
    - each municipality whose own store delivered at least one item, or was written to
      (`record_store`);
    - when the event records no home municipality and either delivered nothing from any
      store or delivered something from a national source: the municipality of the person
      who asked (a national source's data, or a refused attempt, of a patient whose home is
      unknown is overseen by the asking personnel's municipality, so no event is nobody's).

    Both stores implement the same rule in SQL (`municipality=` in `query`/`stream`/`usage`);
    tests compare them with this function.
    """
    out: set[str] = set()
    if event.patient_municipality:
        out.add(event.patient_municipality)
    delivered = [d for d in event.deliveries if d.count > 0]
    out.update(d.municipality for d in delivered if d.municipality)
    if event.record_store:
        out.add(event.record_store)
    from_stores = any(d.municipality for d in delivered)
    national = any(not d.municipality for d in delivered)
    if (not event.patient_municipality and event.actor_municipality
            and (national or not from_stores)):
        out.add(event.actor_municipality)
    return frozenset(out)


def delivery_municipality(event: AuditEvent, delivery: Delivery) -> str | None:
    """Whose privacy officer counts `delivery` in their usage report: its store's
    municipality; for a national source the patient's recorded home municipality, else the
    asking personnel's (the same rule as `concerned_municipalities`)."""
    return delivery.municipality or event.patient_municipality or event.actor_municipality


def _storable_text(value: str) -> str:
    if "\x00" not in value and not _SURROGATE.search(value):
        return value
    return _SURROGATE.sub("\ufffd", value.replace("\x00", "\ufffd"))


def _texts(event: AuditEvent) -> Iterator[str]:
    for name, _ in _FIELDS:
        value = getattr(event, name)
        if isinstance(value, str):
            yield value
    for d in event.deliveries:
        yield d.category
        yield d.source
        yield d.status
        if d.municipality is not None:
            yield d.municipality


def storable(event: AuditEvent) -> AuditEvent:
    """`event` as the stores write it: a NUL or a lone UTF-16 surrogate in any text becomes
    U+FFFD. Neither can live in PostgreSQL text (its JSON functions refuse the whole row, so
    one such value would break every report, forever, in an append-only table); input
    validation refuses them at the edge, and this keeps the store safe from any other path."""
    # one search over every text at once (the separator is neither a NUL nor a surrogate):
    # nearly every event has nothing to replace and is returned as it is
    if not _UNSTORABLE.search("\n".join(_texts(event))):
        return event
    changes: dict[str, Any] = {}
    for name, _ in _FIELDS:
        value = getattr(event, name)
        if isinstance(value, str) and _storable_text(value) != value:
            changes[name] = _storable_text(value)
    deliveries = tuple(Delivery(_storable_text(d.category), _storable_text(d.source),
                                _storable_text(d.status), d.count,
                                None if d.municipality is None
                                else _storable_text(d.municipality))
                       for d in event.deliveries)
    if deliveries != event.deliveries:
        changes["deliveries"] = deliveries
    return replace(event, **changes) if changes else event


# The canonical form is `json.dumps(..., sort_keys=True, separators=(",", ":"),
# ensure_ascii=True)`: this encoder (built once; it keeps no state between calls) writes it
# whenever the faster path below cannot be sure to write the same bytes.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
# Values orjson writes exactly as that encoder does (apart from the escapes `_ascii` adds):
# text, ints within 64 bits (orjson refuses larger ones), booleans, null. Not floats (their
# shortest forms differ: 1e16 against 1e+16), not str subclasses, not the types orjson would
# serialise where json refuses (datetime, UUID, dataclasses, enums).
_SCALARS = frozenset({str, int, bool, type(None)})
_NOT_ASCII = re.compile("[^\x00-\x7e]")  # what ensure_ascii escapes that orjson writes raw


def _escape(match: re.Match[str]) -> str:
    """json's `ensure_ascii` escape of one character: \\uXXXX, a UTF-16 pair above U+FFFF."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _plain(data: dict[str, Any]) -> bool:
    """True when every value of `data` (and of its deliveries' dicts) is in `_SCALARS`."""
    values = list(data.values())
    deliveries = data.get("deliveries")
    if type(deliveries) is list:
        values.remove(deliveries)
        values.extend(chain.from_iterable(map(dict.values, deliveries)))
    return _SCALARS.issuperset(map(type, values))


def canonical_bytes(event: AuditEvent) -> bytes:
    """The stable serialisation of `event` that is stored and hashed (sorted-key ASCII JSON).

    Written by orjson when every value is one it writes as json does (sorted keys, no
    whitespace, the same escapes of quotes, backslashes and control characters), with
    every character outside U+0000-U+007E then escaped as `ensure_ascii` escapes it (it
    can only stand inside a string); by json itself otherwise (a lone surrogate, an int
    beyond 64 bits, any other type). The same bytes either way (tests/gateway/
    test_audit_hostile_values.py compares them over every code point)."""
    data = _to_dict(event)
    if _plain(data):
        try:
            out = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
        else:
            if out.isascii() and b"\x7f" not in out:
                return out
            return _NOT_ASCII.sub(_escape, out.decode()).encode("ascii")
    return _CANONICAL.encode(data).encode("ascii")


def event_from_json(body: bytes | str) -> AuditEvent:
    """The event `canonical_bytes` produced; raises ValueError when `body` is not one."""
    try:
        data = json.loads(body)
        data["recorded_at"] = parse_time(data["recorded_at"])
        data["deliveries"] = tuple(Delivery(**d) for d in data["deliveries"])
        return AuditEvent(**data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError("The stored audit event is not a valid serialised AuditEvent.") from exc


def format_time(value: datetime) -> str:
    """UTC, microsecond precision, `Z` suffix: the timestamp form used in stored events."""
    utc = value.astimezone(UTC)
    if utc.year >= 1000:  # isoformat (C, no format string to parse) writes the same digits
        return utc.isoformat(timespec="microseconds")[:-6] + "Z"  # less its "+00:00"
    return utc.strftime(_TIME_FORMAT)  # strftime's %Y of a year below 1000 is the platform's


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
