"""POST /events/fhir/<source>: a FHIR store's topic-based subscription notification (R4
backport shape) becomes a change for the live watchers of the patient it names, with the
category of the changed resource and the municipality of the store it came from."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.identifiers import FNR_SYSTEM
from gateway.demo import mint_event_token
from tests.gateway.inprocess import ISSUER, LEGEVAKT_PATIENT, Harness, gateway

STATUS_PROFILE = ("http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                  "backport-subscription-status-r4")


def _status(kind: str, focus: str | None = "Consent/hlr-1") -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": "Subscription/kilde"}},
        {"name": "topic", "valueCanonical": "http://kommune.example/topics/patient-changes"},
        {"name": "status", "valueCode": "active"},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": "7"},
    ]
    if focus is not None:
        parameters.append({"name": "notification-event", "part": [
            {"name": "event-number", "valueString": "7"},
            {"name": "timestamp", "valueInstant": "2026-12-02T01:30:00+01:00"},
            {"name": "focus", "valueReference": {"reference": focus}}]})
    return {"fullUrl": "urn:uuid:0d3a5b8e-3d2c-4b8f-9a43-2f1c4a4f7d10", "resource": {
        "resourceType": "Parameters", "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters}}


def _bundle(h: Harness, *resources: dict[str, Any], kind: str = "event-notification",
            focus: str | None = "Consent/hlr-1") -> dict[str, Any]:
    base = h.settings.connectors["municipal"].stores["0301"].rstrip("/")
    return {"resourceType": "Bundle", "type": "history", "timestamp": "2026-12-02T00:30:00Z",
            "entry": [_status(kind, focus), *(
                {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                 "request": {"method": "POST", "url": r["resourceType"]},
                 "response": {"status": "201"}} for r in resources)]}


PATIENT = {"resourceType": "Patient", "id": "p1",
           "identifier": [{"system": FNR_SYSTEM, "value": LEGEVAKT_PATIENT}]}
HLR_MINUS = {"resourceType": "Consent", "id": "hlr-1", "status": "active",
             "scope": {"coding": [{"code": "treatment"}]}, "patient": {"reference": "Patient/p1"}}


def _headers(h: Harness) -> dict[str, str]:
    token = mint_event_token(issuer=ISSUER, audience=h.settings.auth.audience)
    return {"authorization": f"Bearer {token}", "content-type": "application/fhir+json"}


async def _post(h: Harness, bundle: Any, source: str = "municipal") -> Any:
    return await h.client.post(f"/events/fhir/{source}", json=bundle, headers=_headers(h))


async def test_a_notification_tells_the_watchers_what_changed_where() -> None:
    async with gateway() as h, h.state.live.watch(LEGEVAKT_PATIENT) as watch:
        r = await _post(h, _bundle(h, HLR_MINUS, PATIENT))
        assert r.status_code == 202, r.text
        assert r.json() == {"type": "event-notification", "changes": 1}
        change = await asyncio.wait_for(anext(watch), 20)
    assert (change.source, change.categories, change.municipality, change.origin) == (
        "municipal", ("treatment_limitations",), "0301", "fhir-subscription")
    assert change.changed_at == datetime(2026, 12, 2, 0, 30, tzinfo=UTC)


async def test_the_patient_may_be_named_in_the_subject_and_a_privacy_consent_is_everything(
        ) -> None:
    sperring = {"resourceType": "Consent", "id": "sp-1", "status": "active",
                "scope": {"coding": [{"code": "patient-privacy"}]},
                "patient": {"identifier": {"system": FNR_SYSTEM, "value": LEGEVAKT_PATIENT}}}
    async with gateway() as h, h.state.live.watch(LEGEVAKT_PATIENT) as watch:
        r = await _post(h, _bundle(h, sperring, focus="Consent/sp-1"))
        assert r.status_code == 202, r.text
        change = await asyncio.wait_for(anext(watch), 20)
    assert change.categories == ()


async def test_handshakes_and_heartbeats_are_answered_and_change_nothing() -> None:
    async with gateway() as h, h.state.live.watch(LEGEVAKT_PATIENT) as watch:
        for kind in ("handshake", "heartbeat"):
            r = await _post(h, _bundle(h, kind=kind, focus=None))
            assert r.status_code == 200, r.text
            assert r.json() == {"type": kind, "changes": 0}
        await _post(h, _bundle(h, HLR_MINUS, PATIENT))
        assert (await asyncio.wait_for(anext(watch), 20)).origin == "fhir-subscription"


def _without_patient(h: Harness) -> Any:
    consent = copy.deepcopy(HLR_MINUS)
    consent["patient"] = {"reference": "Patient/elsewhere"}
    return _bundle(h, consent)


def _wrong_type(h: Harness) -> Any:
    bundle = _bundle(h, HLR_MINUS, PATIENT)
    bundle["type"] = "transaction"
    return bundle


def _unknown_kind(h: Harness) -> Any:
    return _bundle(h, HLR_MINUS, PATIENT, kind="surprise")


def _no_status(h: Harness) -> Any:
    bundle = _bundle(h, HLR_MINUS, PATIENT)
    bundle["entry"] = bundle["entry"][1:]
    return bundle


BAD = [
    ("id-only content", lambda h: _bundle(h), 422, "focus is not in the bundle"),
    ("no identity number", _without_patient, 422, "names no patient"),
    ("not a history bundle", _wrong_type, 400, "Bundle of type 'history'"),
    ("unknown type", _unknown_kind, 400, "Unknown notification type"),
    ("no SubscriptionStatus", _no_status, 400, "must be a Parameters resource"),
    ("not a bundle", lambda h: [1, 2], 400, "Bundle of type 'history'"),
]


@pytest.mark.parametrize(("case", "make", "status", "message"), BAD, ids=[b[0] for b in BAD])
async def test_a_notification_that_cannot_be_applied_is_refused_and_nobody_hears_it(
        case: str, make: Any, status: int, message: str) -> None:
    async with gateway() as h, h.state.live.watch(LEGEVAKT_PATIENT) as watch:
        r = await _post(h, make(h))
        assert r.status_code == status, r.text
        error = r.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert message in error["message"]
        assert LEGEVAKT_PATIENT not in r.text
        await _post(h, _bundle(h, HLR_MINUS, PATIENT))
        assert (await asyncio.wait_for(anext(watch), 20)).categories == (
            "treatment_limitations",)  # the first thing heard is the good one


async def test_an_unknown_source_and_a_missing_token_are_refused() -> None:
    async with gateway() as h:
        assert (await _post(h, _bundle(h, HLR_MINUS, PATIENT), "nowhere")).status_code == 404
        r = await h.client.post("/events/fhir/municipal", json=_bundle(h, HLR_MINUS, PATIENT))
        assert r.status_code == 401
        r = await h.client.post("/events/fhir/municipal", json=_bundle(h, HLR_MINUS, PATIENT),
                                headers=h.auth())
        assert r.status_code in (401, 403)
