"""Audit write throughput: events/s for 1, 32 and 256 concurrent writers, SQLite and PostgreSQL.

Every `write()` returns only after its event is durably committed (SQLite WAL with
synchronous=FULL; PostgreSQL synchronous_commit=on), so one lone writer pays one fsync per
event; concurrent writers share a transaction through group commit. Run:

    .venv/bin/python bench/audit_bench.py [--events 2000] [--postgres-url URL]

PostgreSQL runs in a throwaway schema that is dropped afterwards; it is skipped with a note
when the server is not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from gateway.audit import AuditEvent, Delivery, open_audit_sink
from sandbox.world import PATIENTS, professional

WRITERS = (1, 32, 256)
DEFAULT_PG = os.environ.get("KILDE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _event(i: int) -> AuditEvent:
    who = professional("hjemmesykepleier")
    return AuditEvent(
        recorded_at=datetime.now(UTC),
        request_id=f"bench-{i}",
        outcome="DELIVERED",
        reason="PERMITTED",
        principal_kind="CLINICIAN",
        actor_person_id=who.pid,
        actor_name=who.name,
        actor_hpr=who.hpr,
        actor_profession=who.profession,
        point_of_care=who.workplace,
        actor_municipality="0301",
        client_id="bench",
        patient_nin=PATIENTS[i % len(PATIENTS)].nin,
        purpose_of_use="TREAT",
        deliveries=(Delivery("medications", "pll", "OK", 3),
                    Delivery("lab_results", "proevesvar", "OK", 2)),
    )


async def _run(url: str, writers: int, events: int) -> tuple[float, int, bool]:
    sink = await open_audit_sink(url, retention_days=3650)
    per_writer = max(1, events // writers)

    async def writer(w: int) -> None:
        for j in range(per_writer):
            await sink.write(_event(w * per_writer + j))

    try:
        await sink.write(_event(-1))  # connect and create tables outside the timing
        before = sink.batches_committed  # type: ignore[attr-defined]
        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - started
        batches = sink.batches_committed - before  # type: ignore[attr-defined]
        ok = (await sink.verify()).ok
    finally:
        await sink.aclose()
    return writers * per_writer / elapsed, batches, ok


async def _postgres_schema(base: str) -> tuple[str, str] | None:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(base, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    return f"{base}?search_path={schema}", schema


async def _drop(base: str, schema: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per run")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    args = parser.parse_args()

    print(f"{'store':<10} {'writers':>7} {'events/s':>10} {'events/commit':>14} chain")
    with tempfile.TemporaryDirectory() as tmp:
        for n in WRITERS:
            url = f"sqlite:///{tmp}/audit-{n}.sqlite3"
            rate, batches, ok = await _run(url, n, args.events)
            per = args.events // n * n / max(batches, 1)
            print(f"{'sqlite':<10} {n:>7} {rate:>10.0f} {per:>14.1f} {'ok' if ok else 'BROKEN'}")
    for n in WRITERS:
        made = await _postgres_schema(args.postgres_url)
        if made is None:
            print("postgres   skipped: server not reachable")
            break
        url, schema = made
        try:
            rate, batches, ok = await _run(url, n, args.events)
        finally:
            await _drop(args.postgres_url, schema)
        per = args.events // n * n / max(batches, 1)
        print(f"{'postgres':<10} {n:>7} {rate:>10.0f} {per:>14.1f} {'ok' if ok else 'BROKEN'}")


if __name__ == "__main__":
    asyncio.run(main())
