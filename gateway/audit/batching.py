"""Group commit for the audit stores: many concurrent writes, one transaction per batch.

Sits inside both audit sinks, between `write()` and the database. Each caller queues its
prepared row with a future and awaits it; one writer task takes everything queued, commits
it in a single transaction (one fsync for the lot) and resolves every future. A failed batch
fails every caller in it with `AuditUnavailableError`, so none of them delivers data. While a
commit is in flight the next batch accumulates, so batching needs no timer: a lone caller is
committed at once. A caller waits at most `write_timeout` seconds (a store that hangs rather
than fails must not hold requests past their deadline): it then fails with
`AuditUnavailableError` while its row stays queued, so it may still be committed (audited but
not delivered: the safe side).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from gateway.audit.sink import AuditUnavailableError

T = TypeVar("T")

log = logging.getLogger("kilde.audit")

WRITE_FAILED = "The audit trail could not be written; the data must not be delivered."
WRITE_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 1.0  # at shutdown: what is queued gets this long to commit


class GroupCommitter(Generic[T]):
    """Batches `submit(item)` calls into `commit(items)` calls made by one writer task.

    >>> committer = GroupCommitter(store_rows)  # doctest: +SKIP
    >>> await committer.submit(row)  # returns once its batch is committed  # doctest: +SKIP
    """

    def __init__(self, commit: Callable[[list[T]], Awaitable[None]], *, max_batch: int = 512,
                 write_timeout: float = WRITE_TIMEOUT_SECONDS):
        self._commit = commit
        self._max_batch = max_batch
        self._write_timeout = write_timeout
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[None]] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # committed batches, for tests and the benchmark

    async def submit(self, item: T) -> None:
        if self._closed:
            raise AuditUnavailableError("The audit trail is closed; the data must not be delivered.")
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._queue), name="kilde-audit-writer"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        # A caller cancelled or timed out here leaves its item queued: it is still committed
        # (audited but not delivered), which is the safe side. Its future is then cancelled,
        # which the writer skips (it resolves only futures not done). Awaited under a timeout
        # rather than through wait_for(shield(...)): the same outcome without a second and
        # third future and their two extra turns of the event loop per write.
        try:
            async with asyncio.timeout(self._write_timeout):
                await future
        except TimeoutError:
            log.error("audit write not committed within %.1f s", self._write_timeout)
            raise AuditUnavailableError(WRITE_FAILED) from None

    async def _run(self, queue: asyncio.Queue[tuple[T, asyncio.Future[None]] | None]) -> None:
        stop = False
        while not stop:
            first = await queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch and not queue.empty():
                entry = queue.get_nowait()
                if entry is None:
                    stop = True
                    break
                batch.append(entry)
            await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._commit([item for item, _ in batch])
        except BaseException as exc:
            if not isinstance(exc, Exception):
                _fail(batch, None)
                raise
            log.error("audit batch of %d events failed: %s", len(batch), type(exc).__name__)
            _fail(batch, exc)
            return
        self.batches += 1
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def aclose(self, *, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Commit everything already queued, then stop the writer task; a store that does
        not finish within `timeout` seconds (it hangs) is given up on, so stopping stays
        prompt. Nothing acknowledged is lost by that: a write is acknowledged only once its
        batch is committed, and the writes still waiting fail (their data is not delivered).
        """
        self._closed = True
        if self._queue is None or self._task is None or self._task.done():
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(self._task, timeout)
        except TimeoutError:
            log.error("audit store did not finish within %.1f s of closing; the writes still "
                      "waiting fail (none of them was acknowledged)", timeout)
        finally:
            while not self._queue.empty():
                entry = self._queue.get_nowait()
                if entry is not None:
                    _fail([entry], None)


def _fail(batch: list[tuple[T, asyncio.Future[None]]], cause: BaseException | None) -> None:
    for _, future in batch:
        if not future.done():
            error = AuditUnavailableError(WRITE_FAILED)
            error.__cause__ = cause
            future.set_exception(error)
