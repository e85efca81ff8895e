"""The embedded audit store: one SQLite file, written by one dedicated worker thread.

Sits behind `AuditSink` for the one-machine setup (the default `sqlite:///kilde-audit.sqlite3`).
Every database call runs on a single worker thread that owns the connection (stdlib sqlite3 is
blocking); the event loop only awaits it. WAL with `synchronous=FULL` makes a commit durable
when it returns; writes take `BEGIN IMMEDIATE`, so the chain stays linear even when several
processes share the file. Triggers refuse UPDATE, and DELETE outside the retention purge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from gateway.audit.batching import GroupCommitter
from gateway.audit.chain import Anchor, ChainRow, ChainVerifier, VerifyResult, link_batch
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

R = TypeVar("R")
log = logging.getLogger("kilde.audit")
VERIFY_PAGE = 2000
BUSY_SECONDS = 10.0  # how long a statement waits for another process's lock on the file

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    recorded_us INTEGER NOT NULL,
    patient_nin TEXT,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_by_patient ON audit_events (patient_nin, recorded_us, seq);
CREATE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (recorded_us, seq);
CREATE TABLE IF NOT EXISTS audit_chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    head_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    anchor_seq INTEGER NOT NULL,
    anchor_hash BLOB NOT NULL
);
INSERT OR IGNORE INTO audit_chain VALUES (1, 0, zeroblob(32), 0, zeroblob(32));
CREATE TABLE IF NOT EXISTS audit_purge_gate (opened INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_gate)
BEGIN SELECT RAISE(ABORT, 'audit events are deleted only by the retention purge'); END;
"""

# the municipality a delivery belongs to (events.delivery_municipality): its store's, else
# the patient's recorded home municipality, else the asking personnel's
_DELIVERY_OWNER = ("coalesce(json_extract(d.value, '$.municipality'), "
                   "json_extract(e.body, '$.patient_municipality'), "
                   "json_extract(e.body, '$.actor_municipality'))")
USAGE = f"""
SELECT date(e.recorded_us / 1000000, 'unixepoch'),
       json_extract(d.value, '$.source'), json_extract(d.value, '$.category'),
       json_extract(e.body, '$.actor_municipality'),
       count(*), sum(json_extract(d.value, '$.count')), json_extract(d.value, '$.municipality')
FROM audit_events AS e, json_each(e.body, '$.deliveries') AS d
WHERE json_extract(e.body, '$.outcome') = 'DELIVERED' AND json_extract(d.value, '$.count') > 0
  AND e.recorded_us >= ? AND e.recorded_us < ?
  AND (? IS NULL OR {_DELIVERY_OWNER} = ?)
GROUP BY 1, 2, 3, 4, 7
"""


def _delivered(condition: str) -> str:
    return ("EXISTS (SELECT 1 FROM json_each(body, '$.deliveries') AS d WHERE "
            f"json_extract(d.value, '$.count') > 0 AND {condition})")


# events.concerned_municipalities in SQL: one `?` per line, each the municipality number
CONCERNS = f"""(json_extract(body, '$.patient_municipality') = ?
 OR json_extract(body, '$.record_store') = ?
 OR {_delivered("json_extract(d.value, '$.municipality') = ?")}
 OR (json_extract(body, '$.patient_municipality') IS NULL
     AND json_extract(body, '$.actor_municipality') = ?
     AND ({_delivered("json_extract(d.value, '$.municipality') IS NULL")}
          OR NOT {_delivered("json_extract(d.value, '$.municipality') IS NOT NULL")})))"""
# the trail holds this municipality's data of the patient: a recorded home or a store delivery
HOLDS_DATA = f"""(json_extract(body, '$.patient_municipality') = ?
 OR json_extract(body, '$.record_store') = ?
 OR {_delivered("json_extract(d.value, '$.municipality') = ?")})"""


Row = tuple[str, int, str | None, bytes]  # event_id, recorded_us, patient_nin, body


class SqliteAuditSink:
    """`AuditSink` on a SQLite file; open with `await SqliteAuditSink.open(path, ...)`.

    >>> sink = await SqliteAuditSink.open("audit.sqlite3", retention_days=3650)  # doctest: +SKIP
    """

    def __init__(self, path: str, *, retention_days: int) -> None:
        self.path = path
        self.retention_days = retention_days
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kilde-audit")
        self._conn: sqlite3.Connection | None = None
        self._committer: GroupCommitter[Row] = GroupCommitter(self._commit)

    @classmethod
    async def open(cls, path: str, *, retention_days: int, create: bool = True) -> SqliteAuditSink:
        """Open (with `create`, also create) the trail at `path`; `ValueError` says why not.

        Without `create` (`kilde audit verify`) a missing file is an error and nothing is
        written: neither the file nor its tables appear.
        """
        sink = cls(path, retention_days=retention_days)
        try:
            await asyncio.get_running_loop().run_in_executor(
                sink._executor, sink._connect, create)
        except (sqlite3.Error, OSError) as exc:
            sink._executor.shutdown(wait=False)
            raise ValueError(open_failure(path, exc, create=create)) from exc
        return sink

    def _connect(self, create: bool) -> None:
        memory = self.path == ":memory:"
        if not create and not memory and not os.path.isfile(self.path):
            raise FileNotFoundError(self.path)
        # mode=rw never creates the file; the busy timeout applies from the first statement
        target = self.path if create or memory else f"file:{quote(self.path)}?mode=rw"
        conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_SECONDS,
                               uri=not (create or memory))
        try:
            if create:
                _set_wal(conn)
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;")
            elif not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'audit_chain'"
            ).fetchone():
                raise NotAnAuditTrailError(self.path)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        if self._conn is None:
            raise AuditUnavailableError("The audit trail is closed.")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            log.error("audit store call failed: %s", type(exc).__name__)
            raise AuditUnavailableError("The audit trail could not be read or written.") from exc

    @property
    def batches_committed(self) -> int:
        """How many group-commit transactions this sink has committed (tests, benchmark)."""
        return self._committer.batches

    # -- writing ---------------------------------------------------------------------------

    async def write(self, event: AuditEvent) -> None:
        event = storable(event)  # no NUL or lone surrogate in what is stored and hashed
        row = (event.event_id, to_micros(event.recorded_at), event.patient_nin,
               canonical_bytes(event))
        await self._committer.submit(row)

    async def _commit(self, rows: list[Row]) -> None:
        await self._call(self._append, rows)

    def _append(self, rows: list[Row]) -> None:
        conn = _open(self._conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            seq, head = conn.execute(
                "SELECT head_seq, head_hash FROM audit_chain WHERE id = 1"
            ).fetchone()
            links = link_batch(Anchor(seq, head), (body for *_, body in rows))
            conn.executemany(
                "INSERT INTO audit_events (seq, event_id, recorded_us, patient_nin, prev_hash,"
                " hash, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(s, eid, us, nin, prev, h, body.decode("ascii"))
                 for (eid, us, nin, body), (s, prev, h) in zip(rows, links, strict=True)],
            )
            last_seq, _, last_hash = links[-1]
            conn.execute(
                "UPDATE audit_chain SET head_seq = ?, head_hash = ? WHERE id = 1",
                (last_seq, last_hash),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

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
        return await self._call(self._page, where, params, key, first)

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
        key: tuple[int, int] | None = None
        while True:  # keyset pages, oldest first: one batch in memory at a time
            rows = await self._call(self._batch, where, params, key, batch)
            for _, _, body in rows:
                yield event_from_json(body)
            if len(rows) < batch:
                return
            key = (rows[-1][0], rows[-1][1])

    def _batch(self, where: list[str], params: list[Any], key: tuple[int, int] | None,
               size: int) -> list[tuple[int, int, str]]:
        clause = " AND ".join(where) or "1"
        if key is not None:
            clause += " AND (recorded_us, seq) > (?, ?)"
            params = [*params, *key]
        return _open(self._conn).execute(
            f"SELECT recorded_us, seq, body FROM audit_events WHERE {clause}"
            " ORDER BY recorded_us, seq LIMIT ?", [*params, size]).fetchall()

    def _page(
        self, where: list[str], params: list[Any], key: tuple[int, int] | None, first: int
    ) -> AuditPage:
        conn = _open(self._conn)
        conn.execute("BEGIN")
        try:
            clause = " AND ".join(where) or "1"
            total = conn.execute(f"SELECT count(*) FROM audit_events WHERE {clause}", params)
            total_count = total.fetchone()[0]
            if key is not None:
                clause += " AND (recorded_us, seq) < (?, ?)"
                params = [*params, *key]
            rows = conn.execute(
                f"SELECT recorded_us, seq, body FROM audit_events WHERE {clause}"
                " ORDER BY recorded_us DESC, seq DESC LIMIT ?",
                [*params, first + 1],
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        page = rows[:first]
        return AuditPage(
            events=[event_from_json(body) for _, _, body in page],
            end_cursor=encode_cursor(page[-1][0], page[-1][1]) if page else None,
            has_next_page=len(rows) > first,
            total=total_count,
            cursors=[encode_cursor(r[0], r[1]) for r in page],
        )

    async def usage(self, *, start: date | None, end: date | None,
                    municipality: str | None = None) -> list[UsageRow]:
        low, high = usage_bounds(start, end)
        params = (to_micros(low) if low else -(2**62), to_micros(high) if high else 2**62,
                  municipality, municipality)
        rows = await self._call(_usage_rows, self, params)
        return sort_usage([UsageRow(date.fromisoformat(d), s, c, m, n, items, data)
                           for d, s, c, m, n, items, data in rows])

    async def holds_data_of(self, *, patient_nin: str, municipality: str) -> bool:
        return await self._call(self._holds_data_of, patient_nin, municipality)

    def _holds_data_of(self, patient_nin: str, municipality: str) -> bool:
        row = _open(self._conn).execute(
            f"SELECT 1 FROM audit_events WHERE patient_nin = ? AND {HOLDS_DATA} LIMIT 1",
            (patient_nin, *[municipality] * HOLDS_DATA.count("?"))).fetchone()
        return row is not None

    async def verify(self) -> VerifyResult:
        return await self._call(self._verify)

    def _verify(self) -> VerifyResult:
        conn = _open(self._conn)
        conn.execute("BEGIN")  # one snapshot: rows and head agree even while others write
        try:
            head_seq, head_hash, anchor_seq, anchor_hash = conn.execute(
                "SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM audit_chain WHERE id = 1"
            ).fetchone()
            verifier = ChainVerifier(Anchor(anchor_seq, anchor_hash))
            last = -1
            while True:
                rows = conn.execute(
                    "SELECT seq, prev_hash, hash, body, event_id, recorded_us, patient_nin"
                    " FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (last, VERIFY_PAGE),
                ).fetchall()
                for seq, prev, h, body, event_id, us, nin in rows:
                    recorded = format_time(from_micros(us))
                    verifier.feed(ChainRow(seq, prev, h, body.encode(), event_id, recorded, nin))
                if len(rows) < VERIFY_PAGE:
                    break
                last = rows[-1][0]
        finally:
            conn.execute("COMMIT")
        return verifier.finish(Anchor(head_seq, head_hash))

    # -- retention and lifecycle -----------------------------------------------------------

    async def purge(self, *, older_than: datetime) -> int:
        check_page_args(0, older_than, None)
        return await self._call(self._purge, to_micros(older_than))

    async def purge_expired(self) -> int:
        """Apply the configured retention (`KILDE_AUDIT__RETENTION_DAYS`)."""
        return await self.purge(older_than=datetime.now(UTC) - timedelta(days=self.retention_days))

    def _purge(self, cutoff_us: int) -> int:
        conn = _open(self._conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            (anchor_seq,) = conn.execute(
                "SELECT anchor_seq FROM audit_chain WHERE id = 1"
            ).fetchone()
            # Only a prefix of the chain can go: stop before the oldest row still to be kept.
            (kept,) = conn.execute(
                "SELECT min(seq) FROM audit_events WHERE recorded_us >= ?", (cutoff_us,)
            ).fetchone()
            bound = "seq < ?" if kept is not None else "1"
            last = conn.execute(
                f"SELECT seq, hash FROM audit_events WHERE {bound} ORDER BY seq DESC LIMIT 1",
                (kept,) if kept is not None else (),
            ).fetchone()
            if last is None or last[0] <= anchor_seq:
                conn.execute("COMMIT")
                return 0
            conn.execute("INSERT INTO audit_purge_gate VALUES (1)")
            deleted = conn.execute("DELETE FROM audit_events WHERE seq <= ?", (last[0],)).rowcount
            conn.execute("DELETE FROM audit_purge_gate")
            conn.execute(
                "UPDATE audit_chain SET anchor_seq = ?, anchor_hash = ? WHERE id = 1", last
            )
            conn.execute("COMMIT")
            return deleted
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self._call(_select_one, self), timeout=2.0)
        except (AuditUnavailableError, TimeoutError):
            return False
        return True

    async def aclose(self) -> None:
        await self._committer.aclose()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)


def _where(patient_nin: str | None, start: datetime | None, end: datetime | None,
           actor_municipality: str | None, emergency_only: bool,
           municipality: str | None = None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if patient_nin is not None:
        where.append("patient_nin = ?")
        params.append(patient_nin)
    if start is not None:
        where.append("recorded_us >= ?")
        params.append(to_micros(start))
    if end is not None:
        where.append("recorded_us < ?")
        params.append(to_micros(end))
    if actor_municipality is not None:
        where.append("json_extract(body, '$.actor_municipality') = ?")
        params.append(actor_municipality)
    if municipality is not None:
        where.append(CONCERNS)
        params.extend([municipality] * CONCERNS.count("?"))
    if emergency_only:
        where.append("json_extract(body, '$.emergency') = 1")
    return where, params


class NotAnAuditTrailError(sqlite3.DatabaseError):
    """The file is a SQLite database, but not one a Kilde audit sink created."""


def _set_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out another process that opens the same new file right now.

    The busy timeout does not cover this pragma: turning a new file to WAL upgrades a read
    lock to a write lock, and when two connections do that at once SQLite refuses one of them
    at once (SQLITE_BUSY, to avoid a deadlock) instead of calling its busy handler. By the
    time the refused one asks again the other has finished, and the pragma is a no-op.
    """
    deadline = time.monotonic() + BUSY_SECONDS
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        _pause(pause)
        pause = min(pause * 2, 0.1)


def _pause(seconds: float) -> None:
    time.sleep(seconds)  # on the audit worker thread, never on the event loop


def open_failure(path: str, exc: BaseException, *, create: bool) -> str:
    """The one sentence `open()` fails with: what actually went wrong with the file."""
    what = f"The SQLite audit file {path!r} named by KILDE_AUDIT__URL"
    parent = os.path.dirname(os.path.abspath(path))
    if isinstance(exc, NotAnAuditTrailError):
        return f"{what} is a SQLite database but not a Kilde audit trail (it has no audit tables)."
    if isinstance(exc, FileNotFoundError) and not create:
        return f"{what} does not exist; nothing was created."
    if not os.path.isdir(parent):
        return f"{what} cannot be created: its directory {parent!r} does not exist."
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_BUSY:
        return (f"{what} stayed locked by another process for more than {BUSY_SECONDS:g} s; "
                "check what else holds it open.")
    if code == sqlite3.SQLITE_NOTADB:
        return f"{what} is not a SQLite database (is it another kind of file?)."
    if code == sqlite3.SQLITE_READONLY or (
        os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK)
    ):
        return f"{what} is not writable by this process; check its owner and permissions."
    if code == sqlite3.SQLITE_CANTOPEN and not os.access(parent, os.W_OK | os.X_OK):
        return (f"{what} cannot be created: this process may not write to its directory "
                f"{parent!r}.")
    if os.path.isdir(path):
        return f"{what} is a directory, not a file."
    detail = str(exc) if isinstance(exc, sqlite3.Error) else type(exc).__name__
    return f"{what} could not be opened: {detail}."


def _open(conn: sqlite3.Connection | None) -> sqlite3.Connection:
    if conn is None:
        raise sqlite3.ProgrammingError("the audit database is closed")
    return conn


def _usage_rows(sink: SqliteAuditSink, bounds: tuple[Any, ...]) -> list[Any]:
    # json_extract turns a lone-surrogate escape stored in an old row into bytes that are not
    # UTF-8: decode leniently here, so no stored value can break the report
    conn = _open(sink._conn)
    conn.text_factory = _lenient_text
    try:
        return conn.execute(USAGE, bounds).fetchall()
    finally:
        conn.text_factory = str


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _select_one(sink: SqliteAuditSink) -> None:
    _open(sink._conn).execute("SELECT 1").fetchone()

