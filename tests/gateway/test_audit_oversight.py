"""Whose privacy officer oversees an audit entry, in both stores: the SQL filters (`query`,
`stream`, `usage`, `holds_data_of` with a municipality) agree with the rule as Python states
it (`concerned_municipalities`, `delivery_municipality`) over every combination of home
municipality, caller municipality and deliveries; rows stored before deliveries named a store
keep their bytes and are read as before."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.audit import AuditEvent, Delivery, open_audit_sink
from gateway.audit.events import (
    canonical_bytes,
    concerned_municipalities,
    delivery_municipality,
    event_from_json,
)
from gateway.audit.sink import AuditSink, UsageRow
from tests.gateway.audit_support import PATIENT_A, PATIENT_B, event

MUNICIPALITIES = ("0301", "4601", "5001")
DELIVERY_SETS: tuple[tuple[Delivery, ...], ...] = (
    (),  # a refusal, a log read
    (Delivery("medications", "pll", "OK", 2),),  # a national source
    (Delivery("medications", "pll", "EMPTY", 0),),  # asked, nothing handed over
    (Delivery("conditions", "municipal", "OK", 1, "0301"),),  # Oslo's own store
    (Delivery("conditions", "municipal", "OK", 3, "4601"),),  # Bergen's own store
    (Delivery("conditions", "municipal", "EMPTY", 0, "0301"),),  # Oslo's store, nothing
    (Delivery("conditions", "municipal", "OK", 1, "0301"),  # two stores and a national one
     Delivery("conditions", "municipal", "OK", 2, "4601"),
     Delivery("medications", "pll", "OK", 4)),
    (Delivery("conditions", "municipal", "OK", 1, "4601"),
     Delivery("critical_information", "kjernejournal", "OK", 1)),
)


def _events() -> list[AuditEvent]:
    out = []
    combos = itertools.product((None, "0301", "4601"), (None, "0301", "4601", "5001"),
                               DELIVERY_SETS, (False, True))
    for i, (home, actor, deliveries, emergency) in enumerate(combos):
        out.append(event(i, patient=PATIENT_A if i % 2 else PATIENT_B,
                         patient_municipality=home, actor_municipality=actor,
                         deliveries=deliveries, emergency=emergency,
                         outcome="DELIVERED" if deliveries or i % 3 else "DENIED"))
    # writes into a municipality's own store: that municipality's data
    for j, (store, actor) in enumerate(itertools.product(("0301", "4601"), ("0301", "4601"))):
        out.append(event(len(out) + j, patient=PATIENT_A, outcome="WRITTEN", action="create",
                         record_category="treatment_limitations", record_store=store,
                         actor_municipality=actor, deliveries=()))
    return out


EVENTS = _events()


@pytest.fixture(params=["sqlite", "postgres"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def sink(audit_url: str) -> AsyncIterator[AuditSink]:
    opened = await open_audit_sink(audit_url, retention_days=36500)
    await asyncio.gather(*(opened.write(e) for e in EVENTS))  # committed as a group
    try:
        yield opened
    finally:
        await opened.aclose()


def test_the_rule_in_words() -> None:
    oslo_store = Delivery("conditions", "municipal", "OK", 1, "0301")
    bergen_store = Delivery("conditions", "municipal", "OK", 1, "4601")
    national = Delivery("medications", "pll", "OK", 1)
    # a Bergen nurse reads Oslo's store about an Oslo patient: Oslo's, not Bergen's
    assert concerned_municipalities(event(0, actor_municipality="4601", patient_municipality=
                                          "0301", deliveries=(oslo_store,))) == {"0301"}
    # an Oslo clinician reads Bergen's store about a patient of unknown home: Bergen's only
    assert concerned_municipalities(event(0, actor_municipality="0301",
                                          deliveries=(bergen_store,))) == {"4601"}
    # ... and Kjernejournal too: the national part is the asking personnel's (home unknown)
    assert concerned_municipalities(event(0, actor_municipality="0301",
                                          deliveries=(bergen_store, national))) == {"0301",
                                                                                    "4601"}
    # a write into Bergen's store by someone of Oslo: Bergen's and (home unknown) Oslo's
    assert concerned_municipalities(event(0, actor_municipality="0301", outcome="WRITTEN",
                                          record_store="4601", deliveries=())) == {"0301", "4601"}
    # a refused attempt on a patient of unknown home: the asking personnel's municipality's
    assert concerned_municipalities(event(0, actor_municipality="0301", deliveries=(),
                                          outcome="DENIED")) == {"0301"}
    # the home is known: it, not the caller's municipality, oversees the national data
    e = event(0, actor_municipality="0301", patient_municipality="4601", deliveries=(national,))
    assert concerned_municipalities(e) == {"4601"}
    assert delivery_municipality(e, national) == "4601"


@pytest.mark.parametrize("municipality", MUNICIPALITIES)
async def test_query_and_stream_hold_exactly_the_entries_that_concern_the_municipality(
        sink: AuditSink, municipality: str) -> None:
    expected = {e.event_id for e in EVENTS if municipality in concerned_municipalities(e)}
    assert expected  # the combinations cover each municipality
    page = await sink.query(patient_nin=None, start=None, end=None, first=1000, after=None,
                            municipality=municipality)
    assert {e.event_id for e in page.events} == expected
    assert page.total == len(expected)
    streamed = [e.event_id async for e in sink.stream(municipality=municipality, batch=7)]
    assert sorted(streamed) == sorted(expected)
    one = await sink.query(patient_nin=PATIENT_A, start=None, end=None, first=1000,
                           after=None, municipality=municipality, emergency_only=True)
    assert {e.event_id for e in one.events} == {
        e.event_id for e in EVENTS if municipality in concerned_municipalities(e)
        and e.patient_nin == PATIENT_A and e.emergency}


@pytest.mark.parametrize("municipality", MUNICIPALITIES)
async def test_usage_counts_only_the_municipalitys_deliveries_and_names_whose_data(
        sink: AuditSink, municipality: str) -> None:
    counts: dict[tuple[object, ...], list[int]] = defaultdict(lambda: [0, 0])
    for e in EVENTS:
        if e.outcome != "DELIVERED":
            continue
        for d in e.deliveries:
            if d.count > 0 and delivery_municipality(e, d) == municipality:
                key = (e.recorded_at.date(), d.source, d.category, e.actor_municipality,
                       d.municipality)
                counts[key][0] += 1
                counts[key][1] += d.count
    expected = sorted(
        (UsageRow(day, source, category, actor, n, items, data)  # type: ignore[arg-type]
         for (day, source, category, actor, data), (n, items) in counts.items()),
        key=lambda r: (r.day, r.source, r.category, r.municipality or "",
                       r.data_municipality or ""))
    assert await sink.usage(start=None, end=None, municipality=municipality) == expected
    # no Bergen store data in Oslo's report, and the other way round
    assert all(r.data_municipality in (None, municipality) for r in expected)


async def test_usage_without_a_municipality_counts_every_delivery_once(sink: AuditSink) -> None:
    rows = await sink.usage(start=None, end=None)
    total = sum(d.count for e in EVENTS if e.outcome == "DELIVERED" for d in e.deliveries)
    assert sum(r.items for r in rows) == total
    per_municipality = [await sink.usage(start=None, end=None, municipality=m)
                        for m in (*MUNICIPALITIES, "9999")]
    # every delivery with a caller municipality is someone's, and only one's
    attributed = sum(d.count for e in EVENTS if e.outcome == "DELIVERED" for d in e.deliveries
                     if delivery_municipality(e, d) is not None)
    assert sum(r.items for rows_ in per_municipality for r in rows_) == attributed


@pytest.mark.parametrize("municipality", MUNICIPALITIES)
async def test_holds_data_of_is_a_recorded_home_or_an_own_store_delivery(
        sink: AuditSink, municipality: str) -> None:
    for nin in (PATIENT_A, PATIENT_B):
        expected = any(e.patient_nin == nin and (
            municipality in (e.patient_municipality, e.record_store)
            or any(d.count > 0 and d.municipality == municipality for d in e.deliveries))
            for e in EVENTS)
        assert await sink.holds_data_of(patient_nin=nin, municipality=municipality) is expected
    assert not await sink.holds_data_of(patient_nin="57099032172", municipality=municipality)


def test_rows_stored_before_deliveries_named_a_store_keep_their_bytes() -> None:
    old = event(0, deliveries=(Delivery("conditions", "municipal", "OK", 1),))
    stored = canonical_bytes(old)
    assert b"municipality\":" not in stored.replace(b"actor_municipality", b"")
    assert b"patient_municipality" not in stored
    assert canonical_bytes(event_from_json(stored)) == stored
    new = event(0, patient_municipality="0301",
                deliveries=(Delivery("conditions", "municipal", "OK", 1, "0301"),))
    assert event_from_json(canonical_bytes(new)) == new
    # an old row is its caller's municipality's, as before deliveries named a store
    assert concerned_municipalities(old) == {"4601"}
