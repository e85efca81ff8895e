"""Group commit when the store hangs instead of failing: callers give up in bounded time, fail
closed, and their rows are still committed once the store answers (audited, not delivered)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.audit import AuditUnavailableError
from gateway.audit.batching import GroupCommitter


async def test_a_hanging_store_fails_writers_within_the_write_timeout() -> None:
    release = asyncio.Event()
    committed: list[str] = []

    async def commit(rows: list[str]) -> None:
        await release.wait()  # a store that neither answers nor fails
        committed.extend(rows)

    committer: GroupCommitter[str] = GroupCommitter(commit, write_timeout=0.05)
    started = time.monotonic()
    results = await asyncio.gather(*(committer.submit(f"row-{i}") for i in range(3)),
                                   return_exceptions=True)
    assert [type(r) for r in results] == [AuditUnavailableError] * 3
    assert time.monotonic() - started < 2.0

    release.set()  # the store comes back: what was queued is still written
    await committer.aclose()
    assert sorted(committed) == ["row-0", "row-1", "row-2"]


async def test_a_prompt_store_is_not_affected_by_the_timeout() -> None:
    committed: list[int] = []

    async def commit(rows: list[int]) -> None:
        committed.extend(rows)

    committer: GroupCommitter[int] = GroupCommitter(commit, write_timeout=0.05)
    await asyncio.gather(*(committer.submit(i) for i in range(50)))
    await committer.aclose()
    assert sorted(committed) == list(range(50))
    with pytest.raises(AuditUnavailableError):
        await committer.submit(99)


async def test_closing_gives_up_on_a_hanging_store_and_loses_nothing_acknowledged() -> None:
    """Stopping is prompt (#12 item 7): `aclose` waits for a hung store only its timeout.
    What was acknowledged before stays committed; what was still waiting fails, so its
    request delivers nothing."""
    committed: list[str] = []
    hung = asyncio.Event()

    async def commit(rows: list[str]) -> None:
        if "late" in rows:
            hung.set()
            await asyncio.Event().wait()  # the store stops answering for good
        committed.extend(rows)

    committer: GroupCommitter[str] = GroupCommitter(commit, write_timeout=30)
    await committer.submit("acknowledged")
    waiting = asyncio.create_task(committer.submit("late"))
    await hung.wait()  # the writer is committing "late" and will never return
    await committer.aclose(timeout=0.1)  # returns although the commit never does
    with pytest.raises(AuditUnavailableError):
        await waiting
    assert committed == ["acknowledged"]
    with pytest.raises(AuditUnavailableError):
        await committer.submit("after close")


async def test_a_cancelled_writer_leaves_its_row_to_be_committed_and_its_batch_unharmed() -> None:
    release = asyncio.Event()
    committed: list[str] = []

    async def commit(rows: list[str]) -> None:
        await release.wait()
        committed.extend(rows)

    committer: GroupCommitter[str] = GroupCommitter(commit, write_timeout=5.0)
    first = asyncio.create_task(committer.submit("first"))  # its batch is in flight
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(committer.submit("cancelled"))
    kept = asyncio.create_task(committer.submit("kept"))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    release.set()
    await asyncio.gather(first, kept)  # the rest of the batch is acknowledged as usual
    await committer.aclose()
    assert committed == ["first", "cancelled", "kept"]  # audited, though not delivered
