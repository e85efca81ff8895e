"""The audit sink: where resolvers write audit events and innsyn / statistics read them back.

Sits at the gateway's edge beside settings: the app's lifespan opens one sink with
`open_audit_sink(settings.audit.url, retention_days=...)`, every delivery awaits
`sink.write(event)` before the data leaves (it fails closed with `AuditUnavailableError`), and
the `myAccessLog` / `accessLog` resolvers page through `sink.query(...)`. Implementations:
`SqliteAuditSink` (embedded default) and `PostgresAuditSink` (production, many replicas).

    sink = await open_audit_sink("sqlite:///kilde-audit.sqlite3", retention_days=3650)
    await sink.write(event)
    page = await sink.query(patient_nin=nin, start=None, end=None, first=20, after=None)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from gateway.audit.chain import VerifyResult
from gateway.audit.events import AuditEvent
from schema import errors

MAX_PAGE = 1000
STREAM_BATCH = 500  # events per round trip when an export streams the trail
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AuditUnavailableError(errors.AuditUnavailableError):
    """The audit trail could not be written or read; the data must not be delivered.

    A `schema.errors.AuditUnavailableError`, so a failed read in a resolver (`myAccessLog`,
    `accessLog`, `usage`) reaches the client as AUDIT_UNAVAILABLE rather than a masked error.
    """


class AuditCursorError(errors.InvalidValueError):
    """An `after` cursor that this audit trail did not issue: BAD_USER_INPUT (a ValueError
    too, for callers outside GraphQL)."""


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of events, newest first; `end_cursor` goes into the next call's `after`,
    and `cursors[i]` resumes right after `events[i]` (a Relay edge cursor)."""

    events: list[AuditEvent]
    end_cursor: str | None
    has_next_page: bool
    total: int
    cursors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Delivery statistics for one UTC day, source, category, caller municipality and the
    municipality whose data was delivered.

    `deliveries` counts (source, category) deliveries that handed over at least one item in a
    DELIVERED event; `items` is the number of items they handed over. `municipality` is the
    municipality of the personnel who asked; `data_municipality` the municipality whose own
    store delivered the data (None: a national source). No personal data.
    """

    day: date
    source: str
    category: str
    municipality: str | None
    deliveries: int
    items: int
    data_municipality: str | None = None


class AuditSink(Protocol):
    """The durable, append-only, hash-chained audit trail.

    >>> await sink.write(event)  # committed, or AuditUnavailableError  # doctest: +SKIP
    >>> (await sink.verify()).ok  # doctest: +SKIP
    True
    """

    async def write(self, event: AuditEvent) -> None:
        """Append `event`; returns only once it is durably committed, else raises
        `AuditUnavailableError`. Concurrent calls are committed together (group commit)."""

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
        """Events with `start <= recorded_at < end` (each bound optional), newest first; all
        patients when `patient_nin` is None; only those by callers of `actor_municipality`,
        only those that concern `municipality` (its privacy officer's:
        `events.concerned_municipalities`) and only emergency openings when asked. Raises
        `AuditCursorError` for a foreign cursor."""

    def stream(
        self,
        *,
        patient_nin: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        actor_municipality: str | None = None,
        batch: int = STREAM_BATCH,
        municipality: str | None = None,
    ) -> AsyncIterator[AuditEvent]:
        """The matching events oldest first, read `batch` at a time (an export of the whole
        trail never holds more than one batch in memory)."""

    async def usage(self, *, start: date | None, end: date | None,
                    municipality: str | None = None) -> list[UsageRow]:
        """Delivery counts per UTC day (`start` and `end` inclusive), source, category,
        caller municipality and data municipality, ordered by those keys; with
        `municipality`, only the deliveries that are its (`events.delivery_municipality`)."""

    async def holds_data_of(self, *, patient_nin: str, municipality: str) -> bool:
        """True when the trail records, for this patient, an access that found
        `municipality` to be the patient's home municipality or delivered at least one item
        from `municipality`'s own store (the privacy officer's gate, docs/policies.md)."""

    async def verify(self) -> VerifyResult:
        """Check the whole chain from the retention anchor to the head."""

    async def purge(self, *, older_than: datetime) -> int:
        """Delete the oldest events recorded before `older_than` (retention); returns how many.
        The chain's anchor moves to the last deleted row, so `verify()` still passes."""

    async def ping(self) -> bool:
        """True when the store answers (for readiness checks); never raises."""

    async def aclose(self) -> None:
        """Commit what is queued, then release the connection(s)."""


def check_page_args(first: int, start: datetime | None, end: datetime | None) -> None:
    if not 0 <= first <= MAX_PAGE:
        raise ValueError(f"first must be between 0 and {MAX_PAGE}, got {first!r}.")
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name} must be a timezone-aware datetime.")


def to_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch: the sortable time key both stores page on."""
    return (value - EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def usage_bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """[low, high) instants for the inclusive UTC days `start`..`end` (None: unbounded)."""
    low = utc_midnight(start) if start else None
    high = utc_midnight(end) + timedelta(days=1) if end else None
    return low, high


def sort_usage(rows: list[UsageRow]) -> list[UsageRow]:
    return sorted(rows, key=lambda r: (r.day, r.source, r.category, r.municipality or "",
                                       r.data_municipality or ""))


def encode_cursor(recorded_us: int, seq: int) -> str:
    raw = f"a1:{recorded_us}:{seq}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


MAX_CURSOR_CHARS = 64  # ours are ~40; anything longer is not one of them
MAX_KEY = 2**62  # microseconds and sequence numbers both fit well below this


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The (recorded_us, seq) key a cursor stands for; AuditCursorError when it is not ours."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        tag, recorded_us, seq = raw.split(":")
        if tag != "a1" or not (recorded_us.isdigit() and seq.isdigit()):
            raise ValueError
        key = int(recorded_us), int(seq)
        if not (key[0] < MAX_KEY and key[1] < MAX_KEY):
            raise ValueError
        return key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise AuditCursorError("The 'after' cursor is not one this audit log issued.",
                               argument="after") from None


async def open_audit_sink(url: str, *, retention_days: int, create: bool = True) -> AuditSink:
    """Open the sink a `KILDE_AUDIT__URL` names, creating its tables when missing.

    With `create=False` the trail must already exist, and opening it creates nothing (no
    file, no tables): a ValueError says what was found instead.

    `sqlite:///relative.db`, `sqlite:////absolute/path.db`, `sqlite:///:memory:` (tests) or
    `postgresql://user@host:5432/db` (`?search_path=schema` is passed as a server setting).
    A PostgreSQL server that is unreachable at start is retried on first use (writes fail
    with AuditUnavailableError until then); a malformed URL raises ValueError at once.
    """
    if retention_days < 1:
        raise ValueError(
            f"KILDE_AUDIT__RETENTION_DAYS must be at least 1, got {retention_days!r}."
        )
    scheme, sep, rest = url.partition("://")
    if scheme == "sqlite" and sep and rest.startswith("/") and len(rest) > 1:
        from gateway.audit.sqlite import SqliteAuditSink

        return await SqliteAuditSink.open(rest[1:], retention_days=retention_days,
                                          create=create)
    if scheme in ("postgresql", "postgres") and sep and rest:
        from gateway.audit.postgres import PostgresAuditSink

        return await PostgresAuditSink.open(url, retention_days=retention_days, create=create)
    shown = scheme if sep else "(none)"
    raise ValueError(
        "KILDE_AUDIT__URL must look like 'sqlite:///path.db', 'sqlite:///:memory:' or "
        f"'postgresql://user@host:5432/db'; got a URL with scheme {shown!r}."
    )


async def verify_url(url: str) -> VerifyResult:
    """Open the trail at `url`, verify the whole chain, close it (for `kilde audit verify`)."""
    sink = await open_audit_sink(url, retention_days=36500, create=False)
    try:
        return await sink.verify()
    finally:
        await sink.aclose()
