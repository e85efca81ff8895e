"""The audit export underneath: `toa` stored compatibly, streamed reads on both stores, the
Bundle and NDJSON writers, and `kilde audit export` on a trail."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from gateway import cli
from gateway.audit import open_audit_sink
from gateway.audit.events import AuditEvent, canonical_bytes, event_from_json
from gateway.audit.export import bounds, fhir_bundle, fhir_ndjson
from tests.gateway.audit_support import BASE, PATIENT_A, PATIENT_B, event, full_event
from tests.gateway.fhir_profile import bundle_problems, profile_problems

# An event as the first version stored it (no `toa`): its bytes must never change.
OLD_ROW = canonical_bytes(event(0))


def test_an_event_without_toa_serialises_as_before_and_one_with_toa_round_trips() -> None:
    assert b"toa" not in OLD_ROW
    assert canonical_bytes(event_from_json(OLD_ROW)) == OLD_ROW
    with_toa = event(1, toa=1772366100)
    assert b'"toa":1772366100' in canonical_bytes(with_toa)
    assert event_from_json(canonical_bytes(with_toa)) == with_toa


@pytest.mark.parametrize("bad", [-1, "1772366100", True, 1.5])
def test_toa_must_be_unix_seconds(bad: object) -> None:
    with pytest.raises(ValueError, match="toa"):
        event(1, toa=bad)


@pytest.fixture(params=["sqlite", "postgres"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


async def _all(events: AsyncIterator[AuditEvent]) -> list[AuditEvent]:
    return [e async for e in events]


async def test_old_and_new_rows_verify_and_stream_oldest_first_in_batches(audit_url: str) -> None:
    sink = await open_audit_sink(audit_url, retention_days=36500)
    try:
        written = [event(i, toa=None if i < 3 else 1772366100 + i) for i in range(7)]
        for e in reversed(written):  # stored out of time order: the stream sorts by time
            await sink.write(e)
        assert (await sink.verify()).ok
        streamed = await _all(sink.stream(batch=2))  # 4 round trips
        assert [e.event_id for e in streamed] == [e.event_id for e in written]
        assert streamed == written
    finally:
        await sink.aclose()


async def test_stream_filters_by_patient_time_and_callers_municipality(audit_url: str) -> None:
    sink = await open_audit_sink(audit_url, retention_days=36500)
    try:
        await sink.write(event(1, patient=PATIENT_A))                          # Bergen
        await sink.write(event(2, patient=PATIENT_B))
        await sink.write(event(3, patient=PATIENT_A, actor_municipality="0301"))
        await sink.write(event(4, patient=PATIENT_A))
        by_patient = await _all(sink.stream(patient_nin=PATIENT_A, batch=1))
        assert [e.request_id for e in by_patient] == ["req-0001", "req-0003", "req-0004"]
        window = await _all(sink.stream(start=BASE + timedelta(minutes=2),
                                        end=BASE + timedelta(minutes=4)))
        assert [e.request_id for e in window] == ["req-0002", "req-0003"]
        oslo = await _all(sink.stream(actor_municipality="0301"))
        assert [e.request_id for e in oslo] == ["req-0003"]
    finally:
        await sink.aclose()


async def test_query_pages_emergency_openings_of_one_municipality(audit_url: str) -> None:
    sink = await open_audit_sink(audit_url, retention_days=36500)
    try:
        for i, (municipality, emergency) in enumerate(
                [("0301", True), ("0301", False), ("4601", True), ("0301", True)]):
            await sink.write(event(i, actor_municipality=municipality, emergency=emergency,
                                   emergency_reason="bevisstløs" if emergency else None))
        page = await sink.query(patient_nin=None, start=None, end=None, first=1, after=None,
                                actor_municipality="0301", emergency_only=True)
        assert (page.total, [e.request_id for e in page.events]) == (2, ["req-0003"])
        rest = await sink.query(patient_nin=None, start=None, end=None, first=5,
                                after=page.end_cursor, actor_municipality="0301",
                                emergency_only=True)
        assert [e.request_id for e in rest.events] == ["req-0000"]
        assert not rest.has_next_page
    finally:
        await sink.aclose()


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


async def _events(*events: AuditEvent) -> AsyncIterator[AuditEvent]:
    for e in events:
        yield e


async def test_bundle_is_a_valid_collection_of_conforming_audit_events() -> None:
    body = orjson.loads(await _collect(fhir_bundle(_events(full_event(toa=1772366100),
                                                           event(2, toa=1772366100)))))
    assert bundle_problems(body) == []
    assert next(e["fullUrl"] for e in body["entry"]) == "urn:uuid:5b1e7c6e-9d4f-4f4e-9a51-1b2c3d4e5f60"
    assert profile_problems(body["entry"][0]["resource"]) == []


async def test_an_empty_trail_is_an_empty_bundle() -> None:
    body = orjson.loads(await _collect(fhir_bundle(_events())))
    assert (body["resourceType"], body["entry"], bundle_problems(body)) == ("Bundle", [], [])


async def test_ndjson_is_one_audit_event_per_line() -> None:
    lines = (await _collect(fhir_ndjson(_events(event(1), event(2))))).splitlines()
    assert [json.loads(line)["resourceType"] for line in lines] == ["AuditEvent"] * 2


@pytest.mark.parametrize(("start", "end", "message"), [
    ("2026-13-01", None, "'from' must be a date"),
    (None, "soon", "'to' must be a date"),
    ("2026-03-02", "2026-03-01", "'to' must be later"),
])
def test_bounds_refuse_what_is_not_a_time(start: str | None, end: str | None,
                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bounds(start, end)


def test_bounds_take_dates_as_whole_utc_days_and_naive_times_as_utc() -> None:
    low, high = bounds("2026-03-01", "2026-03-01")
    assert (high - low) == timedelta(days=1)
    low, _ = bounds("2026-03-01T12:00:00", None)
    assert low is not None
    assert low.utcoffset() == timedelta(0)


async def _trail(path: Path) -> str:
    url = f"sqlite:///{path}"
    sink = await open_audit_sink(url, retention_days=36500)
    try:
        await sink.write(full_event(toa=1772366100))
        await sink.write(event(5, patient=PATIENT_B, toa=1772366100))
        await sink.write(event(9, patient=PATIENT_A))  # an old-style row, no toa
    finally:
        await sink.aclose()
    return url


async def test_kilde_audit_export_writes_every_event_when_no_range_is_given(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    url = await _trail(tmp_path / "audit.sqlite3")
    out = tmp_path / "export.json"
    assert await _run(["audit", "export", "--url", url, "--format", "fhir",
                       "--output", str(out)]) == 0
    bundle = json.loads(out.read_text())
    assert bundle_problems(bundle) == []
    assert len(bundle["entry"]) == 3
    assert b"exported 3 audit events" in capsysbinary.readouterr().err
    assert await _run(["audit", "verify", "--url", url]) == 0


async def test_kilde_audit_export_limits_by_patient_and_time_and_writes_ndjson(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    url = await _trail(tmp_path / "audit.sqlite3")
    assert await _run(["audit", "export", "--url", url, "--patient", PATIENT_A,
                       "--from", "2026-03-01T12:01:00Z", "--format", "ndjson"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    assert [json.loads(line)["recorded"] for line in lines] == ["2026-03-01T12:09:00.000000Z"]


async def test_kilde_audit_export_refuses_a_bad_patient_without_echoing_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = await _trail(tmp_path / "audit.sqlite3")
    assert await _run(["audit", "export", "--url", url, "--patient", "14033841388"]) == 2
    err = capsys.readouterr().err
    assert "14033841388" not in err
    assert "valid national identity number" in err


async def _run(argv: list[str]) -> int:
    import asyncio

    # the command runs its own event loop, as it does from a shell
    return await asyncio.get_running_loop().run_in_executor(None, cli.main, argv)
