"""No value stored in the audit trail can break a report: hostile text written straight to
each store (SQLite and PostgreSQL), through today's write path and as a row written before
values were made storable, and the usage report, the access log and verification still work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from gateway.audit import AuditSink, Delivery, open_audit_sink
from gateway.audit.events import canonical_bytes, storable
from tests.gateway.audit_support import BASE, PATIENT_A, event, full_event

HOSTILE = [
    "nul\x00byte",
    "\x00",
    "lone \ud800 high",
    "lone \udfff low",
    "esc \x1b[31m red \x1b[0m",
    "c1 \x85\x9b",
    "back\\slash \\u0000 written out",
    "\\\x00 escaped backslash then NUL",
    'quote " and }]',
    "emoji 🏃 and æøå",
    "x" * 100_000,
    "\ufffe\uffff",
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/audit.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def sink(url: str) -> AsyncIterator[AuditSink]:
    opened = await open_audit_sink(url, retention_days=3650)
    try:
        yield opened
    finally:
        await opened.aclose()


def _hostile_events() -> list:
    events = []
    for i, text in enumerate(HOSTILE):
        events.append(full_event(
            event_id=f"00000000-0000-4000-8000-{i:012d}", recorded_at=BASE + timedelta(
                minutes=i), emergency_reason=text, actor_name=text, decision_description=text,
            point_of_care_name=text, request_id=text[:64],
            deliveries=(Delivery("medications", "pll", "OK", 3),
                        Delivery(text[:40], text[:40], "OK", 1))))
    return events


async def _reports_work(sink: AuditSink) -> None:
    rows = await sink.usage(start=None, end=None)
    pll = [r for r in rows if r.source == "pll" and r.category == "medications"]
    assert sum(r.items for r in pll) == 3 * len(HOSTILE) + 2
    page = await sink.query(patient_nin=PATIENT_A, start=None, end=None, first=1000,
                            after=None)
    assert page.total == len(HOSTILE) + 1
    assert len(page.events) == page.total
    emergency = await sink.query(patient_nin=None, start=None, end=None, first=1000,
                                 after=None, actor_municipality="0301", emergency_only=True)
    assert emergency.total == len(HOSTILE)  # full_event: Oslo's legevakt, emergency
    streamed = [e async for e in sink.stream(actor_municipality="0301")]
    assert len(streamed) == len(HOSTILE)
    check = await sink.verify()
    assert check.ok, check.problems


async def test_hostile_text_written_now_leaves_every_report_working(sink: AuditSink) -> None:
    await sink.write(event(0, deliveries=(Delivery("medications", "pll", "OK", 2),)))
    for e in _hostile_events():
        await sink.write(e)
    await _reports_work(sink)
    page = await sink.query(patient_nin=PATIENT_A, start=None, end=None, first=1000,
                            after=None)
    stored = {e.emergency_reason for e in page.events}
    assert "nul\ufffdbyte" in stored  # what cannot be stored is replaced, visibly
    assert "esc \x1b[31m red \x1b[0m" in stored  # the rest is kept as written
    assert "back\\slash \\u0000 written out" in stored


async def test_rows_written_before_values_were_made_storable_do_not_break_usage(
        sink: AuditSink) -> None:
    """The pre-fix write path stored NUL and lone surrogates as JSON escapes; an append-only
    table keeps such rows for the whole retention period."""
    await sink.write(event(0, deliveries=(Delivery("medications", "pll", "OK", 2),)))
    legacy = _hostile_events()[:4]
    for e in legacy:
        assert canonical_bytes(storable(e)) != canonical_bytes(e)  # these really are hostile
        await sink._committer.submit(_row(sink, e))  # type: ignore[attr-defined]
    for e in _hostile_events()[4:]:
        await sink.write(e)
    await _reports_work(sink)


def _row(sink: AuditSink, e: object) -> tuple:
    from gateway.audit.sink import to_micros

    recorded = e.recorded_at  # type: ignore[attr-defined]
    when = to_micros(recorded) if type(sink).__name__ == "SqliteAuditSink" else recorded
    return (e.event_id, when, e.patient_nin, canonical_bytes(e))  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", [*HOSTILE, "plain", "", "æøå ÆØÅ"])
@pytest.mark.parametrize("where", ["field", "delivery"])
def test_storable_replaces_exactly_what_the_per_field_rule_replaces(text: str,
                                                                     where: str) -> None:
    """`storable` searches every text at once; the answer is the one replacing each field's
    NULs and lone surrogates on its own would give, and a clean event comes back as itself."""
    from gateway.audit.events import _storable_text

    changes: dict[str, object] = ({"actor_name": text} if where == "field" else {
        "deliveries": (Delivery(text[:40], "pll", "OK", 1, text[:4] or None),)})
    e = full_event(**changes)
    got = storable(e)
    if where == "field":
        assert got.actor_name == _storable_text(text)
    else:
        d = got.deliveries[0]
        assert (d.category, d.municipality) == (_storable_text(text[:40]),
                                                _storable_text(text[:4]) if text[:4] else None)
    clean = _storable_text(text) == text
    assert (got is e) == clean


def test_event_ids_are_version_4_uuids_as_uuid_writes_them() -> None:
    import uuid

    from gateway.audit.events import new_event_id

    ids = {new_event_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in ids:
        parsed = uuid.UUID(value)
        assert (str(parsed), parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)


def _reference_bytes(e: object) -> bytes:
    """The canonical form as first defined: json.dumps, sorted keys, compact, ASCII."""
    import json

    from gateway.audit.events import _to_dict

    return json.dumps(_to_dict(e), sort_keys=True, separators=(",", ":"),  # type: ignore[arg-type]
                      ensure_ascii=True).encode("ascii")


def test_canonical_bytes_are_json_dumps_bytes_for_every_code_point() -> None:
    """canonical_bytes writes with orjson where it can; the stored and hashed bytes must stay
    json.dumps' exactly: every code point (astral ones sampled), in a field and a delivery."""
    points = [*range(0xD800), *range(0xE000, 0x10000), *range(0x10000, 0x110000, 61),
              0x10FFFF]
    for start in range(0, len(points), 512):
        text = "".join(chr(c) for c in points[start:start + 512])
        e = full_event(actor_name=text, deliveries=(Delivery(text[:40], "pll", "OK", 2),))
        assert canonical_bytes(e) == _reference_bytes(e)
    for text in HOSTILE:  # lone surrogates included: those take json's own path
        e = full_event(actor_name=text, decision_description=text,
                       deliveries=(Delivery(text[:40], text[:40], "OK", 1, text[:4]),))
        assert canonical_bytes(e) == _reference_bytes(e)


class _Text(str):
    pass


@pytest.mark.parametrize("changes", [
    {"toa": 2**70},  # beyond orjson's 64 bits
    {"deliveries": (Delivery("medications", "pll", "OK", 2**80),)},
    {"actor_name": _Text("æ subclass")},
    {"replayed": True, "user_selected": False, "toa": 0},
    {"legal_entity": 1.0e16},  # a float (not a declared type): json's own form
])
def test_canonical_bytes_fall_back_to_json_where_orjson_would_differ(
        changes: dict[str, object]) -> None:
    e = full_event(**changes)
    assert canonical_bytes(e) == _reference_bytes(e)


def test_canonical_bytes_refuse_what_json_refuses() -> None:
    import uuid

    e = full_event(legal_entity=uuid.uuid4())  # orjson would write it; json does not
    with pytest.raises(TypeError):
        canonical_bytes(e)


def test_stored_times_are_strftimes_form() -> None:
    """format_time writes `%Y-%m-%dT%H:%M:%S.%fZ` in UTC, as stored events always had it."""
    import random
    from datetime import UTC, datetime, timedelta, timezone

    from gateway.audit.events import _TIME_FORMAT, format_time

    rng = random.Random(16)
    zones = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-9, minutes=-30))]
    moments = [datetime(2026, 12, 3, 15, 0, tzinfo=UTC), datetime(1000, 1, 1, 0, 0, tzinfo=UTC),
               datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
               datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 31, 12, tzinfo=UTC)]
    moments += [datetime(rng.randrange(1001, 9999), rng.randrange(1, 13), rng.randrange(1, 29),
                         rng.randrange(24), rng.randrange(60), rng.randrange(60),
                         rng.choice([0, rng.randrange(1_000_000)]), tzinfo=rng.choice(zones))
                for _ in range(2000)]
    for moment in moments:
        assert format_time(moment) == moment.astimezone(UTC).strftime(_TIME_FORMAT), moment
