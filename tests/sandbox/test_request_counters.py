"""The sandbox's request counters: per source, and per store / resource below a source."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.app import create_app
from sandbox.world import by_tag
from tests.sandbox_auth import sandbox_auth

NIN = by_tag("multi-service").nin
SEARCH = {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {
    "method": "GET", "url": f"Condition?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{NIN}"}}]}


@pytest.fixture
async def sandbox() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app({})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox",
                                 auth=sandbox_auth(app)) as client:
        yield client


async def test_municipal_requests_are_counted_per_store(sandbox: httpx.AsyncClient) -> None:
    for number in ("0301", "0301", "4601"):
        r = await sandbox.post(f"/municipal/{number}", json=SEARCH)
        assert r.status_code == 200
    assert (await sandbox.get("/_sandbox/requests")).json()["municipal"] == 3
    per_store = (await sandbox.get("/_sandbox/requests/municipal")).json()
    assert per_store == {"0301": 2, "4601": 1, "5001": 0}


async def test_a_store_never_asked_reads_zero_and_delete_resets_every_count(
    sandbox: httpx.AsyncClient,
) -> None:
    assert (await sandbox.get("/_sandbox/requests/municipal")).json() == {
        "0301": 0, "4601": 0, "5001": 0}
    await sandbox.post("/kjernejournal/status", json={"nin": NIN})
    assert (await sandbox.get("/_sandbox/requests/kjernejournal")).json() == {"status": 1}
    await sandbox.delete("/_sandbox/requests")
    assert (await sandbox.get("/_sandbox/requests/kjernejournal")).json() == {}
    assert sum((await sandbox.get("/_sandbox/requests")).json().values()) == 0


async def test_counts_for_an_unknown_source_are_404(sandbox: httpx.AsyncClient) -> None:
    r = await sandbox.get("/_sandbox/requests/nowhere")
    assert r.status_code == 404
