"""One behaviour suite for every audit store: SQLite (a tmp file) and PostgreSQL (fresh schema)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest

from gateway.audit import (
    AuditCursorError,
    AuditSink,
    AuditUnavailableError,
    Delivery,
    UsageRow,
    open_audit_sink,
    verify_url,
)
from tests.gateway.audit_support import (
    BASE,
    PATIENT_A,
    PATIENT_B,
    event,
    fetch_row,
    full_event,
    run_raw,
    tamper,
)


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


async def write_all(url: str, events: list) -> None:
    opened = await open_audit_sink(url, retention_days=3650)
    try:
        for e in events:
            await opened.write(e)
    finally:
        await opened.aclose()


async def all_events(sink: AuditSink) -> list:
    page = await sink.query(patient_nin=None, start=None, end=None, first=1000, after=None)
    return page.events


async def test_written_event_reads_back_with_every_field(sink: AuditSink) -> None:
    original = full_event()
    await sink.write(original)
    page = await sink.query(patient_nin=PATIENT_A, start=None, end=None, first=10, after=None)
    assert page.events == [original]
    assert page.events[0].emergency_reason == original.emergency_reason  # non-ASCII survives
    assert page.total == 1
    assert page.has_next_page is False


async def test_events_persist_across_reopen(url: str) -> None:
    await write_all(url, [event(1), event(2)])
    reopened = await open_audit_sink(url, retention_days=3650)
    try:
        assert [e.request_id for e in await all_events(reopened)] == ["req-0002", "req-0001"]
        assert (await reopened.verify()).ok
    finally:
        await reopened.aclose()


async def test_query_pages_newest_first_with_cursor(sink: AuditSink) -> None:
    # Written out of time order: the page order follows recorded_at, not insertion.
    for i in [*range(0, 25, 2), *range(1, 25, 2)]:
        await sink.write(event(i))
    for i in range(5):
        await sink.write(event(100 + i, patient=PATIENT_B))
    seen, after, pages = [], None, 0
    while True:
        page = await sink.query(patient_nin=PATIENT_A, start=None, end=None, first=10, after=after)
        pages += 1
        assert page.total == 25
        seen += [e.request_id for e in page.events]
        if not page.has_next_page:
            break
        after = page.end_cursor
    assert pages == 3
    assert seen == [f"req-{i:04d}" for i in range(24, -1, -1)]


async def test_query_filters_by_half_open_time_range(sink: AuditSink) -> None:
    for i in range(10):
        await sink.write(event(i))
    start, end = BASE + timedelta(minutes=3), BASE + timedelta(minutes=7)
    page = await sink.query(patient_nin=PATIENT_A, start=start, end=end, first=50, after=None)
    assert [e.request_id for e in page.events] == ["req-0006", "req-0005", "req-0004", "req-0003"]
    assert page.total == 4


async def test_query_without_patient_returns_every_patient(sink: AuditSink) -> None:
    await sink.write(event(1, patient=PATIENT_A))
    await sink.write(event(2, patient=PATIENT_B))
    await sink.write(event(3, patient=None))
    assert [e.patient_nin for e in await all_events(sink)] == [None, PATIENT_B, PATIENT_A]


async def test_query_with_first_zero_counts_without_events(sink: AuditSink) -> None:
    await sink.write(event(1))
    page = await sink.query(patient_nin=PATIENT_A, start=None, end=None, first=0, after=None)
    assert (page.events, page.end_cursor, page.has_next_page, page.total) == ([], None, True, 1)


@pytest.mark.parametrize("cursor", ["garbage", "eno6MTox", "", "!!!"])
async def test_query_rejects_a_cursor_it_did_not_issue(sink: AuditSink, cursor: str) -> None:
    await sink.write(event(1))
    if cursor == "":
        page = await sink.query(patient_nin=None, start=None, end=None, first=5, after=cursor)
        assert len(page.events) == 1  # empty string means "from the start"
        return
    with pytest.raises(AuditCursorError):
        await sink.query(patient_nin=None, start=None, end=None, first=5, after=cursor)


async def test_usage_counts_delivered_items_per_day_source_category_municipality(
    sink: AuditSink,
) -> None:
    day2 = 24 * 60
    await sink.write(event(1))  # Bergen caller, pll medications x2
    await sink.write(event(2, deliveries=(
        Delivery("medications", "pll", "OK", 3), Delivery("lab_results", "proevesvar", "OK", 1),
        Delivery("conditions", "municipal", "EMPTY", 0),  # nothing handed over: not counted
    )))
    await sink.write(event(3, actor_municipality="0301"))
    await sink.write(event(4, outcome="DENIED", reason="NO_CARE_RELATIONSHIP"))  # not counted
    await sink.write(event(day2, deliveries=(Delivery("medications", "eresept", "OK", 5),)))
    d1, d2 = BASE.date(), BASE.date() + timedelta(days=1)
    expected = [
        UsageRow(d1, "pll", "medications", "0301", 1, 2),
        UsageRow(d1, "pll", "medications", "4601", 2, 5),
        UsageRow(d1, "proevesvar", "lab_results", "4601", 1, 1),
        UsageRow(d2, "eresept", "medications", "4601", 1, 5),
    ]
    assert await sink.usage(start=None, end=None) == expected
    assert await sink.usage(start=d2, end=d2) == expected[3:]
    assert await sink.usage(start=None, end=d1) == expected[:3]
    assert await sink.usage(start=date(2030, 1, 1), end=None) == []


async def test_verify_passes_on_an_intact_trail(sink: AuditSink) -> None:
    for i in range(30):
        await sink.write(event(i))
    result = await sink.verify()
    assert (result.ok, result.checked, result.problems) == (True, 30, [])


async def test_triggers_refuse_update_and_delete(url: str) -> None:
    await write_all(url, [event(1)])
    for sql in ("UPDATE audit_events SET patient_nin = NULL", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match=r"append-only|retention purge"):
            await run_raw(url, sql)
    assert (await verify_url(url)).ok


async def test_verify_fails_after_a_row_is_altered(url: str) -> None:
    await write_all(url, [event(i) for i in range(5)])
    await tamper(url, [(
        "UPDATE audit_events SET body = replace(body, '\"reason\":\"PERMITTED\"',"
        " '\"reason\":\"EMERGENCY\"') WHERE seq = ?", (3,),
    )])
    result = await verify_url(url)
    assert not result.ok
    assert result.checked == 5
    assert any(p.startswith("seq 3: hash does not match") for p in result.problems)


async def test_verify_fails_when_a_row_is_hidden_from_the_patient(url: str) -> None:
    # Only the indexed column changes, so innsyn would no longer find the event.
    await write_all(url, [event(i) for i in range(3)])
    await tamper(url, [("UPDATE audit_events SET patient_nin = ? WHERE seq = ?", (PATIENT_B, 2))])
    result = await verify_url(url)
    assert result.problems == [
        "seq 2: indexed columns differ from the hashed content (row altered)."
    ]


@pytest.mark.parametrize(("seq", "problem"), [
    (3, "seq 3: missing (rows removed)."),
    (5, "the chain head records seq 5 but the last row is seq 4"),
    (1, "seq 1: missing (rows removed)."),
])
async def test_verify_fails_after_a_row_is_deleted(url: str, seq: int, problem: str) -> None:
    await write_all(url, [event(i) for i in range(5)])
    await tamper(url, [("DELETE FROM audit_events WHERE seq = ?", (seq,))])
    result = await verify_url(url)
    assert not result.ok
    assert any(p.startswith(problem) for p in result.problems)


async def test_verify_fails_after_two_rows_content_is_swapped(url: str) -> None:
    await write_all(url, [event(i) for i in range(5)])
    row2, row4 = await fetch_row(url, 2), await fetch_row(url, 4)
    swap = "UPDATE audit_events SET body = ?, event_id = ?, patient_nin = ? WHERE seq = ?"
    await tamper(url, [
        ("UPDATE audit_events SET event_id = 'tmp' WHERE seq = ?", (2,)),
        (swap, (row2["body"], row2["event_id"], row2["patient_nin"], 4)),
        (swap, (row4["body"], row4["event_id"], row4["patient_nin"], 2)),
    ])
    result = await verify_url(url)
    assert not result.ok
    assert any(p.startswith("seq 2: hash does not match") for p in result.problems)
    assert any(p.startswith("seq 4: hash does not match") for p in result.problems)


async def test_verify_fails_after_two_whole_rows_are_reordered(url: str) -> None:
    # Hashes move with the content, so each row is self-consistent; the links break.
    await write_all(url, [event(i) for i in range(5)])
    row2, row4 = await fetch_row(url, 2), await fetch_row(url, 4)
    columns = ("body", "event_id", "patient_nin", "prev_hash", "hash")
    swap = f"UPDATE audit_events SET {' = ?, '.join(columns)} = ? WHERE seq = ?"
    await tamper(url, [
        ("UPDATE audit_events SET event_id = 'tmp' WHERE seq = ?", (2,)),
        (swap, (*(row2[c] for c in columns), 4)),
        (swap, (*(row4[c] for c in columns), 2)),
    ])
    result = await verify_url(url)
    assert not result.ok
    assert any("prev_hash does not match" in p for p in result.problems)


async def test_purge_deletes_old_events_and_verify_still_passes(sink: AuditSink) -> None:
    for i in range(10):
        await sink.write(event(i))
    assert await sink.purge(older_than=BASE + timedelta(minutes=4)) == 4
    assert await sink.purge(older_than=BASE + timedelta(minutes=4)) == 0
    remaining = await all_events(sink)
    assert [e.request_id for e in remaining][-1] == "req-0004"
    assert len(remaining) == 6
    await sink.write(event(20))
    result = await sink.verify()
    assert (result.ok, result.checked) == (True, 7)


async def test_purge_removes_only_a_prefix_of_the_chain(sink: AuditSink) -> None:
    # seq 2 is recent, so the older seq 3 behind it is kept too: the chain stays whole.
    for i in (0, 50, 1, 51):
        await sink.write(event(i))
    assert await sink.purge(older_than=BASE + timedelta(minutes=10)) == 1
    assert (await sink.verify()).ok
    assert await sink.purge(older_than=BASE + timedelta(days=1)) == 3
    assert await all_events(sink) == []
    assert (await sink.verify()).ok


async def test_concurrent_writes_are_all_committed_in_few_transactions(sink: AuditSink) -> None:
    events = [event(i % 50, request_id=f"c-{i}") for i in range(200)]
    await asyncio.gather(*(sink.write(e) for e in events))
    stored = await all_events(sink)
    assert sorted(e.request_id for e in stored) == sorted(e.request_id for e in events)
    result = await sink.verify()
    assert (result.ok, result.checked) == (True, 200)
    assert sink.batches_committed < 50  # type: ignore[attr-defined]


async def test_two_replicas_on_one_store_keep_a_single_valid_chain(url: str) -> None:
    first, second = await asyncio.gather(
        open_audit_sink(url, retention_days=3650), open_audit_sink(url, retention_days=3650)
    )
    try:
        await asyncio.gather(
            *(first.write(event(i, request_id=f"one-{i}")) for i in range(100)),
            *(second.write(event(i, request_id=f"two-{i}")) for i in range(100)),
        )
        result = await first.verify()
        assert (result.ok, result.checked) == (True, 200)
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_failed_batch_fails_every_caller_in_it(sink: AuditSink) -> None:
    duplicate = event(1)
    await sink.write(duplicate)
    results = await asyncio.gather(
        sink.write(event(2)), sink.write(duplicate), sink.write(event(3)),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [AuditUnavailableError] * 3
    assert [e.request_id for e in await all_events(sink)] == ["req-0001"]
    await sink.write(event(4))  # the writer recovers for the next batch
    assert (await sink.verify()).ok


async def test_closed_sink_refuses_writes_and_fails_ping(url: str) -> None:
    opened = await open_audit_sink(url, retention_days=3650)
    assert await opened.ping() is True
    await opened.aclose()
    assert await opened.ping() is False
    with pytest.raises(AuditUnavailableError):
        await opened.write(event(1))


@pytest.mark.postgres
async def test_postgres_links_each_batch_in_sql_as_the_chain_does_and_commits_it_durably(
        postgres_url: str) -> None:
    """`audit_append` (one statement per batch) stores what `chain.link` would: each row's
    hash is sha256(prev_hash + body), the head is the last row; and it commits with
    synchronous_commit on whatever the session says."""
    import asyncpg

    from gateway.audit.chain import GENESIS, link
    from gateway.audit.events import canonical_bytes
    from gateway.audit.postgres import APPEND

    sink = await open_audit_sink(postgres_url, retention_days=3650)
    try:
        await sink.write(event(0))
        await asyncio.gather(*(sink.write(event(i)) for i in range(1, 6)))
    finally:
        await sink.aclose()
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT seq, prev_hash, hash, body FROM audit_events ORDER BY seq")
        prev = GENESIS
        for n, row in enumerate(rows, start=1):
            assert (row["seq"], bytes(row["prev_hash"])) == (n, prev)
            assert bytes(row["hash"]) == link(prev, row["body"].encode("ascii"))
            prev = bytes(row["hash"])
        head = await conn.fetchrow("SELECT head_seq, head_hash FROM audit_chain WHERE id = 1")
        assert (head["head_seq"], bytes(head["head_hash"])) == (6, prev)
        late = event(9)
        tr = conn.transaction()
        await tr.start()
        try:
            await conn.execute("SET LOCAL synchronous_commit = off")
            assert await conn.fetchval(APPEND, [late.event_id], [late.recorded_at],
                                       [late.patient_nin],
                                       [canonical_bytes(late).decode("ascii")]) == 7
            assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == "on"
        finally:
            await tr.rollback()
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_a_postgres_connection_left_in_a_transaction_is_rolled_back_before_reuse(
        postgres_url: str) -> None:
    """The pool's reset sends nothing beyond asyncpg's own rollback of an open transaction
    (this store keeps no session state); that rollback still happens."""
    from gateway.audit.postgres import PostgresAuditSink

    sink = await PostgresAuditSink.open(postgres_url, retention_days=3650)
    try:
        setting = "SELECT current_setting('statement_timeout')"
        async with sink._connection() as conn:
            default = await conn.fetchval(setting)
            await conn.execute("BEGIN; SET LOCAL statement_timeout = 12345")
            assert conn.is_in_transaction()
        async with sink._connection() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval(setting) == default
        await sink.write(event(0))
        assert (await sink.verify()).ok
    finally:
        await sink.aclose()
