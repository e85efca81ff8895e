"""The pure parts of the audit trail: canonical event bytes and hash-chain verification."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from gateway.audit import AuditEvent, Delivery, canonical_bytes
from gateway.audit.chain import GENESIS, Anchor, ChainRow, link, link_batch, verify_rows
from gateway.audit.events import event_from_json, format_time
from tests.gateway.audit_support import BASE, event, full_event


def test_canonical_bytes_are_sorted_compact_ascii_json() -> None:
    body = canonical_bytes(full_event())
    assert body.isascii()
    data = json.loads(body)
    assert list(data) == sorted(data)
    assert body.startswith(b'{"actor_hpr":"9144901","actor_municipality":"0301","actor_name":')
    assert data["recorded_at"] == "2026-03-01T12:00:00.000000Z"
    assert data["deliveries"][1] == {
        "category": "medications", "count": 4, "source": "pll", "status": "OK"
    }
    assert "\\u00f8" in body.decode()  # "bevisstløs" escaped, not raw UTF-8


def test_canonical_bytes_round_trip_to_an_equal_event() -> None:
    original = full_event()
    assert event_from_json(canonical_bytes(original)) == original


def test_recorded_at_is_normalised_to_utc() -> None:
    oslo = timezone(timedelta(hours=2))
    e = event(0, recorded_at=datetime(2026, 6, 1, 14, 0, tzinfo=oslo))
    assert format_time(e.recorded_at) == "2026-06-01T12:00:00.000000Z"
    assert canonical_bytes(e) == canonical_bytes(dataclasses.replace(e, recorded_at=e.recorded_at))


def test_defaults_give_a_fresh_id_and_an_aware_time() -> None:
    a, b = (AuditEvent(request_id="r", outcome="DENIED", reason="NO_CARE_RELATIONSHIP",
                       principal_kind="CLINICIAN", actor_person_id="04125845687")
            for _ in range(2))
    assert a.event_id != b.event_id
    assert len(a.event_id) == 36
    assert a.recorded_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("changes", "message"), [
    ({"outcome": "OK"}, "outcome"),
    ({"recorded_at": datetime(2026, 1, 1, 12, 0)}, "timezone-aware"),
])
def test_invalid_events_are_rejected(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event(0, **changes)


@pytest.mark.parametrize("count", [-1, 1.5, True])
def test_delivery_count_must_be_a_non_negative_int(count: object) -> None:
    with pytest.raises(ValueError, match="count"):
        Delivery("medications", "pll", "OK", count)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [b"", b"[]", b'{"event_id": "x"}', b"\xff"])
def test_event_from_json_rejects_what_canonical_bytes_cannot_produce(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        event_from_json(body)


def test_link_hashes_previous_hash_bytes_then_content() -> None:
    import hashlib

    assert link(GENESIS, b"abc") == hashlib.sha256(bytes(32) + b"abc").digest()


START = Anchor(0, GENESIS)


def _chain(n: int, *, start: Anchor = START) -> list[ChainRow]:
    events = [event(i) for i in range(n)]
    bodies = [canonical_bytes(e) for e in events]
    return [
        ChainRow(seq, prev, h, body, e.event_id, format_time(e.recorded_at), e.patient_nin)
        for e, body, (seq, prev, h) in zip(
            events, bodies, link_batch(start, bodies), strict=True
        )
    ]


def _head(rows: list[ChainRow]) -> Anchor:
    return Anchor(rows[-1].seq, rows[-1].hash)


def _altered(rows: list[ChainRow], i: int) -> list[ChainRow]:
    body = rows[i].body.replace(b'"PERMITTED"', b'"EMERGENCY"')
    return [*rows[:i], dataclasses.replace(rows[i], body=body), *rows[i + 1:]]


def _rehashed(rows: list[ChainRow], i: int) -> list[ChainRow]:
    # An attacker who also recomputes the altered row's hash still breaks the next link.
    row = _altered(rows, i)[i]
    return [*rows[:i], dataclasses.replace(row, hash=link(row.prev_hash, row.body)), *rows[i + 1:]]


ROWS = _chain(6)
TAMPERED = [
    ("intact", ROWS, []),
    ("altered", _altered(ROWS, 2), ["seq 3: hash does not match the row's content (row altered)."]),
    ("altered and rehashed", _rehashed(ROWS, 2), [
        "seq 4: prev_hash does not match the preceding row (rows removed, reordered or rewritten).",
    ]),
    ("middle removed", ROWS[:2] + ROWS[3:], ["seq 3: missing (rows removed)."]),
    ("two removed", ROWS[:1] + ROWS[3:], ["seq 2..3: missing (rows removed)."]),
    ("newest removed", ROWS[:-1], [
        "the chain head records seq 6 but the last row is seq 5 (newest rows removed, or the "
        "head was altered).",
    ]),
    ("reordered", [ROWS[0], ROWS[2], ROWS[1], *ROWS[3:]], [
        "seq 2: missing (rows removed).",
        "seq 2: appears after seq 3 (rows reordered or duplicated).",
        "seq 4: prev_hash does not match the preceding row (rows removed, reordered or rewritten).",
    ]),
]


@pytest.mark.parametrize(("rows", "problems"), [t[1:] for t in TAMPERED],
                         ids=[t[0] for t in TAMPERED])
def test_verify_rows_reports_each_kind_of_tampering(
    rows: list[ChainRow], problems: list[str]
) -> None:
    result = verify_rows(rows, Anchor(0, GENESIS), head=_head(ROWS))
    assert result.problems == problems
    assert result.ok is (not problems)
    assert result.checked == len(rows)


def test_verify_rows_starts_from_the_purge_anchor() -> None:
    rows = ROWS[3:]
    anchor = Anchor(ROWS[2].seq, ROWS[2].hash)
    assert verify_rows(rows, anchor, head=_head(ROWS)).ok
    assert not verify_rows(rows, Anchor(0, GENESIS), head=_head(ROWS)).ok
    assert not verify_rows(rows, Anchor(3, GENESIS), head=_head(ROWS)).ok


def test_verify_rows_of_an_empty_trail_passes_when_head_is_the_anchor() -> None:
    assert verify_rows([], Anchor(0, GENESIS), head=Anchor(0, GENESIS)).ok
    assert not verify_rows([], Anchor(0, GENESIS), head=Anchor(4, GENESIS)).ok


def test_verify_rows_caps_the_problem_list() -> None:
    rows = [dataclasses.replace(r, hash=GENESIS) for r in _chain(150)]
    result = verify_rows(rows, Anchor(0, GENESIS), check_content=False)
    assert len(result.problems) == 101
    assert result.problems[-1].startswith("... and ")


def test_link_batch_continues_from_the_head() -> None:
    first = _chain(3)
    more = _chain(2, start=_head(first))
    assert [r.seq for r in more] == [4, 5]
    assert verify_rows(first + more, Anchor(0, GENESIS), head=_head(more)).ok
    assert BASE.tzinfo is not None
