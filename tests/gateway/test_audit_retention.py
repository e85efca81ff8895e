"""Retention: the gateway purges events older than KILDE_AUDIT__RETENTION_DAYS when it starts and
then daily; the chain still verifies afterwards, and an unreachable store never stops a start."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.app import create_app
from gateway.audit import AuditSink, AuditUnavailableError, open_audit_sink
from gateway.audit.retention import purge_expired, retention, retention_loop
from gateway.settings import Settings
from tests.gateway.audit_support import event
from tests.servers import e2e_settings

NOW = datetime.now(UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/audit.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


async def _write_aged(url: str, ages_days: list[int]) -> None:
    sink = await open_audit_sink(url, retention_days=36500)
    try:
        for i, age in enumerate(ages_days):
            await sink.write(event(i, recorded_at=NOW - timedelta(days=age, minutes=i),
                                   request_id=f"aged-{age}"))
    finally:
        await sink.aclose()


async def _request_ids_and_verify(url: str) -> tuple[list[str], bool]:
    sink = await open_audit_sink(url, retention_days=36500)
    try:
        page = await sink.query(patient_nin=None, start=None, end=None, first=100, after=None)
        return sorted(e.request_id for e in page.events), (await sink.verify()).ok
    finally:
        await sink.aclose()


async def test_the_gateway_purges_expired_events_when_it_starts(url: str) -> None:
    await _write_aged(url, [400, 40, 20, 5, 0])
    env = {"KILDE_AUDIT__RETENTION_DAYS": "30"}
    settings = e2e_settings(9, "http://127.0.0.1:9", url)
    settings = replace(settings, audit=replace(
        settings.audit, retention_days=Settings.from_env(env, serving=False).audit.retention_days))
    app = create_app(settings)

    async with app.router.lifespan_context(app):
        ids, ok = await _request_ids_and_verify(url)

    assert ids == ["aged-0", "aged-20", "aged-5"]
    assert ok, "the chain must verify from its new anchor after the purge"


async def test_purge_expired_keeps_what_is_within_retention(url: str) -> None:
    await _write_aged(url, [12, 11, 9])
    sink = await open_audit_sink(url, retention_days=36500)
    try:
        assert await purge_expired(sink, retention_days=10) == 2
        assert await purge_expired(sink, retention_days=10) == 0
    finally:
        await sink.aclose()
    assert await _request_ids_and_verify(url) == (["aged-9"], True)


async def test_an_unreachable_store_fails_the_purge_quietly() -> None:
    sink = await open_audit_sink("postgresql://kilde@127.0.0.1:1/kilde", retention_days=10)
    try:
        assert await purge_expired(sink, retention_days=10) is None
    finally:
        await sink.aclose()


class CountingSink:
    """Just enough of an AuditSink for the retention loop: counts purges, fails on request."""

    def __init__(self, fail_rounds: set[int]) -> None:
        self.calls: list[datetime] = []
        self.fail_rounds = fail_rounds
        self.third = asyncio.Event()

    async def purge(self, *, older_than: datetime) -> int:
        self.calls.append(older_than)
        if len(self.calls) >= 3:
            self.third.set()
        if len(self.calls) in self.fail_rounds:
            raise AuditUnavailableError("down")
        return 0


async def test_the_loop_purges_every_interval_and_survives_a_failed_round() -> None:
    sink = CountingSink(fail_rounds={1})
    task = asyncio.create_task(retention_loop(sink, retention_days=7, interval=0.001))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(sink.third.wait(), timeout=5)
    finally:
        task.cancel()
    cutoff = sink.calls[-1]
    assert timedelta(days=7) - timedelta(seconds=5) < datetime.now(UTC) - cutoff <= timedelta(
        days=7, seconds=5)


async def test_retention_purges_at_entry_and_stops_its_task_at_exit() -> None:
    sink = CountingSink(fail_rounds=set())
    s: AuditSink = sink  # type: ignore[assignment]
    async with retention(s, retention_days=7, interval=3600) as task:
        assert len(sink.calls) == 1
        assert not task.done()
    assert task.cancelled()
