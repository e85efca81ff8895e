"""CDS Hooks over real HTTP against the shared stack, where every sandbox fake requires
Kilde's own HelseID token: the hook reaches the sources exactly as a query does."""

from __future__ import annotations

import uuid

import httpx
import pytest

from sandbox.world import by_tag
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.slow

HLR = by_tag("legevakt-hlr")


def test_the_legevakt_physician_gets_the_municipal_hlr_minus_as_a_critical_card(
        e2e: Stack) -> None:
    body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "PractitionerRole/1", "patientId": HLR.nin}}
    r = httpx.post(f"{e2e.gateway.url}/cds-services/kilde-patient-view", json=body, timeout=20,
                   headers={"authorization": f"Bearer {e2e.token('legevakt-lege', HLR.nin)}"})
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert [c["source"]["label"] for c in cards if c["indicator"] == "critical"] == [
        "Kommunal journal, Oslo kommune"]
    assert not [c for c in cards if c["indicator"] == "info"], cards  # every source answered
