"""POST /events tells the live watchers what changed (source, categories, municipality, time),
and refuses an event it cannot apply with a clear BAD_USER_INPUT that names no patient."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.demo import mint_event_token
from tests.gateway.inprocess import ISSUER, LEGEVAKT_PATIENT, Harness, gateway


def _event_headers(h: Harness) -> dict[str, str]:
    token = mint_event_token(issuer=ISSUER, audience=h.settings.auth.audience)
    return {"authorization": f"Bearer {token}"}


async def test_an_event_reaches_the_watchers_of_its_patient() -> None:
    async with gateway() as h:
        async with h.state.live.watch(LEGEVAKT_PATIENT) as watch:
            r = await h.client.post("/events", headers=_event_headers(h), json={
                "source": "municipal", "patient": LEGEVAKT_PATIENT,
                "categories": ["treatment_limitations"], "municipality": "0301",
                "changedAt": "2026-12-02T01:00:00+01:00"})
            assert r.status_code == 202, r.text
            change = await asyncio.wait_for(anext(watch), 20)
        assert (change.source, change.categories, change.municipality, change.origin) == (
            "municipal", ("treatment_limitations",), "0301", "events")
        assert change.changed_at == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)


async def test_an_event_without_categories_means_everything_the_source_serves() -> None:
    async with gateway() as h:
        async with h.state.live.watch(LEGEVAKT_PATIENT) as watch:
            r = await h.client.post("/events", headers=_event_headers(h),
                                    json={"source": "pll", "patient": LEGEVAKT_PATIENT})
            assert r.status_code == 202, r.text
            change = await asyncio.wait_for(anext(watch), 20)
        assert (change.source, change.categories, change.municipality) == ("pll", (), None)


BAD: list[tuple[Any, str]] = [
    ({"source": "municipal", "patient": LEGEVAKT_PATIENT, "categories": ["lab_results"]},
     "serves no category 'lab_results'"),
    ({"source": "municipal", "patient": LEGEVAKT_PATIENT, "categories": "alerts"},
     "'categories' must be a list"),
    ({"source": "municipal", "patient": LEGEVAKT_PATIENT, "categories": [3]},
     "'categories' must be a list"),
    ({"source": "municipal", "patient": LEGEVAKT_PATIENT, "municipality": "Oslo"},
     "four-digit municipality"),
    ({"source": "municipal", "patient": LEGEVAKT_PATIENT, "changedAt": "yesterday"},
     "'changedAt' must be a time"),
    ({"source": "municipal", "patient": LEGEVAKT_PATIENT, "changedAt": "2026-12-02T01:00:00"},
     "'changedAt' must be a time"),
    ({"source": "nowhere", "patient": LEGEVAKT_PATIENT}, "Unknown source 'nowhere'"),
    ({"source": "municipal", "patient": "14033841388"}, "not a valid national identity"),
    ({"source": "municipal"}, "must be a JSON object"),
    (["municipal", LEGEVAKT_PATIENT], "must be a JSON object"),
]


@pytest.mark.parametrize(("event", "message"), BAD)
async def test_an_event_that_cannot_be_applied_is_refused_and_nobody_hears_it(
        event: Any, message: str) -> None:
    async with gateway() as h:
        async with h.state.live.watch(LEGEVAKT_PATIENT) as watch:
            r = await h.client.post("/events", headers=_event_headers(h), json=event)
            assert r.status_code == 400, r.text
            error = r.json()["errors"][0]
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
            assert message in error["message"]
            assert LEGEVAKT_PATIENT not in r.text
            # the next good event is the first the watcher hears
            await h.client.post("/events", headers=_event_headers(h),
                                json={"source": "eresept", "patient": LEGEVAKT_PATIENT})
            assert (await asyncio.wait_for(anext(watch), 20)).source == "eresept"


async def test_a_clinicians_token_may_not_post_events() -> None:
    async with gateway() as h:
        async with h.state.live.watch(LEGEVAKT_PATIENT) as watch:
            r = await h.client.post("/events", headers=h.auth(),
                                    json={"source": "municipal", "patient": LEGEVAKT_PATIENT})
            assert r.status_code in (401, 403), r.text
            await h.client.post("/events", headers=_event_headers(h),
                                json={"source": "eresept", "patient": LEGEVAKT_PATIENT})
            assert (await asyncio.wait_for(anext(watch), 20)).source == "eresept"
