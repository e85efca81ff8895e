"""Opening an audit sink: URL schemes, bad configuration, and an unreachable PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit import AuditUnavailableError, open_audit_sink, verify_url
from gateway.audit import sqlite as sqlite_module
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


async def test_opening_waits_out_another_process_creating_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another connection holds the write lock on the new file, as a second replica does while
    # it creates the tables. SQLite refuses the WAL switch at once (no busy handler: it would
    # deadlock), so the open must wait and ask again; the blocker lets go once it has asked.
    path = tmp_path / "audit.sqlite3"
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    refused = threading.Event()
    pause = sqlite_module._pause

    def pause_and_tell(seconds: float) -> None:
        refused.set()
        pause(seconds)

    monkeypatch.setattr(sqlite_module, "_pause", pause_and_tell)

    def release() -> None:
        refused.wait(timeout=30)
        blocker.execute("ROLLBACK")

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        sink = await open_audit_sink(f"sqlite:///{path}", retention_days=30)
        await sink.write(event(1))
        assert (await sink.verify()).ok
        await sink.aclose()
    finally:
        releaser.join()
        blocker.close()
    assert refused.is_set()


async def test_many_replicas_opening_one_new_file_all_succeed(tmp_path: Path) -> None:
    # each sink has its own connection on its own thread: to SQLite's locks, another process
    for round_ in range(20):
        url = f"sqlite:///{tmp_path}/audit-{round_}.sqlite3"
        sinks = await asyncio.gather(*(open_audit_sink(url, retention_days=30) for _ in range(4)))
        try:
            await asyncio.gather(*(s.write(event(i, request_id=f"r-{i}"))
                                   for i, s in enumerate(sinks)))
            assert (await sinks[0].verify()).checked == 4
        finally:
            for sink in sinks:
                await sink.aclose()


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: None, "its directory"),
    (lambda p: p.parent.mkdir() or p.write_bytes(b"not a database, just text" * 100),
     "is not a SQLite database"),
    (lambda p: p.parent.mkdir() or p.mkdir(), "is a directory"),
])
async def test_an_open_failure_says_what_actually_happened(
    tmp_path: Path, make: Callable[[Path], object], says: str
) -> None:
    path = tmp_path / "sub" / "audit.sqlite3"
    make(path)
    with pytest.raises(ValueError, match="KILDE_AUDIT__URL") as info:
        await open_audit_sink(f"sqlite:///{path}", retention_days=30)
    assert says in str(info.value)
    assert "exists and is writable" not in str(info.value)


async def test_verifying_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite3"
    with pytest.raises(ValueError, match="does not exist"):
        await verify_url(f"sqlite:///{path}")
    assert not os.listdir(tmp_path)


async def test_verifying_a_database_without_an_audit_trail_says_so(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(ValueError, match="not a Kilde audit trail"):
        await verify_url(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert names == {"t"}


async def test_verifying_an_empty_postgres_schema_creates_no_tables(postgres_url: str) -> None:
    import asyncpg

    with pytest.raises(ValueError, match="holds no Kilde audit trail"):
        await verify_url(postgres_url)
    schema = postgres_url.rsplit("search_path=", 1)[1]
    conn = await asyncpg.connect(postgres_url.split("?")[0])
    try:
        tables = await conn.fetch("SELECT 1 FROM pg_tables WHERE schemaname = $1", schema)
    finally:
        await conn.close()
    assert tables == []


def test_kilde_audit_verify_of_a_missing_file_exits_2_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    path = tmp_path / "nope.sqlite3"
    assert main(["audit", "verify", "--url", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "Error" not in err  # plain words, not an exception class
    assert list(tmp_path.iterdir()) == []
