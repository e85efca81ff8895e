"""Retention: purge audit events older than `KILDE_AUDIT__RETENTION_DAYS`, at start and daily.

Sits beside the audit sink in the gateway's lifespan: `retention(sink, ...)` purges once before
the app serves (`purge_expired`), then repeats it every `interval` seconds in a background task
(`retention_loop`) that is cancelled when the context exits, before the sink closes. A purge only removes a prefix of the chain and moves its anchor, so `verify` still passes
afterwards. A failed purge is logged (error type only) and retried on the next round: an
unreachable audit store must not stop the gateway from starting.

    async with retention(sink, retention_days=3650):
        ...  # serve
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from gateway.audit.sink import AuditSink, AuditUnavailableError

log = logging.getLogger("kilde.audit")

DAY_SECONDS = 24 * 60 * 60.0


async def purge_expired(
    sink: AuditSink, *, retention_days: int, now: datetime | None = None
) -> int | None:
    """Delete events recorded more than `retention_days` before `now`; how many, or None
    when the store could not be reached (logged, never raised)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    try:
        deleted = await sink.purge(older_than=cutoff)
    except AuditUnavailableError as exc:
        cause = type(exc.__cause__ or exc).__name__
        log.warning("audit retention purge failed (%s); retrying at the next round", cause)
        return None
    if deleted:
        log.info("audit retention purge removed %d events older than %d days",
                 deleted, retention_days)
    return deleted


async def retention_loop(
    sink: AuditSink, *, retention_days: int, interval: float = DAY_SECONDS
) -> None:
    """Purge every `interval` seconds until cancelled (the lifespan's background task)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await purge_expired(sink, retention_days=retention_days)
        except Exception as exc:  # keep the daily task alive whatever one round did
            log.error("audit retention purge failed unexpectedly (%s)", type(exc).__name__)


@contextlib.asynccontextmanager
async def retention(
    sink: AuditSink, *, retention_days: int, interval: float = DAY_SECONDS
) -> AsyncIterator[asyncio.Task[None]]:
    """Purge now, then every `interval` seconds in the background until the context exits."""
    await purge_expired(sink, retention_days=retention_days)
    task = asyncio.get_running_loop().create_task(
        retention_loop(sink, retention_days=retention_days, interval=interval),
        name="kilde-audit-retention",
    )
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
