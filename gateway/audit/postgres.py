"""The production audit store: PostgreSQL through an asyncpg pool, shared by every replica.

Sits behind `AuditSink` when `KILDE_AUDIT__URL=postgresql://...`. Each write batch takes
`pg_advisory_xact_lock` (keyed on the schema) before reading the chain head, so replicas append
one after another and the chain stays linear; the batch is one call of the `audit_append`
function (lock, head, linking, rows, new head: one round trip, one transaction). A trigger refuses UPDATE, TRUNCATE and DELETE on
the events table unless the transaction set `kilde.audit_purge` — which only the `audit_purge`
function does; a deployment can further revoke DELETE from the application role. Commits use
`synchronous_commit = on` whatever the server default, so a returned write is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from gateway.audit.batching import GroupCommitter
from gateway.audit.chain import Anchor, ChainRow, ChainVerifier, VerifyResult
from gateway.audit.events import (
    AuditEvent,
    canonical_bytes,
    event_from_json,
    format_time,
    storable,
)
from gateway.audit.sink import (
    STREAM_BATCH,
    AuditPage,
    AuditUnavailableError,
    UsageRow,
    check_page_args,
    decode_cursor,
    encode_cursor,
    from_micros,
    sort_usage,
    to_micros,
    usage_bounds,
)

log = logging.getLogger("kilde.audit")
POOL_CLOSE_SECONDS = 1.0  # at shutdown; then the pool's connections are cut
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('kilde_audit_schema:' || current_schema()))"

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    seq bigint PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    recorded_at timestamptz NOT NULL,
    patient_nin text,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    body text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_by_patient ON audit_events (patient_nin, recorded_at, seq);
CREATE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (recorded_at, seq);
CREATE TABLE IF NOT EXISTS audit_chain (
    id int PRIMARY KEY CHECK (id = 1),
    head_seq bigint NOT NULL,
    head_hash bytea NOT NULL,
    anchor_seq bigint NOT NULL,
    anchor_hash bytea NOT NULL
);
INSERT INTO audit_chain VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0,
                                decode(repeat('00', 32), 'hex')) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('kilde.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP USING ERRCODE = '42501';
END
$fn$;
CREATE OR REPLACE FUNCTION audit_purge(cutoff timestamptz) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    anchor bigint; kept bigint; last_seq bigint; last_hash bytea; deleted bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('kilde_audit:' || current_schema()));
    SELECT anchor_seq INTO anchor FROM audit_chain WHERE id = 1;
    -- only a prefix of the chain can go: stop before the oldest row still to be kept
    SELECT min(seq) INTO kept FROM audit_events WHERE recorded_at >= cutoff;
    SELECT seq, hash INTO last_seq, last_hash FROM audit_events
        WHERE kept IS NULL OR seq < kept ORDER BY seq DESC LIMIT 1;
    IF last_seq IS NULL OR last_seq <= anchor THEN
        RETURN 0;
    END IF;
    PERFORM set_config('kilde.audit_purge', 'on', true);
    DELETE FROM audit_events WHERE seq <= last_seq;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('kilde.audit_purge', 'off', true);
    UPDATE audit_chain SET anchor_seq = last_seq, anchor_hash = last_hash WHERE id = 1;
    RETURN deleted;
END
$fn$;
-- One group-commit batch in one statement (see APPEND below): the chain's lock, then its head
-- (a new snapshot per statement in a volatile function: the head as the last writer committed
-- it), each row's hash = sha256(prev_hash || body) as gateway/audit/chain.py links it, the rows
-- and the new head; the durable-commit setting for the statement's own transaction.
CREATE OR REPLACE FUNCTION audit_append(event_ids text[], recorded timestamptz[], nins text[],
                                        bodies text[]) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    head bigint; prev bytea; n int := coalesce(cardinality(bodies), 0);
    seqs bigint[] := '{}'; prevs bytea[] := '{}'; hashes bytea[] := '{}';
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    PERFORM pg_advisory_xact_lock(hashtext('kilde_audit:' || current_schema()));
    SELECT head_seq, head_hash INTO head, prev FROM audit_chain WHERE id = 1;
    FOR i IN 1..n LOOP
        seqs[i] := head + i;
        prevs[i] := prev;
        prev := sha256(prev || convert_to(bodies[i], 'UTF8'));
        hashes[i] := prev;
    END LOOP;
    INSERT INTO audit_events (seq, event_id, recorded_at, patient_nin, prev_hash, hash, body)
        SELECT * FROM unnest(seqs, event_ids, recorded, nins, prevs, hashes, bodies);
    UPDATE audit_chain SET head_seq = head + n, head_hash = prev WHERE id = 1;
    RETURN head + n;
END
$fn$;
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass
                   AND tgname = 'audit_events_append_only') THEN
        CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
        CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
            FOR EACH STATEMENT EXECUTE FUNCTION audit_events_guard();
    END IF;
END
$do$;
"""

# Reports parse bodies as jsonb, which refuses a whole row for one \u0000 or lone surrogate
# escape anywhere in it. New rows never hold them (events.storable), but the table is
# append-only: rows written before that rule would break a report for everyone, forever. So
# every query that reads inside a body parses a copy with those escapes (not preceded by an
# escaped backslash) replaced by \ufffd, and reads only what it needs, each with its JSON type.
STORED_JSON = (r"regexp_replace(body, '(?<!\\)((?:\\\\)*)\\u(0000|d[89a-f][0-9a-f]{2})', "
               r"'\1\\ufffd', 'gi')::jsonb")
USAGE = r"""
SELECT (e.recorded_at AT TIME ZONE 'UTC')::date, d->>'source', d->>'category',
       j.b->>'actor_municipality', count(*),
       LEAST(sum((d->>'count')::numeric), 9223372036854775807)::bigint, d->>'municipality'
FROM audit_events AS e
CROSS JOIN LATERAL (SELECT """ + STORED_JSON + r""" AS b) AS j
CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(j.b->'deliveries') = 'array'
                                        THEN j.b->'deliveries' ELSE '[]' END) AS d
WHERE j.b->>'outcome' = 'DELIVERED' AND jsonb_typeof(d) = 'object'
  AND jsonb_typeof(d->'count') = 'number' AND (d->>'count')::numeric > 0
  AND ($1::timestamptz IS NULL OR e.recorded_at >= $1)
  AND ($2::timestamptz IS NULL OR e.recorded_at < $2)
  AND ($3::text IS NULL OR coalesce(d->>'municipality', j.b->>'patient_municipality',
                                    j.b->>'actor_municipality') = $3)
GROUP BY 1, 2, 3, 4, 7
"""
# jsonpath filters on one delivery: it handed over items, from a store (or not)
_ITEMS = "@.count > 0"
_FROM_STORE = "exists(@.municipality ? (@ != null))"


def _concerns(n: int) -> str:
    """events.concerned_municipalities in SQL, the municipality number in parameter $n."""
    return (
        f"EXISTS (SELECT 1 FROM (SELECT {STORED_JSON} AS b) AS j WHERE "
        f"j.b->>'patient_municipality' = ${n}::text OR j.b->>'record_store' = ${n}::text"
        f" OR jsonb_path_exists(j.b, '$.deliveries[*] ? ({_ITEMS} && @.municipality == $m)',"
        f" jsonb_build_object('m', ${n}::text))"
        f" OR (j.b->>'patient_municipality' IS NULL AND j.b->>'actor_municipality' = ${n}::text"
        f" AND (jsonb_path_exists(j.b, '$.deliveries[*] ? ({_ITEMS} && !{_FROM_STORE})')"
        f" OR NOT jsonb_path_exists(j.b, '$.deliveries[*] ? ({_ITEMS} && {_FROM_STORE})'))))")


def _holds_data(n: int) -> str:
    """A recorded home municipality, a store delivery or a write of the municipality in $n."""
    return (
        f"EXISTS (SELECT 1 FROM (SELECT {STORED_JSON} AS b) AS j WHERE "
        f"j.b->>'patient_municipality' = ${n}::text OR j.b->>'record_store' = ${n}::text"
        f" OR jsonb_path_exists(j.b, '$.deliveries[*] ? ({_ITEMS} && @.municipality == $m)',"
        f" jsonb_build_object('m', ${n}::text)))")

# A batch in one round trip: `audit_append` (in SCHEMA) takes the chain's lock, reads the head,
# links and inserts the rows and moves the head, in the statement's own transaction, committed
# durably before the call returns. It was BEGIN (with SET LOCAL synchronous_commit and the lock),
# a read of the head, the rows with the head's UPDATE, and COMMIT: four round trips, each an
# asyncpg call and a turn of the event loop (issue 16; bench.audit_cpu).
APPEND = "SELECT audit_append($1::text[], $2::timestamptz[], $3::text[], $4::text[])"

Row = tuple[str, datetime, str | None, bytes]  # event_id, recorded_at, patient_nin, body


class PostgresAuditSink:
    """`AuditSink` on PostgreSQL; open with `await PostgresAuditSink.open(url, ...)`.

    >>> sink = await PostgresAuditSink.open(url, retention_days=3650)  # doctest: +SKIP
    """

    def __init__(self, pool: asyncpg.Pool, *, retention_days: int) -> None:
        self.retention_days = retention_days
        self._pool = pool
        self._ready = False
        self._setup_lock = asyncio.Lock()
        self._committer: GroupCommitter[Row] = GroupCommitter(self._commit)

    @classmethod
    async def open(cls, url: str, *, retention_days: int, create: bool = True
                   ) -> PostgresAuditSink:
        """Open the trail at `url`, creating its tables unless `create` is false (`kilde audit
        verify`, which must find a trail there and change nothing)."""
        try:
            parts = urlsplit(url)
            if "," not in parts.netloc:  # libpq multi-host lists are asyncpg's to parse
                _ = parts.port
        except ValueError as exc:
            raise ValueError("KILDE_AUDIT__URL is not a valid postgresql:// URL.") from exc
        # min_size=0: nothing connects here, so an unreachable server is retried on first use.
        pool = await asyncpg.create_pool(
            url, min_size=0, max_size=10, timeout=5.0, command_timeout=30.0, reset=_keep_session
        )
        sink = cls(pool, retention_days=retention_days)
        if not create:
            await sink._require_existing()
            return sink
        try:
            await sink._ensure_schema()
        except AuditUnavailableError as exc:
            log.warning(
                "audit store not ready at start (%s); writes fail until it is",
                type(exc.__cause__).__name__,
            )
        return sink

    async def _require_existing(self) -> None:
        try:
            async with self._connection() as conn:
                found = await conn.fetchval("SELECT to_regclass('audit_chain') IS NOT NULL")
        except AuditUnavailableError:
            await self._pool.close()
            raise
        if not found:
            await self._pool.close()
            raise ValueError("The PostgreSQL database (and schema) named by KILDE_AUDIT__URL "
                             "holds no Kilde audit trail; nothing was created.")
        self._ready = True

    async def _ensure_schema(self) -> None:
        if self._ready:
            return
        async with self._setup_lock, self._connection() as conn, conn.transaction():
            if not self._ready:
                await conn.execute(SCHEMA_LOCK)
                await conn.execute(SCHEMA)
                self._ready = True

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; database and network errors leave as AuditUnavailableError."""
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except DB_ERRORS as exc:
            log.error("audit store call failed: %s", type(exc).__name__)
            raise AuditUnavailableError("The audit trail could not be read or written.") from exc

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        await self._ensure_schema()
        async with self._connection() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True
        ):
            yield conn

    @property
    def batches_committed(self) -> int:
        """How many group-commit transactions this sink has committed (tests, benchmark)."""
        return self._committer.batches

    # -- writing ---------------------------------------------------------------------------

    async def write(self, event: AuditEvent) -> None:
        event = storable(event)
        row = (event.event_id, event.recorded_at, event.patient_nin, canonical_bytes(event))
        await self._committer.submit(row)

    async def _commit(self, rows: list[Row]) -> None:
        """One statement, one transaction: `audit_append` links the rows after the chain's
        head under the chain's advisory lock (the one `audit_purge` takes) and commits them
        with the new head, durably; anything failing rolls the whole batch back."""
        await self._ensure_schema()
        async with self._connection() as conn:
            await conn.fetchval(APPEND, [r[0] for r in rows], [r[1] for r in rows],
                                [r[2] for r in rows], [r[3].decode("ascii") for r in rows])

    # -- reading ---------------------------------------------------------------------------

    async def query(
        self,
        *,
        patient_nin: str | None,
        start: datetime | None,
        end: datetime | None,
        first: int,
        after: str | None,
        actor_municipality: str | None = None,
        emergency_only: bool = False,
        municipality: str | None = None,
    ) -> AuditPage:
        check_page_args(first, start, end)
        key = decode_cursor(after) if after else None
        where, params = _where(patient_nin, start, end, actor_municipality, emergency_only,
                               municipality)
        clause = " AND ".join(where) or "true"
        async with self._snapshot() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM audit_events WHERE {clause}", *params)
            if key is not None:
                params += [from_micros(key[0]), key[1]]
                clause += f" AND (recorded_at, seq) < (${len(params) - 1}, ${len(params)})"
            params.append(first + 1)
            rows = await conn.fetch(
                f"SELECT recorded_at, seq, body FROM audit_events WHERE {clause}"
                f" ORDER BY recorded_at DESC, seq DESC LIMIT ${len(params)}",
                *params,
            )
        page = rows[:first]
        return AuditPage(
            events=[event_from_json(r["body"]) for r in page],
            end_cursor=encode_cursor(to_micros(page[-1][0]), page[-1][1]) if page else None,
            has_next_page=len(rows) > first,
            total=total,
            cursors=[encode_cursor(to_micros(r[0]), r[1]) for r in page],
        )

    async def stream(
        self,
        *,
        patient_nin: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        actor_municipality: str | None = None,
        batch: int = STREAM_BATCH,
        municipality: str | None = None,
    ) -> AsyncIterator[AuditEvent]:
        check_page_args(0, start, end)
        where, params = _where(patient_nin, start, end, actor_municipality, False, municipality)
        key: tuple[datetime, int] | None = None
        while True:  # keyset pages, oldest first: one batch in memory, no long transaction
            clause = " AND ".join(where) or "true"
            args = list(params)
            if key is not None:
                args += list(key)
                clause += f" AND (recorded_at, seq) > (${len(args) - 1}, ${len(args)})"
            args.append(batch)
            async with self._snapshot() as conn:
                rows = await conn.fetch(
                    f"SELECT recorded_at, seq, body FROM audit_events WHERE {clause}"
                    f" ORDER BY recorded_at, seq LIMIT ${len(args)}", *args)
            for row in rows:
                yield event_from_json(row["body"])
            if len(rows) < batch:
                return
            key = (rows[-1][0], rows[-1][1])

    async def usage(self, *, start: date | None, end: date | None,
                    municipality: str | None = None) -> list[UsageRow]:
        async with self._snapshot() as conn:
            rows = await conn.fetch(USAGE, *usage_bounds(start, end), municipality)
        return sort_usage([UsageRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows])

    async def holds_data_of(self, *, patient_nin: str, municipality: str) -> bool:
        async with self._snapshot() as conn:
            found = await conn.fetchval(
                f"SELECT 1 FROM audit_events WHERE patient_nin = $1 AND {_holds_data(2)}"
                " LIMIT 1", patient_nin, municipality)
        return found is not None

    async def verify(self) -> VerifyResult:
        async with self._snapshot() as conn:
            chain = await conn.fetchrow(
                "SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM audit_chain WHERE id = 1"
            )
            verifier = ChainVerifier(Anchor(chain["anchor_seq"], chain["anchor_hash"]))
            async for r in conn.cursor(
                "SELECT seq, prev_hash, hash, body, event_id, recorded_at, patient_nin"
                " FROM audit_events ORDER BY seq",
                prefetch=2000,
            ):
                verifier.feed(ChainRow(r[0], r[1], r[2], r[3].encode(), r[4],
                                       format_time(r[5]), r[6]))
        return verifier.finish(Anchor(chain["head_seq"], chain["head_hash"]))

    # -- retention and lifecycle -----------------------------------------------------------

    async def purge(self, *, older_than: datetime) -> int:
        check_page_args(0, older_than, None)
        await self._ensure_schema()
        async with self._connection() as conn:
            return int(await conn.fetchval("SELECT audit_purge($1)", older_than))

    async def purge_expired(self) -> int:
        """Apply the configured retention (`KILDE_AUDIT__RETENTION_DAYS`)."""
        return await self.purge(older_than=datetime.now(UTC) - timedelta(days=self.retention_days))

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2.0), self._connection() as conn:
                await conn.fetchval("SELECT 1")
        except (AuditUnavailableError, TimeoutError):
            return False
        return True

    async def aclose(self) -> None:
        await self._committer.aclose()
        try:  # a server that hangs must not hold the process past its shutdown bound
            await asyncio.wait_for(self._pool.close(), timeout=POOL_CLOSE_SECONDS)
        except TimeoutError:
            self._pool.terminate()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset of a released connection, after asyncpg's own rollback of a
    transaction left open: nothing more. asyncpg's default also sends `SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` (one more round trip per
    batch, as many as the batch itself), which undoes session state this store never makes:
    its locks are transaction locks, its cursors live in transactions, it listens to nothing
    and sets nothing but `set_config(..., true)` (transaction-local); the URL's settings
    (`search_path`) are the connection's own, which RESET ALL keeps anyway."""


def _where(patient_nin: str | None, start: datetime | None, end: datetime | None,
           actor_municipality: str | None, emergency_only: bool,
           municipality: str | None = None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, op, value in (
        ("patient_nin", "=", patient_nin), ("recorded_at", ">=", start),
        ("recorded_at", "<", end), (f"({STORED_JSON})->>'actor_municipality'", "=",
                                    actor_municipality),
    ):
        if value is not None:
            params.append(value)
            where.append(f"{column} {op} ${len(params)}")
    if municipality is not None:
        params.append(municipality)
        where.append(_concerns(len(params)))
    if emergency_only:
        where.append(f"({STORED_JSON})->'emergency' = 'true'::jsonb")
    return where, params
