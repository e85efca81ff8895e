"""Opening an audit sink: URL schemes, bad configuration, and an unreachable PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit import AuditUnavailableError, open_audit_sink, verify_url
from gateway.audit.postgres import PostgresAuditSink
from gateway.audit.sqlite import SqliteAuditSink
from tests.gateway.audit_support import event

UNREACHABLE_PG = "postgresql://kilde:secret@127.0.0.1:1/kilde"


@pytest.mark.parametrize("url", [
    "mysql://db/kilde",
    "sqlite://relative.db",
    "sqlite:///",
    "kilde-audit.sqlite3",
    "",
    "postgresql://",
])
async def test_a_malformed_url_names_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match="KILDE_AUDIT__URL") as info:
        await open_audit_sink(url, retention_days=30)
    assert "secret" not in str(info.value)


async def test_a_bad_postgres_port_names_the_setting_without_the_password() -> None:
    with pytest.raises(ValueError, match="KILDE_AUDIT__URL") as info:
        await open_audit_sink("postgresql://kilde:secret@db:notaport/kilde", retention_days=30)
    assert "secret" not in str(info.value)


async def test_retention_must_be_at_least_one_day() -> None:
    with pytest.raises(ValueError, match="KILDE_AUDIT__RETENTION_DAYS"):
        await open_audit_sink("sqlite:///:memory:", retention_days=0)


async def test_sqlite_in_a_missing_directory_fails_at_open(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KILDE_AUDIT__URL"):
        await open_audit_sink(f"sqlite:///{tmp_path}/missing/audit.db", retention_days=30)


@pytest.mark.parametrize(("url", "kind"), [
    ("sqlite:///:memory:", SqliteAuditSink),
    ("sqlite:///{tmp}/a.db", SqliteAuditSink),
    (UNREACHABLE_PG, PostgresAuditSink),
    ("postgres://kilde@127.0.0.1:1/kilde", PostgresAuditSink),
])
async def test_the_scheme_chooses_the_store(url: str, kind: type, tmp_path: Path) -> None:
    sink = await open_audit_sink(url.format(tmp=tmp_path), retention_days=30)
    try:
        assert isinstance(sink, kind)
    finally:
        await sink.aclose()


async def test_sqlite_relative_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sink = await open_audit_sink("sqlite:///kilde-audit.sqlite3", retention_days=30)
    await sink.write(event(1))
    await sink.aclose()
    assert (tmp_path / "kilde-audit.sqlite3").is_file()


async def test_writing_to_an_unreachable_postgres_raises_audit_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kilde.audit")
    sink = await open_audit_sink(UNREACHABLE_PG, retention_days=30)
    try:
        with pytest.raises(AuditUnavailableError) as info:
            await sink.write(event(1))
        assert info.value.code == "AUDIT_UNAVAILABLE"
        assert await sink.ping() is False
        with pytest.raises(AuditUnavailableError):
            await sink.query(patient_nin=None, start=None, end=None, first=5, after=None)
        with pytest.raises(AuditUnavailableError):
            await sink.verify()
    finally:
        await sink.aclose()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert logged  # the failures were logged ...
    for private in ("secret", "127.0.0.1", "14033841389"):  # ... without the URL or the NIN
        assert private not in logged


async def test_concurrent_writes_to_an_unreachable_postgres_all_fail() -> None:
    sink = await open_audit_sink(UNREACHABLE_PG, retention_days=30)
    try:
        results = await asyncio.gather(*(sink.write(event(i)) for i in range(20)),
                                       return_exceptions=True)
    finally:
        await sink.aclose()
    assert all(isinstance(r, AuditUnavailableError) for r in results)


async def test_verify_url_of_an_unreachable_postgres_raises_audit_unavailable() -> None:
    with pytest.raises(AuditUnavailableError):
        await verify_url(UNREACHABLE_PG)


async def test_purge_expired_applies_the_retention_days() -> None:
    now = datetime.now(UTC)
    sink = await open_audit_sink("sqlite:///:memory:", retention_days=2)
    try:
        await sink.write(event(0, recorded_at=now - timedelta(days=3), request_id="old"))
        await sink.write(event(0, recorded_at=now - timedelta(days=1), request_id="recent"))
        assert await sink.purge_expired() == 1  # type: ignore[attr-defined]
        page = await sink.query(patient_nin=None, start=None, end=None, first=5, after=None)
        assert [e.request_id for e in page.events] == ["recent"]
        assert (await sink.verify()).ok
    finally:
        await sink.aclose()
