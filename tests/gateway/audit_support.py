"""Helpers shared by the audit tests: synthetic events and raw-connection tampering."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from gateway.audit import AuditEvent, Delivery
from sandbox.world import PATIENTS, professional

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEGE = professional("legevakt-lege")
NURSE = professional("hjemmesykepleier-bergen")
PATIENT_A = PATIENTS[0].nin
PATIENT_B = PATIENTS[1].nin


def full_event(**changes: Any) -> AuditEvent:
    """An event with every field set (synthetic people from sandbox/world.py)."""
    values: dict[str, Any] = {
        "event_id": "5b1e7c6e-9d4f-4f4e-9a51-1b2c3d4e5f60",
        "recorded_at": BASE,
        "request_id": "req-0001",
        "outcome": "DELIVERED",
        "reason": "EMERGENCY_ACCESS",
        "principal_kind": "CLINICIAN",
        "actor_person_id": LEGE.pid,
        "actor_name": LEGE.name,
        "actor_hpr": LEGE.hpr,
        "actor_profession": LEGE.profession,
        "actor_profession_text": LEGE.profession_text,
        "legal_entity": "910000004",
        "legal_entity_name": "Oslo kommune",
        "point_of_care": LEGE.workplace,
        "point_of_care_name": "Oslo kommune legevakt",
        "actor_municipality": "0301",
        "client_id": "legevakt-epj",
        "patient_nin": PATIENT_A,
        "purpose_of_use": "BTG",
        "decision_ref": "akutt-2026-001",
        "decision_description": "Pasient bevisstløs, akutt behov (nødrett)",
        "user_selected": True,
        "emergency": True,
        "emergency_reason": "Bevisstløs pasient på legevakt; pårørende ikke tilgjengelig",
        "deliveries": (
            Delivery("treatment_limitations", "municipal", "OK", 1),
            Delivery("medications", "pll", "OK", 4),
            Delivery("lab_results", "proevesvar", "RESTRICTED", 2),
            Delivery("critical_information", "kjernejournal", "TIMEOUT", 0),
        ),
    }
    values.update(changes)
    return AuditEvent(**values)


def event(i: int, *, patient: str | None = PATIENT_A, **changes: Any) -> AuditEvent:
    """A small delivered event recorded `i` minutes after BASE."""
    values: dict[str, Any] = {
        "recorded_at": BASE + timedelta(minutes=i),
        "request_id": f"req-{i:04d}",
        "outcome": "DELIVERED",
        "reason": "PERMITTED",
        "principal_kind": "CLINICIAN",
        "actor_person_id": NURSE.pid,
        "actor_hpr": NURSE.hpr,
        "actor_municipality": "4601",
        "client_id": "hjemmetjeneste-app",
        "patient_nin": patient,
        "purpose_of_use": "TREAT",
        "deliveries": (Delivery("medications", "pll", "OK", 2),),
    }
    values.update(changes)
    return AuditEvent(**values)


async def tamper(url: str, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run SQL on the trail behind the sink's back, with its append-only triggers disabled.

    Statements use `?` placeholders; they are renumbered to `$n` for PostgreSQL.
    """
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        try:
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
            for sql, params in statements:
                conn.execute(sql, params)
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
        for sql, params in statements:
            parts = sql.split("?")
            numbered = parts[0] + "".join(f"${n}{p}" for n, p in enumerate(parts[1:], 1))
            await pg.execute(numbered, *params)
    finally:
        await pg.close()


async def fetch_row(url: str, seq: int) -> dict[str, Any]:
    """The raw stored columns of row `seq`."""
    columns = ("event_id", "patient_nin", "prev_hash", "hash", "body")
    query = f"SELECT {', '.join(columns)} FROM audit_events WHERE seq = "
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///"):])
        try:
            row = conn.execute(query + "?", (seq,)).fetchone()
        finally:
            conn.close()
        return dict(zip(columns, row, strict=True))
    pg = await asyncpg.connect(url)
    try:
        record = await pg.fetchrow(query + "$1", seq)
    finally:
        await pg.close()
    return dict(record)


async def run_raw(url: str, sql: str) -> None:
    """Run one statement with the triggers in place (to show they refuse it)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        try:
            conn.execute(sql)
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute(sql)
    finally:
        await pg.close()
